/**
 * What `npm start` and `npm run cluster` share: the ignored data folder, the secrets generated
 * once into it, where PostgreSQL keeps its cluster, the app's entry points, waiting for an HTTP
 * answer, the summary printed once everything is up, and how a run ends (LocalRun).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { forgetLocalEndpoints } from './local-endpoints';
import { postgresCanReach, type ManagedProcess } from './services';
import { describeError, log, REPO_ROOT } from './tools';

export const DATA_DIR = path.join(REPO_ROOT, '.data');
const SECRETS_FILE = path.join(DATA_DIR, 'secrets.json');

export interface Endpoints {
  databaseUrl: string;
  redisUrl: string;
  temporalAddress: string;
  temporalUiUrl?: string;
}

/** The worker's and the API's environment: the servers' addresses and the secrets, over the caller's. */
export function appEnvironment(endpoints: Endpoints, port: number): NodeJS.ProcessEnv {
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

export interface LocalSecrets {
  JWT_SECRET: string;
  STRIPE_WEBHOOK_SECRET: string;
}

/**
 * A fresh clone has no secrets; generate them once and keep them in the ignored data folder,
 * so tokens and webhook signatures stay valid across restarts (and between `npm start` and
 * `npm run cluster`, which share them).
 */
export function localSecrets(): LocalSecrets {
  if (existsSync(SECRETS_FILE)) return JSON.parse(readFileSync(SECRETS_FILE, 'utf8')) as LocalSecrets;
  mkdirSync(DATA_DIR, { recursive: true });
  const secrets: LocalSecrets = {
    JWT_SECRET: randomBytes(48).toString('base64url'),
    STRIPE_WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64url')}`,
  };
  writeFileSync(SECRETS_FILE, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  log(`secrets: generated JWT_SECRET and STRIPE_WEBHOOK_SECRET into ${path.relative(REPO_ROOT, SECRETS_FILE)}`);
  return secrets;
}

/**
 * `<dir>/postgres`, unless the `postgres` user cannot enter the checkout (e.g. under /root): then
 * a folder in the system's temporary folder named after `key` (the checkout for `npm start`).
 */
export function postgresDataDir(dir: string, key = REPO_ROOT): string {
  if (postgresCanReach(dir)) return path.join(dir, 'postgres');
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 12);
  const fallback = path.join(os.tmpdir(), `billing-postgres-${digest}`);
  log(`postgresql: the postgres user cannot enter ${dir}; keeping the cluster in ${fallback}`);
  return fallback;
}

export function entryPoint(name: 'worker' | 'api'): string {
  const file = path.join(REPO_ROOT, 'workers', `${name}.ts`);
  if (!existsSync(file)) throw new Error(`${path.relative(REPO_ROOT, file)} is missing`);
  return file;
}

/** Polls `url` until it answers 2xx; gives up quietly once `cancelled()` says so. */
export async function waitForHttp(url: string, what: string, timeoutMs: number, cancelled: () => boolean): Promise<void> {
  const started = Date.now();
  while (!cancelled() && Date.now() - started < timeoutMs) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(250);
  }
  if (!cancelled()) throw new Error(`${what} did not answer ${url} within ${timeoutMs / 1000}s`);
}

/** The `Ready.` block: one aligned row per address. */
export function printReady(rows: Array<[string, string]>): void {
  console.log(`\nReady.\n${rows.map(([name, value]) => `  ${name.padEnd(12)} ${value}`).join('\n')}\nPress Ctrl-C to stop.\n`);
}

export function redactPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

interface ProcessSet {
  stop(): Promise<void>;
  killAll(): void;
}

/**
 * How a local run ends: Ctrl-C, SIGTERM or SIGHUP, a crash, or a failed start-up. The apps stop
 * first, then the servers, and only once (npm and tsx may each relay the same Ctrl-C); the run's
 * endpoints file goes with them. A process that exits any other way still kills what it started.
 */
export class LocalRun {
  private stopping = false;

  constructor(private readonly parts: { apps: ProcessSet; servers: ProcessSet; endpointsFile: string }) {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(signal, () => void this.stop(0, `received ${signal}`));
    }
    process.on('exit', () => {
      forgetLocalEndpoints(parts.endpointsFile);
      parts.apps.killAll();
      parts.servers.killAll();
    });
  }

  get shuttingDown(): boolean {
    return this.stopping;
  }

  /** For a process group's unexpected exits: the whole run stops, exit code 1. */
  readonly stopOnCrash = (managed: ManagedProcess, code: number | null, signal: string | null): void =>
    void this.stop(1, `${managed.name} exited unexpectedly (${signal ?? `exit code ${code}`})`);

  /** Runs `main`; a failure there is printed and stops the run. */
  start(main: () => Promise<void>): void {
    main().catch((error: unknown) => {
      console.error(`[platform] ${describeError(error)}`);
      void this.stop(1, 'start-up failed');
    });
  }

  async stop(code: number, reason: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    log(`stopping (${reason})`);
    forgetLocalEndpoints(this.parts.endpointsFile);
    // The apps drain first (a load balancer still carries their last answers), then the servers.
    await this.parts.apps.stop();
    await this.parts.servers.stop();
    log('stopped');
    process.exit(code);
  }
}
