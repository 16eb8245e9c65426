/**
 * `npm start`: provisions what is missing, brings up PostgreSQL, Redis and the Temporal dev
 * server (each unless its address is given), applies migrations, then runs the worker and the
 * API, and records their addresses in `.data/endpoints.json` for the helper commands (see
 * local-endpoints.ts). Ctrl-C or SIGTERM stops everything it started, the worker and API first,
 * and removes that file.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { migrateDatabase } from '../db/client';
import { assertPortFree, freePort, ProcessGroup, startPostgres, startRedis, startTemporalDevServer } from './services';
import { LOCAL_ENDPOINTS_FILE, recordLocalEndpoints } from './local-endpoints';
import {
  appEnvironment,
  DATA_DIR,
  LocalRun,
  entryPoint,
  postgresDataDir,
  printReady,
  redactPassword,
  waitForHttp,
  type Endpoints,
} from './local-run';
import { ensureServerBinaries, ensureTemporalCli, ensureWalkthroughTools, log, settleAll } from './tools';

const LOG_DIR = path.join(DATA_DIR, 'logs');
const DATABASE_NAME = 'billing';
const API_READY_TIMEOUT_MS = 120_000;
const WORKER_METRICS_PORT = 9464;
// The API's /metrics on a loopback port of its own, never on the API's port: as deployed.
const API_METRICS_PORT = 9465;

const servers = new ProcessGroup();
const apps = new ProcessGroup();
const run = new LocalRun({ apps, servers, endpointsFile: LOCAL_ENDPOINTS_FILE });

async function main(): Promise<void> {
  servers.onUnexpectedExit(run.stopOnCrash);
  apps.onUnexpectedExit(run.stopOnCrash);

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
  if (run.shuttingDown) return;

  const env = { ...appEnvironment(endpoints, port), WORKER_METRICS_ADDRESS: workerMetricsAddress, API_METRICS_ADDRESS: apiMetricsAddress };
  apps.spawn('worker', process.execPath, ['--import', 'tsx', entryPoint('worker')], { env, stopGraceMs: 60_000 });
  apps.spawn('api', process.execPath, ['--import', 'tsx', entryPoint('api')], { env, stopGraceMs: 30_000 });
  await waitForApi(`http://127.0.0.1:${port}/healthz`);
  if (run.shuttingDown) return;
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
            dataDir: postgresDataDir(DATA_DIR),
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

async function waitForApi(url: string): Promise<void> {
  await waitForHttp(url, 'the API', API_READY_TIMEOUT_MS, () => run.shuttingDown);
}

function printSummary(endpoints: Endpoints, port: number, metricsAddresses: { api: string; worker: string }): void {
  if (run.shuttingDown) return;
  const rows: Array<[string, string]> = [
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
  printReady(rows);
}

run.start(main);
