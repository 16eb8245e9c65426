/**
 * The Temporal server proper, as production runs it: persistence and visibility in two databases
 * of a PostgreSQL server (beside, never inside, the app's own database), schemas applied with
 * Temporal's SQL tool, 16 history shards, the shared dynamic config, Prometheus metrics, and the
 * Web UI server pointed at it. One config template (deploy/temporal/config.yaml) filled from the
 * environment, so this and docker-compose.temporal.yml run the same configuration.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { registerSearchAttributes } from '../platform/search-attributes';
import { answersOk, freePort, waitForProcess, withTemporalConnection, type ManagedProcess, type ProcessGroup } from './services';
import { describeError, log, REPO_ROOT, seconds, type TemporalServerBinaries } from './tools';

export const TEMPORAL_CONFIG_FILE = path.join(REPO_ROOT, 'deploy', 'temporal', 'config.yaml');
export const TEMPORAL_DYNAMIC_CONFIG_FILE = path.join(REPO_ROOT, 'deploy', 'temporal', 'dynamic-config.yaml');
const SETUP_SCHEMA_SCRIPT = path.join(REPO_ROOT, 'deploy', 'temporal', 'setup-schema.sh');

const NAMESPACE = 'default';
// Closed workflows' histories are kept this long, then deleted; long enough to look into a
// weekend's incident, short enough that visibility stays small.
const RETENTION_SECONDS = 3 * 24 * 3600;

export interface TemporalClusterOptions {
  binaries: TemporalServerBinaries;
  /** The UI server; no UI without it. */
  uiServer?: string;
  /** The PostgreSQL server that holds the `temporal` and `temporal_visibility` databases. */
  postgres: { host: string; port: number; user: string; password?: string };
  frontendPort: number;
  uiPort?: number;
  /** Where the UI's config goes. */
  dir: string;
  logFile: string;
  uiLogFile?: string;
  historyShards?: number;
}

export interface TemporalCluster {
  address: string;
  uiUrl?: string;
  /** The server's own Prometheus metrics. */
  metricsUrl: string;
  server: ManagedProcess;
  ui?: ManagedProcess;
  /** Starts the server again on the same ports and databases (after it was stopped or killed); resolves once it serves. */
  startServer(): Promise<ManagedProcess>;
}

/**
 * Applies the schemas, starts the server, creates the `default` namespace when missing and
 * registers the app's search attributes, then starts the UI. Safe on data of an earlier run.
 */
export async function startTemporalCluster(group: ProcessGroup, options: TemporalClusterOptions): Promise<TemporalCluster> {
  const env = await serverEnvironment(options);
  await setupTemporalDatabases(options.binaries.sqlTool, env, options.logFile);
  const address = `127.0.0.1:${options.frontendPort}`;
  const startServer = async () => {
    const started = Date.now();
    const server = group.spawn('temporal', options.binaries.server, ['--config-file', TEMPORAL_CONFIG_FILE, '--allow-no-auth', 'start'], {
      env,
      logFile: options.logFile,
      stopGraceMs: 30_000,
    });
    await waitForProcess('temporal', server, () => namespaceReady(address));
    log(`temporal: server ready in ${seconds(started)}`);
    return server;
  };
  const server = await startServer();
  await withTemporalConnection(address, (connection) => registerSearchAttributes(connection, NAMESPACE));
  const metricsUrl = `http://${env.TEMPORAL_METRICS_ADDRESS}/metrics`;
  if (!options.uiServer || options.uiPort === undefined) return { address, metricsUrl, server, startServer };
  const ui = await startTemporalUi(group, {
    uiServer: options.uiServer,
    dir: path.join(options.dir, 'temporal-ui'),
    port: options.uiPort,
    temporalAddress: address,
    logFile: options.uiLogFile ?? options.logFile,
  });
  return { address, uiUrl: `http://localhost:${options.uiPort}`, metricsUrl, server, ui, startServer };
}

/** Every value deploy/temporal/config.yaml reads; internal ports are free ones. */
async function serverEnvironment(options: TemporalClusterOptions): Promise<NodeJS.ProcessEnv> {
  const [http, history, matching, worker, metrics] = await Promise.all(Array.from({ length: 5 }, () => freePort()));
  const [frontendRing, historyRing, matchingRing, workerRing] = await freeMembershipPorts(4);
  return {
    PATH: process.env.PATH,
    TEMPORAL_DB_HOST: options.postgres.host,
    TEMPORAL_DB_PORT: String(options.postgres.port),
    TEMPORAL_DB_USER: options.postgres.user,
    TEMPORAL_DB_PASSWORD: options.postgres.password ?? '',
    TEMPORAL_HISTORY_SHARDS: String(options.historyShards ?? 16),
    TEMPORAL_BIND_IP: '127.0.0.1',
    TEMPORAL_BROADCAST_ADDRESS: '127.0.0.1',
    TEMPORAL_FRONTEND_PORT: String(options.frontendPort),
    TEMPORAL_FRONTEND_HTTP_PORT: String(http),
    TEMPORAL_FRONTEND_MEMBERSHIP_PORT: String(frontendRing),
    TEMPORAL_HISTORY_PORT: String(history),
    TEMPORAL_HISTORY_MEMBERSHIP_PORT: String(historyRing),
    TEMPORAL_MATCHING_PORT: String(matching),
    TEMPORAL_MATCHING_MEMBERSHIP_PORT: String(matchingRing),
    TEMPORAL_WORKER_PORT: String(worker),
    TEMPORAL_WORKER_MEMBERSHIP_PORT: String(workerRing),
    TEMPORAL_METRICS_ADDRESS: `127.0.0.1:${metrics}`,
    TEMPORAL_DYNAMIC_CONFIG_FILE: TEMPORAL_DYNAMIC_CONFIG_FILE,
  };
}

/**
 * Free ports for the services' membership rings. The server records each host's ring port in a
 * PostgreSQL `smallint` (cluster_membership.rpc_port), so it must be below 32768, under the
 * kernel's range of ephemeral ports that freePort() draws from: try random ones there.
 */
async function freeMembershipPorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let attempt = 0; ports.size < count && attempt < 200; attempt++) {
    const port = MEMBERSHIP_PORT_MIN + Math.floor(Math.random() * (MEMBERSHIP_PORT_MAX - MEMBERSHIP_PORT_MIN));
    if (!ports.has(port) && (await isPortFree(port))) ports.add(port);
  }
  if (ports.size < count) throw new Error(`temporal: found no free membership ports in ${MEMBERSHIP_PORT_MIN}-${MEMBERSHIP_PORT_MAX}`);
  return [...ports];
}

const MEMBERSHIP_PORT_MIN = 20_000;
const MEMBERSHIP_PORT_MAX = 32_767;

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** deploy/temporal/setup-schema.sh, the same script the compose file's schema service runs. */
async function setupTemporalDatabases(sqlTool: string, env: NodeJS.ProcessEnv, logFile: string): Promise<void> {
  const started = Date.now();
  const code = await new Promise<number | string>((resolve) => {
    const child = spawn('sh', [SETUP_SCHEMA_SCRIPT], {
      cwd: REPO_ROOT,
      env: { ...env, TEMPORAL_SQL_TOOL: sqlTool },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk));
    child.on('error', (error) => resolve(describeError(error)));
    child.on('close', (exitCode, signal) => {
      writeFileSync(logFile, Buffer.concat(output), { flag: 'a' });
      resolve(exitCode ?? signal ?? 'no exit code');
    });
  });
  if (code !== 0) throw new Error(`temporal: schema setup failed (${code}); see ${logFile}`);
  log(`temporal: databases and schemas ready in ${seconds(started)}`);
}

/** The Web UI's server, configured by a file of its own (its config is not the server's). */
export async function startTemporalUi(
  group: ProcessGroup,
  options: { uiServer: string; dir: string; port: number; temporalAddress: string; logFile: string },
): Promise<ManagedProcess> {
  mkdirSync(path.join(options.dir, 'config'), { recursive: true });
  const config = [
    `temporalGrpcAddress: ${options.temporalAddress}`,
    'host: 127.0.0.1',
    `port: ${options.port}`,
    'enableUi: true',
    `defaultNamespace: ${NAMESPACE}`,
    'notifyOnNewVersion: false',
    'cors:',
    '  cookieInsecure: true',
    '  allowOrigins:',
    `    - http://localhost:${options.port}`,
    '',
  ].join('\n');
  writeFileSync(path.join(options.dir, 'config', 'development.yaml'), config);
  const ui = group.spawn('temporal-ui', options.uiServer, ['--root', options.dir, '--env', 'development', 'start'], { logFile: options.logFile });
  await waitForProcess('temporal UI', ui, () => answersOk(`http://127.0.0.1:${options.port}/`));
  return ui;
}

/**
 * True once the `default` namespace serves requests; registers it on first sight. A namespace
 * just registered is in the database but not yet in the frontend's namespace cache (refreshed
 * every few seconds), so readiness is a call that goes through that cache.
 */
async function namespaceReady(address: string): Promise<boolean> {
  try {
    return await withTemporalConnection(address, async (connection) => {
      try {
        await connection.workflowService.describeNamespace({ namespace: NAMESPACE });
      } catch (error) {
        if ((error as { code?: number }).code !== NOT_FOUND) return false;
        await registerNamespace(connection);
        log(`temporal: registered namespace ${NAMESPACE} (retention ${RETENTION_SECONDS / 86_400} days)`);
        return false;
      }
      await connection.workflowService.countWorkflowExecutions({ namespace: NAMESPACE });
      return true;
    });
  } catch {
    return false;
  }
}

const NOT_FOUND = 5;
const ALREADY_EXISTS = 6;

async function registerNamespace(connection: Connection): Promise<void> {
  try {
    await connection.workflowService.registerNamespace({
      namespace: NAMESPACE,
      workflowExecutionRetentionPeriod: msToTs(RETENTION_SECONDS * 1000),
    });
  } catch (error) {
    if ((error as { code?: number }).code !== ALREADY_EXISTS) throw error;
  }
}
