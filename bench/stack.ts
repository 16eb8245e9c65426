/**
 * A whole stack that one benchmark run or one fault drill owns: PostgreSQL, Redis and a Temporal
 * dev server on free loopback ports with throw-away data, the worker (bench/worker.ts) and,
 * when asked, the API (workers/api.ts), each in a process of its own. Every piece can be stopped,
 * killed and started again on the same port and data: that is how the drills inject faults.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { migrateDatabase } from '../db/client';
import { freePort, ProcessGroup, startPostgres, startRedis, startTemporalDevServer, type ManagedProcess } from '../scripts/services';
import { ensureServerBinaries, ensureTemporalCli, REPO_ROOT, settleAll } from '../scripts/tools';
import { registerSearchAttributes } from '../platform/search-attributes';

const PROCESS_READY_TIMEOUT_MS = 120_000;
// The stack is the only client: no request may be turned away by a limit meant for the internet.
const UNLIMITED = '1000000000';

export interface StackOptions {
  /** Prefix of the temporary folder (data and logs). */
  name: string;
  /** Also run the API process. */
  api?: boolean;
  /** Keep Temporal's state in a SQLite file (as `npm start` does), so a restart resumes it. */
  temporalDbFile?: boolean;
  /** The dev server's dynamic config, in place of DEV_SERVER_DYNAMIC_CONFIG. */
  temporalDynamicConfig?: Readonly<Record<string, number>>;
  /**
   * PostgreSQL with fsync and synchronous commits, as in production. Off by default, as under
   * `npm test`: faster, but a PostgreSQL crash then loses commits it had acknowledged.
   */
  durablePostgres?: boolean;
  /** Added to the worker's and the API's environment: tuning knobs, LOG_LEVEL. */
  env?: Record<string, string>;
  /** Node flags, e.g. `--cpu-prof`. */
  apiNodeArgs?: string[];
  workerNodeArgs?: string[];
  /** The worker records every gateway call in `gatewayLogFile` (see bench/recording-gateway.ts). */
  recordGateway?: boolean;
  /** Each gateway answer arrives this long after the charge was made, so that a fault can land in between. */
  gatewayDelayMs?: number;
}

export interface WorkerSettings {
  pid: number;
  workers: Array<{ taskQueue: string; maxCachedWorkflows: number; maxTaskQueueActivitiesPerSecond: number | null }>;
}

/** A server or process of the stack that can be stopped, killed and started again as it was. */
export interface Restartable {
  readonly name: string;
  pid(): number;
  isRunning(): boolean;
  /** Its own clean shutdown; resolves once it has exited. */
  stop(): Promise<void>;
  /** SIGKILL to its whole process group; resolves once it has exited. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data; resolves once it is ready. */
  start(): Promise<void>;
}

export interface LocalStack {
  /** Data and logs; removed by `stop()` unless kept. */
  dir: string;
  databaseUrl: string;
  redisUrl: string;
  temporalAddress: string;
  /** e.g. http://127.0.0.1:41234 when the API runs. */
  apiUrl?: string;
  /**
   * The worker's and the API's environment (secrets, URLs, knobs), read at every start: a drill
   * may change it (send the worker to PostgreSQL through a proxy, say) and restart the process.
   */
  env: NodeJS.ProcessEnv;
  gatewayLogFile?: string;
  /** Prometheus endpoints: the Temporal server's own metrics and the worker's SDK metrics (bench/metrics.ts). */
  metricsUrls: { temporal: string; worker: string };
  /** What the running worker reported at start-up: its pid and effective per-queue settings. */
  workerSettings(): WorkerSettings;
  /** The worker's ready file, also the base name of its memory readings (bench/worker-memory.ts). */
  workerReadyFile: string;
  postgres: Restartable;
  redis: Restartable;
  temporal: Restartable;
  worker: Restartable;
  api?: Restartable;
  stop(options?: { keepDir?: boolean }): Promise<void>;
}

export async function startLocalStack(options: StackOptions): Promise<LocalStack> {
  const group = new ProcessGroup();
  process.once('exit', () => group.killAll());
  const dir = mkdtempSync(path.join(os.tmpdir(), `${options.name}-`));
  // As root, PostgreSQL runs as `postgres`, which must be able to enter this folder.
  chmodSync(dir, 0o755);
  const logFile = (name: string) => path.join(dir, `${name}.log`);
  try {
    const [temporalCli, binaries] = await settleAll([ensureTemporalCli(), ensureServerBinaries({ postgres: true, redis: true })]);
    const [pgPort, redisPort, temporalPort, apiPort, temporalMetricsPort, workerMetricsPort] = await Promise.all(
      Array.from({ length: 6 }, () => freePort()),
    );

    const pgOptions = {
      binaries: binaries.postgres!,
      dataDir: path.join(dir, 'postgres'),
      port: pgPort,
      database: 'billing_bench',
      logFile: logFile('postgresql'),
      durable: options.durablePostgres ?? false,
    };
    const redisOptions = { redisServer: binaries.redisServer!, dataDir: path.join(dir, 'redis'), port: redisPort, logFile: logFile('redis') };
    const temporalOptions = {
      cli: temporalCli,
      port: temporalPort,
      logFile: logFile('temporal'),
      ...(options.temporalDbFile ? { dbFile: path.join(dir, 'temporal.db') } : {}),
      dynamicConfig: options.temporalDynamicConfig,
      metricsPort: temporalMetricsPort,
    };
    const [postgres, redis, temporal] = await Promise.all([
      restartable('postgresql', async () => (await startPostgres(group, pgOptions)).process),
      restartable('redis', async () => (await startRedis(group, redisOptions)).process),
      restartable('temporal', async () => (await startTemporalDevServer(group, temporalOptions)).process),
    ]);
    const databaseUrl = `postgres://postgres@127.0.0.1:${pgPort}/${pgOptions.database}`;
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    const temporalAddress = `127.0.0.1:${temporalPort}`;
    await migrateDatabase(databaseUrl);
    await withTemporal(temporalAddress, (connection) => registerSearchAttributes(connection, 'default'));

    const gatewayLogFile = options.recordGateway ? path.join(dir, 'gateway-calls.jsonl') : undefined;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_ENV: 'production',
      LOG_LEVEL: process.env.LOG_LEVEL || 'warn',
      PORT: String(apiPort),
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: 'default',
      JWT_SECRET: randomBytes(48).toString('base64url'),
      STRIPE_WEBHOOK_SECRET: `whsec_${randomBytes(24).toString('base64url')}`,
      // NODE_ENV=production must name its gateway: the sandbox, which takes no money.
      PAYMENT_GATEWAY: 'sandbox',
      STRIPE_SECRET_KEY: '',
      // Required in production; nobody follows it here (the stack's charges never await a customer).
      PAYMENT_ACTION_URL: 'https://app.example.test/pay/{paymentId}',
      RATE_LIMIT_IP_PER_MINUTE: UNLIMITED,
      RATE_LIMIT_PAYMENTS_PER_USER_PER_MINUTE: UNLIMITED,
      ...options.env,
    };

    const readyFile = path.join(dir, 'worker.ready');
    const workerArgs = [
      ...(options.workerNodeArgs ?? []),
      // Runs in every workflow thread too: their heaps, for the footprint (bench/worker-memory.ts).
      '--require',
      path.join(__dirname, 'heap-probe.cjs'),
      '--import',
      'tsx',
      path.join(__dirname, 'worker.ts'),
      '--ready-file',
      readyFile,
      ...(gatewayLogFile ? ['--gateway-log', gatewayLogFile] : []),
      ...(options.gatewayDelayMs ? ['--gateway-delay-ms', String(options.gatewayDelayMs)] : []),
    ];
    const worker = await restartable('worker', async () => {
      rmSync(readyFile, { force: true });
      const workerEnv = { ...env, WORKER_METRICS_ADDRESS: `127.0.0.1:${workerMetricsPort}` };
      const managed = group.spawn('worker', process.execPath, workerArgs, { env: workerEnv, logFile: logFile('worker'), stopGraceMs: 30_000 });
      await waitUntil('worker', managed, async () => existsSync(readyFile));
      return managed;
    });

    const apiUrl = options.api ? `http://127.0.0.1:${apiPort}` : undefined;
    const api = options.api
      ? await restartable('api', async () => {
          const args = [...(options.apiNodeArgs ?? []), '--import', 'tsx', path.join(REPO_ROOT, 'workers', 'api.ts')];
          const managed = group.spawn('api', process.execPath, args, { env, logFile: logFile('api'), stopGraceMs: 30_000 });
          await waitUntil('api', managed, () => answers(`${apiUrl}/healthz`));
          return managed;
        })
      : undefined;

    return {
      dir,
      databaseUrl,
      redisUrl,
      temporalAddress,
      apiUrl,
      env,
      gatewayLogFile,
      metricsUrls: { temporal: `http://127.0.0.1:${temporalMetricsPort}/metrics`, worker: `http://127.0.0.1:${workerMetricsPort}/metrics` },
      workerSettings: () => JSON.parse(readFileSync(readyFile, 'utf8')) as WorkerSettings,
      workerReadyFile: readyFile,
      postgres,
      redis,
      temporal,
      worker,
      api,
      stop: async ({ keepDir = false } = {}) => {
        await group.stop();
        if (keepDir) console.log(`[stack] data and logs kept in ${dir}`);
        else rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await group.stop();
    console.error(`[stack] start-up failed; logs kept in ${dir}`);
    throw error;
  }
}

async function restartable(name: string, launch: () => Promise<ManagedProcess>): Promise<Restartable> {
  let current = await launch();
  return {
    name,
    pid: () => current.child.pid ?? -1,
    isRunning: () => !current.hasExited(),
    stop: () => current.stop(),
    kill: async () => {
      if (current.child.pid !== undefined && !current.hasExited()) {
        try {
          process.kill(-current.child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      await current.exited;
    },
    start: async () => {
      if (!current.hasExited()) throw new Error(`${name} is still running`);
      current = await launch();
    },
  };
}

async function withTemporal<T>(address: string, use: (connection: Connection) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address });
  try {
    return await use(connection);
  } finally {
    await connection.close();
  }
}

async function waitUntil(name: string, managed: ManagedProcess, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + PROCESS_READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (managed.hasExited()) throw new Error(`${name} exited during start-up (see its log)`);
    if (await ready()) return;
    await sleep(200);
  }
  throw new Error(`${name} was not ready after ${PROCESS_READY_TIMEOUT_MS / 1000}s`);
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

/** The pid of each process of a stack with its API, by the name the CPU and memory tables use. */
export function stackProcessIds(stack: LocalStack): Record<string, number> {
  return {
    temporal: stack.temporal.pid(),
    worker: stack.worker.pid(),
    api: stack.api!.pid(),
    postgresql: stack.postgres.pid(),
    redis: stack.redis.pid(),
  };
}

/** Resident memory of a process in bytes, from /proc (Linux). */
export function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}
