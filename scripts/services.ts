/**
 * Starts and stops the local servers (PostgreSQL, Redis, the Temporal dev server, stripe-mock)
 * on 127.0.0.1, each in its own process group so that stopping it also stops its children.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import postgres from 'postgres';
import { describeError, log, type PostgresBinaries } from './tools';

const READY_TIMEOUT_MS = 60_000;

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  readonly hasExited: () => boolean;
  stop(): Promise<void>;
}

interface SystemUser {
  uid: number;
  gid: number;
}

interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Where stdout and stderr go; the terminal when omitted. */
  logFile?: string;
  /** Signal that asks for a prompt, clean shutdown. */
  stopSignal?: NodeJS.Signals;
  /** How long a clean shutdown may take before the group is killed. */
  stopGraceMs?: number;
  user?: SystemUser;
  /** Hands stdout to the caller (child.stdout) instead of the log or terminal. */
  pipeStdout?: boolean;
}

/** The processes one command started; stop() ends them all (in parallel). */
export class ProcessGroup {
  private readonly processes: ManagedProcess[] = [];
  private stopping = false;
  private unexpectedExitListener: ((managed: ManagedProcess, code: number | null, signal: string | null) => void) | undefined;

  spawn(name: string, command: string, args: string[], options: SpawnOptions = {}): ManagedProcess {
    const output = options.logFile ? openSync(options.logFile, 'a') : 'inherit';
    const child = spawn(command, args, {
      cwd: path.resolve(__dirname, '..'),
      env: options.env ?? process.env,
      // Own process group: a terminal's Ctrl-C reaches only us, and we stop servers in order.
      detached: true,
      stdio: ['ignore', options.pipeStdout ? 'pipe' : output, output],
      uid: options.user?.uid,
      gid: options.user?.gid,
    });
    if (typeof output === 'number') closeSync(output);
    let exited = false;
    const exitedPromise = new Promise<void>((resolve) => {
      child.on('exit', (code, signal) => {
        exited = true;
        resolve();
        if (!this.stopping) this.unexpectedExitListener?.(managed, code, signal);
      });
      child.on('error', (error) => {
        exited = true;
        resolve();
        if (!this.stopping) this.unexpectedExitListener?.(managed, null, describeError(error));
      });
    });
    const managed: ManagedProcess = {
      name,
      child,
      exited: exitedPromise,
      hasExited: () => exited,
      stop: () => stopProcess(managed, options.stopSignal ?? 'SIGTERM', options.stopGraceMs ?? 10_000),
    };
    this.processes.push(managed);
    if (this.stopping) void managed.stop();
    return managed;
  }

  /** Called once per process that exits while the group is not stopping. */
  onUnexpectedExit(listener: (managed: ManagedProcess, code: number | null, signal: string | null) => void): void {
    this.unexpectedExitListener = listener;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.processes.map((p) => p.stop()));
  }

  /** Last resort when this process exits without having stopped the group. */
  killAll(): void {
    for (const p of this.processes) if (!p.hasExited()) killGroup(p.child, 'SIGKILL');
  }
}

async function stopProcess(managed: ManagedProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (!managed.hasExited()) {
    killGroup(managed.child, signal);
    const timedOut = await Promise.race([managed.exited.then(() => false), sleep(graceMs, true, { ref: false })]);
    if (timedOut) log(`${managed.name}: no clean exit after ${graceMs / 1000}s, killing it`);
  }
  // Whatever the leader left behind in its group goes too.
  killGroup(managed.child, 'SIGKILL');
  await managed.exited;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
  }
}

/** Fails with `hint` when something on this machine already listens on `port`. */
export async function assertPortFree(port: number, hint: string): Promise<void> {
  const free = await new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
  if (!free) throw new Error(`port ${port} is already in use; ${hint}`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface PostgresServer {
  url: string;
  process: ManagedProcess;
}

export interface PostgresOptions {
  binaries: PostgresBinaries;
  dataDir: string;
  port: number;
  database: string;
  logFile: string;
  /** Tests trade crash safety for speed; a developer's database keeps it. */
  durable: boolean;
}

/**
 * Runs PostgreSQL with trust authentication on loopback (user `postgres`), creating the cluster
 * and the database on first use. As root it runs as the `postgres` user: postgres refuses root.
 */
export async function startPostgres(group: ProcessGroup, options: PostgresOptions): Promise<PostgresServer> {
  const user = process.getuid?.() === 0 ? postgresUser() : undefined;
  if (!existsSync(path.join(options.dataDir, 'PG_VERSION'))) initCluster(options, user);
  const speed = options.durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'];
  const child = group.spawn(
    'postgresql',
    options.binaries.postgres,
    [
      '-D',
      options.dataDir,
      '-p',
      String(options.port),
      '-h',
      '127.0.0.1',
      // TCP only: a socket path under a deep data dir can exceed the 107-byte limit.
      '-k',
      '',
      // Test files run two at a time, each with API and worker pools of their own.
      '-c',
      'max_connections=300',
      ...speed,
    ],
    // SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to disconnect.
    { logFile: options.logFile, stopSignal: 'SIGINT', stopGraceMs: 30_000, user },
  );
  const adminUrl = `postgres://postgres@127.0.0.1:${options.port}/postgres`;
  await waitUntilReady('postgresql', child, options.logFile, () => createDatabaseIfMissing(adminUrl, options.database));
  return { url: `postgres://postgres@127.0.0.1:${options.port}/${options.database}`, process: child };
}

function initCluster(options: PostgresOptions, user: SystemUser | undefined): void {
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  if (user) chownSync(options.dataDir, user.uid, user.gid);
  log(`postgresql: creating a cluster in ${options.dataDir}`);
  const result = spawnSync(
    options.binaries.initdb,
    ['-D', options.dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', ...(options.durable ? [] : ['--no-sync'])],
    { encoding: 'utf8', uid: user?.uid, gid: user?.gid },
  );
  if (result.status !== 0) {
    throw new Error(`initdb failed:\n${(result.stderr || result.stdout || describeError(result.error)).trim()}`);
  }
}

/** The uid/gid of the `postgres` system user that Debian's package creates. */
function postgresUser(): SystemUser {
  const entry = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((line) => line.split(':'))
    .find((fields) => fields[0] === 'postgres');
  if (!entry) throw new Error('running as root, but there is no `postgres` user to run PostgreSQL as');
  return { uid: Number(entry[2]), gid: Number(entry[3]) };
}

/**
 * As root PostgreSQL runs as `postgres`, which must be able to enter `dir` (the data dir's
 * parent); a checkout under a private home directory is not reachable.
 */
export function postgresCanReach(dir: string): boolean {
  if (process.getuid?.() !== 0) return true;
  mkdirSync(dir, { recursive: true });
  const user = postgresUser();
  return spawnSync('test', ['-x', dir], { uid: user.uid, gid: user.gid }).status === 0;
}

async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<boolean> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {}, connect_timeout: 2 });
  try {
    const existing = await sql`select 1 from pg_database where datname = ${database}`;
    if (existing.length === 0) await sql.unsafe(`create database "${database.replace(/"/g, '""')}"`);
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

export interface RedisServer {
  url: string;
  process: ManagedProcess;
}

/** Redis without persistence: it holds fast-path locks and caches, never the truth. */
export async function startRedis(
  group: ProcessGroup,
  options: { redisServer: string; dataDir: string; port: number; logFile: string },
): Promise<RedisServer> {
  mkdirSync(options.dataDir, { recursive: true });
  const child = group.spawn(
    'redis',
    options.redisServer,
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(options.port),
      '--dir',
      options.dataDir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      '--logfile',
      '',
    ],
    { logFile: options.logFile },
  );
  await waitUntilReady('redis', child, options.logFile, () => redisAnswersPing(options.port));
  return { url: `redis://127.0.0.1:${options.port}`, process: child };
}

function redisAnswersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

export interface TemporalServer {
  address: string;
  /** The Web UI's address, absent when started headless. */
  uiUrl?: string;
  process: ManagedProcess;
}

/**
 * The dynamic config every Temporal server of this project runs with, from the one file the
 * cluster and the compose file read too (deploy/temporal/dynamic-config.yaml, whose comments say
 * why each value is there). The dev server takes each as `--dynamic-config-value`.
 */
export const DEV_SERVER_DYNAMIC_CONFIG: Readonly<Record<string, number>> = readDynamicConfig(
  path.resolve(__dirname, '..', 'deploy', 'temporal', 'dynamic-config.yaml'),
);

/**
 * The file's flat shape only: `key:` then `  - value: N`, numbers, comments and blank lines. A
 * constraint or any other shape is an error rather than a value silently dropped.
 */
export function readDynamicConfig(file: string): Record<string, number> {
  const values: Record<string, number> = {};
  let key: string | undefined;
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, index) => {
      const text = line.replace(/\s+#.*$/, '').trimEnd();
      if (text === '' || text.trimStart().startsWith('#')) return;
      const keyMatch = /^([A-Za-z][\w.]*):$/.exec(text);
      const valueMatch = /^\s+- value: (-?\d+(?:\.\d+)?)$/.exec(text);
      if (keyMatch) key = keyMatch[1];
      else if (valueMatch && key !== undefined && !(key in values)) values[key] = Number(valueMatch[1]);
      else throw new Error(`${file}:${index + 1}: only \`key:\` and \`  - value: <number>\` lines are understood here: ${line.trim()}`);
    });
  return values;
}

/**
 * `temporal server start-dev`, ready once the `default` namespace answers. State lives in the
 * SQLite file `dbFile`, or in memory without one; no `uiPort` means no Web UI. `dynamicConfig`
 * replaces DEV_SERVER_DYNAMIC_CONFIG (`{}` runs the server's own defaults).
 */
export async function startTemporalDevServer(
  group: ProcessGroup,
  options: {
    cli: string;
    dbFile?: string;
    port: number;
    uiPort?: number;
    logFile: string;
    dynamicConfig?: Readonly<Record<string, number>>;
    /** Serves the server's own Prometheus metrics on 127.0.0.1:<port>/metrics. */
    metricsPort?: number;
  },
): Promise<TemporalServer> {
  if (options.dbFile) mkdirSync(path.dirname(options.dbFile), { recursive: true });
  const persistence = options.dbFile ? ['--db-filename', options.dbFile] : [];
  const ui = options.uiPort === undefined ? ['--headless'] : ['--ui-port', String(options.uiPort)];
  const metrics = options.metricsPort === undefined ? [] : ['--metrics-port', String(options.metricsPort)];
  const dynamicConfig = Object.entries(options.dynamicConfig ?? DEV_SERVER_DYNAMIC_CONFIG).flatMap(([key, value]) => [
    '--dynamic-config-value',
    `${key}=${value}`,
  ]);
  const child = group.spawn(
    'temporal',
    options.cli,
    [
      'server',
      'start-dev',
      ...persistence,
      '--ip',
      '127.0.0.1',
      '--port',
      String(options.port),
      ...ui,
      ...metrics,
      ...dynamicConfig,
      '--log-level',
      'warn',
    ],
    { logFile: options.logFile },
  );
  const address = `127.0.0.1:${options.port}`;
  await waitUntilReady('temporal', child, options.logFile, () => temporalAnswers(address));
  if (options.uiPort === undefined) return { address, process: child };
  const uiUrl = `http://localhost:${options.uiPort}`;
  await waitUntilReady('temporal UI', child, options.logFile, () => httpAnswers(`http://127.0.0.1:${options.uiPort}/`));
  return { address, uiUrl, process: child };
}

async function temporalAnswers(address: string): Promise<boolean> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: 1000 });
    await connection.workflowService.describeNamespace({ namespace: 'default' });
    return true;
  } catch {
    return false;
  } finally {
    await connection?.close();
  }
}

export interface StripeMockServer {
  url: string;
  process: ManagedProcess;
}

export async function startStripeMock(
  group: ProcessGroup,
  options: { stripeMock: string; port: number; httpsPort: number; logFile: string },
): Promise<StripeMockServer> {
  // Without an explicit HTTPS address stripe-mock also claims its default port 12112.
  const child = group.spawn(
    'stripe-mock',
    options.stripeMock,
    ['-http-addr', `127.0.0.1:${options.port}`, '-https-addr', `127.0.0.1:${options.httpsPort}`],
    { logFile: options.logFile },
  );
  const url = `http://127.0.0.1:${options.port}`;
  await waitUntilReady('stripe-mock', child, options.logFile, () => httpAnswers(`${url}/v1/customers`, { authorization: 'Bearer sk_test_123' }));
  return { url, process: child };
}

async function httpAnswers(url: string, headers: Record<string, string> = {}): Promise<boolean> {
  try {
    const response = await fetch(url, { headers, signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

/** A connection to Temporal's frontend for `use`, closed afterwards. */
export async function withTemporalConnection<T>(address: string, use: (connection: Connection) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address, connectTimeout: 2000 });
  try {
    return await use(connection);
  } finally {
    await connection.close();
  }
}

/** Polls `ready` until it says yes; fails early if the process exits (its own log says why). */
export async function waitForProcess(name: string, managed: ManagedProcess, ready: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (managed.hasExited()) throw new Error(`${name} exited during start-up (see its log)`);
    if (await ready()) return;
    await sleep(200);
  }
  throw new Error(`${name} was not ready after ${timeoutMs / 1000}s (see its log)`);
}

/** Whether `url` answers 2xx within 2 s. */
export async function answersOk(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

/** Polls `isReady` until it says yes; fails early, with the log's tail, if the process exits. */
async function waitUntilReady(name: string, managed: ManagedProcess, logFile: string, isReady: () => Promise<boolean>): Promise<void> {
  const started = Date.now();
  while (Date.now() - started < READY_TIMEOUT_MS) {
    if (managed.hasExited()) throw new Error(`${name} exited during start-up:\n${logTail(logFile)}`);
    if (await isReady()) {
      log(`${name}: ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
      return;
    }
    await sleep(200);
  }
  throw new Error(`${name} was not ready after ${READY_TIMEOUT_MS / 1000}s:\n${logTail(logFile)}`);
}

function logTail(logFile: string, lines = 30): string {
  try {
    return readFileSync(logFile, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log output)';
  }
}
