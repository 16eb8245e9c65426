/**
 * `npm run cluster`: the production topology on loopback. PostgreSQL and Redis (data in
 * `.data/cluster/`), the Temporal server proper on that PostgreSQL with its Web UI
 * (scripts/temporal-cluster.ts), `WORKERS` worker processes and `API_INSTANCES` API processes
 * (2 each by default) behind nginx on `PORT` (scripts/load-balancer.ts). Workers and APIs are
 * supervised: one that dies is restarted with backoff (scripts/supervisor.ts); any server that
 * dies stops everything, as with `npm start`. Ctrl-C or SIGTERM stops it all.
 *
 * Its addresses go to `.data/cluster/endpoints.json`, never `npm start`'s file, and every port but
 * PORT, TEMPORAL_PORT and TEMPORAL_UI_PORT is a free one, so it runs beside `npm start` given
 * other public ports: PORT=3100 TEMPORAL_PORT=7333 TEMPORAL_UI_PORT=8333 npm run cluster.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { migrateDatabase } from '../db/client';
import { CLUSTER_ENDPOINTS_FILE, recordLocalEndpoints } from './local-endpoints';
import { startLoadBalancer } from './load-balancer';
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
import { assertPortFree, freePort, ProcessGroup, startPostgres, startRedis } from './services';
import { Supervisor } from './supervisor';
import { startTemporalCluster } from './temporal-cluster';
import {
  ensureNginx,
  ensureServerBinaries,
  ensureTemporalServer,
  ensureTemporalUiServer,
  ensureWalkthroughTools,
  log,
  REPO_ROOT,
  settleAll,
} from './tools';

const CLUSTER_DIR = path.join(DATA_DIR, 'cluster');
const LOG_DIR = path.join(CLUSTER_DIR, 'logs');
const DATABASE_NAME = 'billing';
const READY_TIMEOUT_MS = 180_000;

interface Settings {
  port: number;
  temporalPort: number;
  uiPort: number;
  workers: number;
  apis: number;
}

const servers = new ProcessGroup();
// A restart is announced in the terminal and in the process's own log, where its last words are.
const apps = new Supervisor(new ProcessGroup(), {
  log: (message, name) => {
    console.log(`[cluster] ${message}`);
    appendFileSync(path.join(LOG_DIR, `${name}.log`), `[cluster] ${new Date().toISOString()} ${message}\n`);
  },
});
const run = new LocalRun({ apps, servers, endpointsFile: CLUSTER_ENDPOINTS_FILE });

async function main(): Promise<void> {
  servers.onUnexpectedExit(run.stopOnCrash);
  mkdirSync(LOG_DIR, { recursive: true });
  const settings = readSettings();
  const hint = 'set PORT, TEMPORAL_PORT and TEMPORAL_UI_PORT to run the cluster on other ports (e.g. beside npm start)';
  for (const port of [settings.port, settings.temporalPort, settings.uiPort]) await assertPortFree(port, hint);

  const [endpoints] = await settleAll([startServers(settings), ensureWalkthroughTools()]);
  if (run.shuttingDown) return;
  const appPorts = await startApps(endpoints, settings);
  const nginx = await ensureNginx();
  await startLoadBalancer(servers, {
    nginx,
    dir: path.join(CLUSTER_DIR, 'nginx'),
    port: settings.port,
    upstreams: appPorts.apis.map((port) => `127.0.0.1:${port}`),
    logFile: path.join(LOG_DIR, 'nginx.log'),
  });
  // Through nginx: ready once at least one API answers behind it.
  await waitForHttp(`http://127.0.0.1:${settings.port}/healthz`, 'the load balancer', READY_TIMEOUT_MS, () => run.shuttingDown);
  await Promise.all(appPorts.apis.map((port) => waitForHttp(`http://127.0.0.1:${port}/healthz`, 'an API', READY_TIMEOUT_MS, () => run.shuttingDown)));
  if (run.shuttingDown) return;
  recordLocalEndpoints(
    {
      API_URL: `http://localhost:${settings.port}`,
      ...(endpoints.temporalUiUrl ? { TEMPORAL_UI_URL: endpoints.temporalUiUrl } : {}),
      DATABASE_URL: endpoints.databaseUrl,
      REDIS_URL: endpoints.redisUrl,
      TEMPORAL_ADDRESS: endpoints.temporalAddress,
    },
    CLUSTER_ENDPOINTS_FILE,
  );
  printSummary(endpoints, settings, appPorts);
}

function readSettings(): Settings {
  const number = (name: string, fallback: number, min: number) => {
    const text = process.env[name];
    const value = text ? Number(text) : fallback;
    if (!Number.isInteger(value) || value < min) throw new Error(`${name}=${text} is not a whole number of at least ${min}`);
    return value;
  };
  const temporalPort = number('TEMPORAL_PORT', 7233, 1);
  return {
    port: number('PORT', 3000, 1),
    temporalPort,
    uiPort: number('TEMPORAL_UI_PORT', temporalPort + 1000, 1),
    workers: number('WORKERS', 2, 1),
    apis: number('API_INSTANCES', 2, 1),
  };
}

/** PostgreSQL (the app's database and Temporal's two), Redis, the Temporal server and its UI; migrations applied. */
async function startServers(settings: Settings): Promise<Endpoints> {
  const [binaries, temporalBinaries, uiServer] = await settleAll([
    ensureServerBinaries({ postgres: true, redis: true }),
    ensureTemporalServer(),
    ensureTemporalUiServer(),
  ]);
  const [pgPort, redisPort] = await Promise.all([freePort(), freePort()]);
  const [postgres, redis] = await settleAll([
    startPostgres(servers, {
      binaries: binaries.postgres!,
      dataDir: postgresDataDir(CLUSTER_DIR, `${REPO_ROOT}#cluster`),
      port: pgPort,
      database: DATABASE_NAME,
      logFile: path.join(LOG_DIR, 'postgresql.log'),
      durable: true,
    }),
    startRedis(servers, {
      redisServer: binaries.redisServer!,
      dataDir: path.join(CLUSTER_DIR, 'redis'),
      port: redisPort,
      logFile: path.join(LOG_DIR, 'redis.log'),
    }),
  ]);
  const [temporal] = await settleAll([
    startTemporalCluster(servers, {
      binaries: temporalBinaries,
      uiServer,
      postgres: { host: '127.0.0.1', port: pgPort, user: 'postgres' },
      frontendPort: settings.temporalPort,
      uiPort: settings.uiPort,
      dir: CLUSTER_DIR,
      logFile: path.join(LOG_DIR, 'temporal.log'),
      uiLogFile: path.join(LOG_DIR, 'temporal-ui.log'),
    }),
    migrateDatabase(postgres.url).then(() => log('postgresql: migrations applied')),
  ]);
  return { databaseUrl: postgres.url, redisUrl: redis.url, temporalAddress: temporal.address, temporalUiUrl: temporal.uiUrl };
}

interface AppPorts {
  apis: number[];
  apiMetrics: number[];
  workerMetrics: number[];
}

/** The supervised workers and APIs, each on free ports of its own, logging to .data/cluster/logs. */
async function startApps(endpoints: Endpoints, settings: Settings): Promise<AppPorts> {
  const free = (count: number) => Promise.all(Array.from({ length: count }, () => freePort()));
  const [apiPorts, apiMetricsPorts, metricsPorts] = await Promise.all([free(settings.apis), free(settings.apis), free(settings.workers)]);
  const env = appEnvironment(endpoints, settings.port);
  // Only nginx connects to the APIs: the client is the address it appends to X-Forwarded-For.
  env.TRUST_PROXY ||= '1';
  const run = (name: string, entry: 'worker' | 'api', own: NodeJS.ProcessEnv, stopGraceMs: number) =>
    apps.supervise(name, (group) =>
      group.spawn(name, process.execPath, ['--import', 'tsx', entryPoint(entry)], {
        env: { ...env, ...own },
        logFile: path.join(LOG_DIR, `${name}.log`),
        stopGraceMs,
      }),
    );
  metricsPorts.forEach((port, i) => run(`worker-${i + 1}`, 'worker', { WORKER_METRICS_ADDRESS: `127.0.0.1:${port}` }, 60_000));
  // Each API's /metrics on a loopback port of its own, as deployed: never on the port nginx serves.
  apiPorts.forEach((port, i) => run(`api-${i + 1}`, 'api', { PORT: String(port), API_METRICS_ADDRESS: `127.0.0.1:${apiMetricsPorts[i]}` }, 30_000));
  return { apis: apiPorts, apiMetrics: apiMetricsPorts, workerMetrics: metricsPorts };
}

function printSummary(endpoints: Endpoints, settings: Settings, ports: AppPorts): void {
  if (run.shuttingDown) return;
  const list = (urls: string[]) => urls.join(' ');
  printReady([
    ['API', `http://localhost:${settings.port} (nginx in front of ${ports.apis.length} API processes)`],
    ['API docs', `http://localhost:${settings.port}/docs`],
    ['Metrics', `APIs: ${list(ports.apiMetrics.map((p) => `http://127.0.0.1:${p}/metrics`))}`],
    ['', `workers: ${list(ports.workerMetrics.map((p) => `http://127.0.0.1:${p}/metrics`))}`],
    ['Temporal UI', endpoints.temporalUiUrl ?? '(none)'],
    ['Temporal', `${endpoints.temporalAddress} (Temporal server on PostgreSQL, 16 history shards)`],
    ['PostgreSQL', redactPassword(endpoints.databaseUrl)],
    ['Redis', redactPassword(endpoints.redisUrl)],
    ['Logs', path.relative(process.cwd(), LOG_DIR) || LOG_DIR],
    [
      'Endpoints',
      `${path.relative(process.cwd(), CLUSTER_ENDPOINTS_FILE)} (npm run manage uses these; beside npm start: ENDPOINTS_FILE=${path.relative(process.cwd(), CLUSTER_ENDPOINTS_FILE)})`,
    ],
  ]);
}

run.start(main);
