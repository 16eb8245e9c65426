/**
 * A whole stack that one benchmark run or one fault drill owns: PostgreSQL, Redis and a Temporal
 * dev server on free loopback ports with throw-away data, the worker (bench/worker.ts) and,
 * when asked, the API (workers/api.ts), each in a process of its own. Every piece can be stopped,
 * killed and started again on the same port and data: that is how the drills inject faults.
 *
 * `temporal: 'cluster'` runs the production topology instead: the Temporal server proper on the
 * same PostgreSQL (scripts/temporal-cluster.ts) with its UI, `workers` worker processes and
 * `apis` API processes, behind nginx (scripts/load-balancer.ts) when there are several.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { migrateDatabase } from '../db/client';
import { startLoadBalancer } from '../scripts/load-balancer';
import {
  answersOk,
  freePort,
  ProcessGroup,
  startPostgres,
  startRedis,
  startTemporalDevServer,
  waitForProcess,
  withTemporalConnection,
  type ManagedProcess,
} from '../scripts/services';
import { startTemporalCluster } from '../scripts/temporal-cluster';
import {
  ensureNginx,
  ensureServerBinaries,
  ensureTemporalCli,
  ensureTemporalServer,
  ensureTemporalUiServer,
  REPO_ROOT,
  settleAll,
} from '../scripts/tools';
import { registerSearchAttributes } from '../platform/search-attributes';

// The stack is the only client: no request may be turned away by a limit meant for the internet.
const UNLIMITED = '1000000000';

export interface StackOptions {
  /** Prefix of the temporary folder (data and logs). */
  name: string;
  /** Also run the API process. */
  api?: boolean;
  /** The dev server (default), or the Temporal server proper on the stack's PostgreSQL with its UI. */
  temporal?: 'dev' | 'cluster';
  /** Worker processes (default 1). */
  workers?: number;
  /** API processes when `api` (default 1). */
  apis?: number;
  /** nginx in front of the APIs (default: when there are several); then `apiUrl` is nginx's. */
  loadBalancer?: boolean;
  /** Keep Temporal's state in a SQLite file (as `npm start` does), so a restart resumes it. */
  temporalDbFile?: boolean;
  /** The dev server's dynamic config, in place of DEV_SERVER_DYNAMIC_CONFIG (not for the cluster, which reads its file). */
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
  /** e.g. http://127.0.0.1:41234 when the API runs: the load balancer's address when there is one. */
  apiUrl?: string;
  /** Each API process directly, in the order of `apis`. */
  apiInstanceUrls: string[];
  /** The Temporal Web UI (cluster only). */
  temporalUiUrl?: string;
  /**
   * The worker's and the API's environment (secrets, URLs, knobs), read at every start: a drill
   * may change it (send the worker to PostgreSQL through a proxy, say) and restart the process.
   */
  env: NodeJS.ProcessEnv;
  gatewayLogFile?: string;
  /**
   * Prometheus endpoints: the Temporal server's own metrics and the workers' SDK metrics
   * (bench/metrics.ts); `worker` is the first worker's.
   */
  metricsUrls: { temporal: string; worker: string; workers: string[] };
  /** What the first worker reported at start-up: its pid and effective per-queue settings. */
  workerSettings(): WorkerSettings;
  /** The first worker's ready file, also the base name of its memory readings (bench/worker-memory.ts). */
  workerReadyFile: string;
  postgres: Restartable;
  redis: Restartable;
  /** The dev server, or in cluster mode the Temporal server proper (its UI is not restarted with it). */
  temporal: Restartable;
  /** The first of `workers`. */
  worker: Restartable;
  workers: Restartable[];
  /** The first of `apis`. */
  api?: Restartable;
  apis: Restartable[];
  loadBalancer?: Restartable;
  stop(options?: { keepDir?: boolean }): Promise<void>;
}

export async function startLocalStack(options: StackOptions): Promise<LocalStack> {
  const group = new ProcessGroup();
  process.once('exit', () => group.killAll());
  const dir = mkdtempSync(path.join(os.tmpdir(), `${options.name}-`));
  // As root, PostgreSQL runs as `postgres`, which must be able to enter this folder.
  chmodSync(dir, 0o755);
  try {
    const servers = await startServers(group, dir, options);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_ENV: 'production',
      LOG_LEVEL: process.env.LOG_LEVEL || 'warn',
      DATABASE_URL: servers.databaseUrl,
      REDIS_URL: servers.redisUrl,
      TEMPORAL_ADDRESS: servers.temporalAddress,
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
    const gatewayLogFile = options.recordGateway ? path.join(dir, 'gateway-calls.jsonl') : undefined;
    const [workers, apis] = await Promise.all([
      startWorkers(group, dir, env, { ...options, gatewayLogFile }),
      options.api ? startApis(group, dir, env, options) : { processes: [], urls: [], ports: [] },
    ]);
    const balanced = options.api && (options.loadBalancer ?? apis.processes.length > 1);
    const loadBalancer = balanced ? await startBalancer(group, dir, apis.ports) : undefined;

    return {
      dir,
      databaseUrl: servers.databaseUrl,
      redisUrl: servers.redisUrl,
      temporalAddress: servers.temporalAddress,
      apiUrl: loadBalancer?.url ?? apis.urls[0],
      apiInstanceUrls: apis.urls,
      temporalUiUrl: servers.temporalUiUrl,
      env,
      gatewayLogFile,
      metricsUrls: { temporal: servers.temporalMetricsUrl, worker: workers.metricsUrls[0], workers: workers.metricsUrls },
      workerSettings: () => JSON.parse(readFileSync(workers.readyFiles[0], 'utf8')) as WorkerSettings,
      workerReadyFile: workers.readyFiles[0],
      postgres: servers.postgres,
      redis: servers.redis,
      temporal: servers.temporal,
      worker: workers.processes[0],
      workers: workers.processes,
      api: apis.processes[0],
      apis: apis.processes,
      loadBalancer: loadBalancer?.process,
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

const logFile = (dir: string, name: string) => path.join(dir, `${name}.log`);
/** `worker`, or `worker-1`, `worker-2`… when there are several. */
const instanceName = (kind: string, index: number, count: number) => (count === 1 ? kind : `${kind}-${index + 1}`);

interface StackServers {
  databaseUrl: string;
  redisUrl: string;
  temporalAddress: string;
  temporalUiUrl?: string;
  temporalMetricsUrl: string;
  postgres: Restartable;
  redis: Restartable;
  temporal: Restartable;
}

/** PostgreSQL, Redis and Temporal; migrations applied and the search attributes registered. */
async function startServers(group: ProcessGroup, dir: string, options: StackOptions): Promise<StackServers> {
  const cluster = options.temporal === 'cluster';
  const [temporalCli, binaries, temporalBinaries, uiServer] = await settleAll([
    cluster ? undefined : ensureTemporalCli(),
    ensureServerBinaries({ postgres: true, redis: true }),
    cluster ? ensureTemporalServer() : undefined,
    cluster ? ensureTemporalUiServer() : undefined,
  ]);
  const [pgPort, redisPort, temporalPort, temporalMetricsPort, uiPort] = await Promise.all(Array.from({ length: 5 }, () => freePort()));
  const pgOptions = {
    binaries: binaries.postgres!,
    dataDir: path.join(dir, 'postgres'),
    port: pgPort,
    database: 'billing_bench',
    logFile: logFile(dir, 'postgresql'),
    durable: options.durablePostgres ?? false,
  };
  const redisOptions = { redisServer: binaries.redisServer!, dataDir: path.join(dir, 'redis'), port: redisPort, logFile: logFile(dir, 'redis') };
  const temporalOptions = {
    cli: temporalCli!,
    port: temporalPort,
    logFile: logFile(dir, 'temporal'),
    ...(options.temporalDbFile ? { dbFile: path.join(dir, 'temporal.db') } : {}),
    dynamicConfig: options.temporalDynamicConfig,
    metricsPort: temporalMetricsPort,
  };
  // The dev server needs nothing of the others: all three start at once.
  const [postgres, redis, devServer] = await Promise.all([
    restartable('postgresql', async () => (await startPostgres(group, pgOptions)).process),
    restartable('redis', async () => (await startRedis(group, redisOptions)).process),
    cluster ? undefined : restartable('temporal', async () => (await startTemporalDevServer(group, temporalOptions)).process),
  ]);
  const databaseUrl = `postgres://postgres@127.0.0.1:${pgPort}/${pgOptions.database}`;
  const migrated = migrateDatabase(databaseUrl);
  // Awaited below; a failure meanwhile must not surface as an unhandled rejection first.
  migrated.catch(() => undefined);
  if (!cluster) {
    const temporalAddress = `127.0.0.1:${temporalPort}`;
    await migrated;
    await withTemporalConnection(temporalAddress, (connection) => registerSearchAttributes(connection, 'default'));
    return {
      databaseUrl,
      redisUrl: `redis://127.0.0.1:${redisPort}`,
      temporalAddress,
      temporalMetricsUrl: `http://127.0.0.1:${temporalMetricsPort}/metrics`,
      postgres,
      redis,
      temporal: devServer!,
    };
  }
  // Temporal's two databases live on the same PostgreSQL server as the app's, as in production.
  const temporalCluster = await startTemporalCluster(group, {
    binaries: temporalBinaries!,
    uiServer,
    postgres: { host: '127.0.0.1', port: pgPort, user: 'postgres' },
    frontendPort: temporalPort,
    uiPort,
    dir,
    logFile: logFile(dir, 'temporal'),
    uiLogFile: logFile(dir, 'temporal-ui'),
  });
  let first = true;
  const temporal = await restartable('temporal', async () => {
    if (!first) return temporalCluster.startServer();
    first = false;
    return temporalCluster.server;
  });
  await migrated;
  return {
    databaseUrl,
    redisUrl: `redis://127.0.0.1:${redisPort}`,
    temporalAddress: temporalCluster.address,
    temporalUiUrl: temporalCluster.uiUrl,
    temporalMetricsUrl: temporalCluster.metricsUrl,
    postgres,
    redis,
    temporal,
  };
}

/** The worker processes (bench/worker.ts), started together, each with its metrics port and ready file. */
async function startWorkers(
  group: ProcessGroup,
  dir: string,
  env: NodeJS.ProcessEnv,
  options: StackOptions & { gatewayLogFile?: string },
): Promise<{ processes: Restartable[]; readyFiles: string[]; metricsUrls: string[] }> {
  const count = options.workers ?? 1;
  const metricsPorts = await Promise.all(Array.from({ length: count }, () => freePort()));
  const readyFiles = metricsPorts.map((_, i) => path.join(dir, `${instanceName('worker', i, count)}.ready`));
  const processes = await Promise.all(
    metricsPorts.map((metricsPort, i) => {
      const name = instanceName('worker', i, count);
      const args = [
        ...(options.workerNodeArgs ?? []),
        // Runs in every workflow thread too: their heaps, for the footprint (bench/worker-memory.ts).
        '--require',
        path.join(__dirname, 'heap-probe.cjs'),
        '--import',
        'tsx',
        path.join(__dirname, 'worker.ts'),
        '--ready-file',
        readyFiles[i],
        ...(options.gatewayLogFile ? ['--gateway-log', options.gatewayLogFile] : []),
        ...(options.gatewayDelayMs ? ['--gateway-delay-ms', String(options.gatewayDelayMs)] : []),
      ];
      return restartable(name, async () => {
        rmSync(readyFiles[i], { force: true });
        const workerEnv = { ...env, WORKER_METRICS_ADDRESS: `127.0.0.1:${metricsPort}` };
        const managed = group.spawn(name, process.execPath, args, { env: workerEnv, logFile: logFile(dir, name), stopGraceMs: 30_000 });
        await waitForProcess(name, managed, async () => existsSync(readyFiles[i]));
        return managed;
      });
    }),
  );
  return { processes, readyFiles, metricsUrls: metricsPorts.map((port) => `http://127.0.0.1:${port}/metrics`) };
}

/** The API processes (workers/api.ts), each on a port of its own. */
async function startApis(
  group: ProcessGroup,
  dir: string,
  env: NodeJS.ProcessEnv,
  options: StackOptions,
): Promise<{ processes: Restartable[]; urls: string[]; ports: number[] }> {
  const count = options.apis ?? 1;
  const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
  const urls = ports.map((port) => `http://127.0.0.1:${port}`);
  const balanced = options.loadBalancer ?? count > 1;
  const processes = await Promise.all(
    ports.map((port, i) => {
      const name = instanceName('api', i, count);
      return restartable(name, async () => {
        const args = [...(options.apiNodeArgs ?? []), '--import', 'tsx', path.join(REPO_ROOT, 'workers', 'api.ts')];
        // Behind nginx the client is the address it appends to X-Forwarded-For (README, TRUST_PROXY).
        const apiEnv = { ...(balanced ? { TRUST_PROXY: '1' } : {}), ...env, PORT: String(port) };
        const managed = group.spawn(name, process.execPath, args, { env: apiEnv, logFile: logFile(dir, name), stopGraceMs: 30_000 });
        await waitForProcess(name, managed, () => answersOk(`${urls[i]}/healthz`));
        return managed;
      });
    }),
  );
  return { processes, urls, ports };
}

/** nginx in front of the APIs, on a free port; ready once a request through it is answered. */
async function startBalancer(group: ProcessGroup, dir: string, apiPorts: number[]): Promise<{ process: Restartable; url: string }> {
  const [nginx, port] = await Promise.all([ensureNginx(), freePort()]);
  const url = `http://127.0.0.1:${port}`;
  const balancer = await restartable('load-balancer', async () => {
    const options = { nginx, dir: path.join(dir, 'nginx'), port, upstreams: apiPorts.map((p) => `127.0.0.1:${p}`), logFile: logFile(dir, 'nginx') };
    const managed = await startLoadBalancer(group, options);
    await waitForProcess('load-balancer', managed, () => answersOk(`${url}/healthz`));
    return managed;
  });
  return { process: balancer, url };
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

/**
 * The pids of a stack's processes, by the name the CPU and memory tables use: every worker is a
 * `worker`, every API an `api`; `loadBalancer` only when there is one.
 */
export function stackProcessIds(stack: LocalStack): Record<string, number[]> {
  return {
    temporal: [stack.temporal.pid()],
    worker: stack.workers.map((worker) => worker.pid()),
    api: stack.apis.map((api) => api.pid()),
    postgresql: [stack.postgres.pid()],
    redis: [stack.redis.pid()],
    ...(stack.loadBalancer ? { loadBalancer: [stack.loadBalancer.pid()] } : {}),
  };
}

/** Resident memory of a process in bytes, from /proc (Linux). */
export function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}
