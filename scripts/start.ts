/**
 * `npm start`: provisions what is missing, brings up PostgreSQL, Redis and the Temporal dev
 * server (each unless its address is given), applies migrations, then runs the worker and the
 * API, and records their addresses in `.data/endpoints.json` for the helper commands (see
 * local-endpoints.ts). Ctrl-C or SIGTERM stops everything it started, the worker and API first,
 * and removes that file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrateDatabase } from '../db/client';
import {
  assertPortFree,
  freePort,
  postgresCanReach,
  ProcessGroup,
  startPostgres,
  startRedis,
  startTemporalDevServer,
  type ManagedProcess,
} from './services';
import { forgetLocalEndpoints, LOCAL_ENDPOINTS_FILE, recordLocalEndpoints } from './local-endpoints';
import { describeError, ensureServerBinaries, ensureTemporalCli, ensureWalkthroughTools, log, REPO_ROOT, settleAll } from './tools';

const DATA_DIR = path.join(REPO_ROOT, '.data');
const LOG_DIR = path.join(DATA_DIR, 'logs');
const SECRETS_FILE = path.join(DATA_DIR, 'secrets.json');
const DATABASE_NAME = 'billing';
const API_READY_TIMEOUT_MS = 120_000;
const WORKER_METRICS_PORT = 9464;
// The API's /metrics on a loopback port of its own, never on the API's port: as deployed.
const API_METRICS_PORT = 9465;

interface Endpoints {
  databaseUrl: string;
  redisUrl: string;
  temporalAddress: string;
  temporalUiUrl?: string;
}

const servers = new ProcessGroup();
const apps = new ProcessGroup();
let shuttingDown = false;

async function main(): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => void shutdown(0, `received ${signal}`));
  }
  process.on('exit', () => {
    forgetLocalEndpoints();
    apps.killAll();
    servers.killAll();
  });
  const onCrash = (managed: ManagedProcess, code: number | null, signal: string | null) =>
    void shutdown(1, `${managed.name} exited unexpectedly (${signal ?? `exit code ${code}`})`);
  servers.onUnexpectedExit(onCrash);
  apps.onUnexpectedExit(onCrash);

  mkdirSync(LOG_DIR, { recursive: true });
  const port = Number(process.env.PORT ?? 3000);
  await assertPortFree(port, 'set PORT to serve the API elsewhere');
  const workerMetricsAddress = process.env.WORKER_METRICS_ADDRESS || `127.0.0.1:${WORKER_METRICS_PORT}`;
  if (!process.env.WORKER_METRICS_ADDRESS) {
    await assertPortFree(WORKER_METRICS_PORT, "set WORKER_METRICS_ADDRESS to serve the worker's metrics elsewhere");
  }
  // A bare port is one on loopback, as the API reads it.
  const apiMetricsAddress = (process.env.API_METRICS_ADDRESS || String(API_METRICS_PORT)).replace(/^(\d+)$/, '127.0.0.1:$1');
  if (!process.env.API_METRICS_ADDRESS) {
    await assertPortFree(API_METRICS_PORT, "set API_METRICS_ADDRESS to serve the API's metrics elsewhere");
  }
  const [endpoints] = await settleAll([startServers(), ensureWalkthroughTools()]);
  await migrateDatabase(endpoints.databaseUrl);
  log('postgresql: migrations applied');
  if (shuttingDown) return;

  const env = { ...childEnvironment(endpoints, port), WORKER_METRICS_ADDRESS: workerMetricsAddress, API_METRICS_ADDRESS: apiMetricsAddress };
  apps.spawn('worker', process.execPath, ['--import', 'tsx', entryPoint('worker')], { env, stopGraceMs: 60_000 });
  apps.spawn('api', process.execPath, ['--import', 'tsx', entryPoint('api')], { env, stopGraceMs: 30_000 });
  await waitForApi(`http://127.0.0.1:${port}/healthz`);
  if (shuttingDown) return;
  recordLocalEndpoints({
    API_URL: `http://localhost:${port}`,
    ...(endpoints.temporalUiUrl ? { TEMPORAL_UI_URL: endpoints.temporalUiUrl } : {}),
    DATABASE_URL: endpoints.databaseUrl,
    REDIS_URL: endpoints.redisUrl,
    TEMPORAL_ADDRESS: endpoints.temporalAddress,
  });
  printSummary(endpoints, port, { api: apiMetricsAddress, worker: workerMetricsAddress });
}

async function startServers(): Promise<Endpoints> {
  const wantPostgres = !process.env.DATABASE_URL;
  const wantRedis = !process.env.REDIS_URL;
  const wantTemporal = !process.env.TEMPORAL_ADDRESS;
  const temporalPort = Number(process.env.TEMPORAL_PORT ?? 7233);
  const uiPort = Number(process.env.TEMPORAL_UI_PORT ?? temporalPort + 1000);
  if (wantTemporal) {
    const hint = 'set TEMPORAL_ADDRESS to use the server already there, or TEMPORAL_PORT / TEMPORAL_UI_PORT to pick free ports';
    await assertPortFree(temporalPort, hint);
    await assertPortFree(uiPort, hint);
  }
  const [temporalCli, binaries] = await settleAll([
    wantTemporal ? ensureTemporalCli() : undefined,
    ensureServerBinaries({ postgres: wantPostgres, redis: wantRedis }),
  ]);
  const [databaseUrl, redisUrl, temporal] = await settleAll([
    binaries.postgres
      ? freePort().then(async (port) => {
          const server = await startPostgres(servers, {
            binaries: binaries.postgres!,
            dataDir: postgresDataDir(),
            port,
            database: DATABASE_NAME,
            logFile: path.join(LOG_DIR, 'postgresql.log'),
            durable: true,
          });
          return server.url;
        })
      : process.env.DATABASE_URL!,
    binaries.redisServer
      ? freePort().then(async (port) => {
          const server = await startRedis(servers, {
            redisServer: binaries.redisServer!,
            dataDir: path.join(DATA_DIR, 'redis'),
            port,
            logFile: path.join(LOG_DIR, 'redis.log'),
          });
          return server.url;
        })
      : process.env.REDIS_URL!,
    temporalCli
      ? startTemporalDevServer(servers, {
          cli: temporalCli,
          dbFile: path.join(DATA_DIR, 'temporal.db'),
          port: temporalPort,
          uiPort,
          logFile: path.join(LOG_DIR, 'temporal.log'),
        })
      : undefined,
  ]);
  return {
    databaseUrl,
    redisUrl,
    temporalAddress: temporal?.address ?? process.env.TEMPORAL_ADDRESS!,
    temporalUiUrl: temporal?.uiUrl ?? process.env.TEMPORAL_UI_URL,
  };
}

/** `.data/postgres`, unless the `postgres` user cannot enter the checkout (e.g. under /root). */
function postgresDataDir(): string {
  if (postgresCanReach(DATA_DIR)) return path.join(DATA_DIR, 'postgres');
  const digest = createHash('sha256').update(REPO_ROOT).digest('hex').slice(0, 12);
  const fallback = path.join(os.tmpdir(), `billing-postgres-${digest}`);
  log(`postgresql: the postgres user cannot enter ${DATA_DIR}; keeping the cluster in ${fallback}`);
  return fallback;
}

function childEnvironment(endpoints: Endpoints, port: number): NodeJS.ProcessEnv {
  const secrets = localSecrets();
  return {
    ...process.env,
    NODE_ENV: process.env.NODE_ENV ?? 'development',
    PORT: String(port),
    DATABASE_URL: endpoints.databaseUrl,
    REDIS_URL: endpoints.redisUrl,
    TEMPORAL_ADDRESS: endpoints.temporalAddress,
    ...(endpoints.temporalUiUrl ? { TEMPORAL_UI_URL: endpoints.temporalUiUrl } : {}),
    JWT_SECRET: process.env.JWT_SECRET || secrets.JWT_SECRET,
    STRIPE_WEBHOOK_SECRET: process.env.STRIPE_WEBHOOK_SECRET || secrets.STRIPE_WEBHOOK_SECRET,
  };
}

interface LocalSecrets {
  JWT_SECRET: string;
  STRIPE_WEBHOOK_SECRET: string;
}

/**
 * A fresh clone has no secrets; generate them once and keep them in the ignored data folder,
 * so tokens and webhook signatures stay valid across restarts.
 */
function localSecrets(): LocalSecrets {
  if (existsSync(SECRETS_FILE)) return JSON.parse(readFileSync(SECRETS_FILE, 'utf8')) as LocalSecrets;
  const secrets: LocalSecrets = {
    JWT_SECRET: randomBytes(48).toString('base64url'),
    STRIPE_WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64url')}`,
  };
  writeFileSync(SECRETS_FILE, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  log(`secrets: generated JWT_SECRET and STRIPE_WEBHOOK_SECRET into ${path.relative(REPO_ROOT, SECRETS_FILE)}`);
  return secrets;
}

function entryPoint(name: 'worker' | 'api'): string {
  const file = path.join(REPO_ROOT, 'workers', `${name}.ts`);
  if (!existsSync(file)) throw new Error(`${path.relative(REPO_ROOT, file)} is missing`);
  return file;
}

async function waitForApi(url: string): Promise<void> {
  const started = Date.now();
  while (!shuttingDown && Date.now() - started < API_READY_TIMEOUT_MS) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(250);
  }
  if (!shuttingDown) throw new Error(`the API did not answer ${url} within ${API_READY_TIMEOUT_MS / 1000}s`);
}

function printSummary(endpoints: Endpoints, port: number, metricsAddresses: { api: string; worker: string }): void {
  if (shuttingDown) return;
  const rows = [
    ['API', `http://localhost:${port}`],
    ['API docs', `http://localhost:${port}/docs`],
    ['Metrics', `API: http://${metricsAddresses.api}/metrics · worker: http://${metricsAddresses.worker}/metrics (internal, not on the API's port)`],
    ['Temporal UI', endpoints.temporalUiUrl ?? '(not known: set TEMPORAL_UI_URL)'],
    ['Temporal', endpoints.temporalAddress],
    ['PostgreSQL', redactPassword(endpoints.databaseUrl)],
    ['Redis', redactPassword(endpoints.redisUrl)],
    ['Server logs', path.relative(process.cwd(), LOG_DIR) || LOG_DIR],
    ['Endpoints', `${path.relative(process.cwd(), LOCAL_ENDPOINTS_FILE)} (npm run manage in another terminal uses these)`],
  ];
  console.log(`\nReady.\n${rows.map(([name, value]) => `  ${name.padEnd(12)} ${value}`).join('\n')}\nPress Ctrl-C to stop.\n`);
}

function redactPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

async function shutdown(code: number, reason: string): Promise<void> {
  // npm and tsx may each relay the same Ctrl-C; the first one wins.
  if (shuttingDown) return;
  shuttingDown = true;
  log(`stopping (${reason})`);
  forgetLocalEndpoints();
  await apps.stop();
  await servers.stop();
  log('stopped');
  process.exit(code);
}

main().catch((error: unknown) => {
  console.error(`[platform] ${describeError(error)}`);
  void shutdown(1, 'start-up failed');
});
