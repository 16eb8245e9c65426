/**
 * The API contract tested from outside: the real API and worker processes run against the test
 * servers, and schemathesis generates requests from their /openapi.json, valid and invalid,
 * failing on any 5xx and on any answer the document does not describe (status, content type,
 * headers, body schema), on a missing 401 without a token, on a 405 not given for an unknown
 * method, and on invalid input that is accepted.
 *
 * Two runs: a customer's token for every operation but the staff ones, a staff token for the
 * staff operations (/api/v1/admin/…). Customers' routes answer a staff token like any user's,
 * so the staff run covers what only staff may do rather than repeating the rest.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hashPassword } from '../api/auth';
import { connectDatabase } from '../db/client';
import { users } from '../db/schema';
import { answersOk, freePort, type ProcessGroup } from './services';
import { log, REPO_ROOT } from './tools';

// Bounded so both runs take about two minutes on two cores; raise it locally to search harder.
const MAX_EXAMPLES = Number(process.env.CONTRACT_MAX_EXAMPLES ?? 30);
const READY_TIMEOUT_MS = 120_000;
// The live event stream never ends by design; its shape is a text/event-stream, not JSON.
const EXCLUDED_PATHS = ['/api/v1/offerings/{id}/events'];
const STAFF_PATHS = '^/api/v1/admin/';
const CONFIG_FILE = path.join(REPO_ROOT, 'scripts', 'schemathesis.toml');

export interface ContractTestOptions {
  /** The test servers' environment (DATABASE_URL, REDIS_URL, TEMPORAL_ADDRESS, secrets …). */
  env: NodeJS.ProcessEnv;
  /** Where the API's and worker's logs go. */
  logDir: string;
  /** The group the API and worker join, so they stop with everything else. */
  group: ProcessGroup;
  /** schemathesis's `st`, from `ensureSchemathesis()`. */
  st: string;
}

/** Runs schemathesis against a running API and worker; true when it found nothing. */
export async function runContractTests(options: ContractTestOptions): Promise<boolean> {
  const started = Date.now();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    ...options.env,
    PORT: String(port),
    LOG_LEVEL: 'info',
    // Thousands of generated requests come from one address and one user.
    RATE_LIMIT_IP_PER_MINUTE: '1000000',
    RATE_LIMIT_PAYMENTS_PER_USER_PER_MINUTE: '1000000',
  };
  const workerLog = path.join(options.logDir, 'contract-worker.log');
  options.group.spawn('contract worker', process.execPath, ['--import', 'tsx', 'workers/worker.ts'], { env, logFile: workerLog });
  options.group.spawn('contract api', process.execPath, ['--import', 'tsx', 'workers/api.ts'], {
    env,
    logFile: path.join(options.logDir, 'contract-api.log'),
  });
  await waitUntil('the API', () => answersOk(`${url}/readyz`));
  await waitUntil('the worker', async () => readFileSync(workerLog, 'utf8').includes('workers running'));

  const customer = await signUp(url);
  const staff = await staffToken(url, env.DATABASE_URL!);
  await seedCatalogue(url, staff);
  log(`contract: API and worker up in ${((Date.now() - started) / 1000).toFixed(1)}s; running schemathesis (${MAX_EXAMPLES} examples per operation)`);

  const exclusions = EXCLUDED_PATHS.flatMap((p) => ['--exclude-path', p]);
  const customerRun = await schemathesis(options.st, url, customer, [...exclusions, '--exclude-path-regex', STAFF_PATHS]);
  const staffRun = await schemathesis(options.st, url, staff, [...exclusions, '--include-path-regex', STAFF_PATHS]);
  return customerRun && staffRun;
}

function schemathesis(st: string, url: string, token: string, filters: string[]): Promise<boolean> {
  const args = [
    '--config-file',
    CONFIG_FILE,
    'run',
    `${url}/openapi.json`,
    // Every check runs by default; naming them here would override the per-operation settings.
    '--header',
    `Authorization: Bearer ${token}`,
    '--max-examples',
    String(MAX_EXAMPLES),
    // One worker: hypothesis is not thread-safe everywhere (a cache race fails a run now and then).
    '--workers',
    '1',
    '--request-timeout',
    '30',
    '--seed',
    String(Date.now() % 1_000_000),
    '--output-sanitize',
    'true',
    ...filters,
  ];
  return new Promise((resolve) => {
    const child = spawn(st, args, { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, NO_COLOR: '1' } });
    child.on('error', () => resolve(false));
    child.on('close', (code) => resolve(code === 0));
  });
}

async function signUp(url: string): Promise<string> {
  const response = await fetch(`${url}/api/v1/auth/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: `contract-${randomUUID()}@example.test`, password: `pw-${randomUUID()}`, name: 'Contract Customer' }),
  });
  if (response.status !== 201) throw new Error(`contract: signup answered ${response.status}: ${await response.text()}`);
  return ((await response.json()) as { token: string }).token;
}

/** A staff user written to the database, as `npm run manage -- create-staff` would, then logged in. */
async function staffToken(url: string, databaseUrl: string): Promise<string> {
  const email = `contract-staff-${randomUUID()}@example.test`;
  const password = `pw-${randomUUID()}`;
  const database = connectDatabase(databaseUrl, { max: 1 });
  try {
    await database.db.insert(users).values({ email, name: 'Contract Staff', role: 'staff', passwordHash: await hashPassword(password) });
  } finally {
    await database.close();
  }
  const response = await fetch(`${url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (response.status !== 200) throw new Error(`contract: staff login answered ${response.status}`);
  return ((await response.json()) as { token: string }).token;
}

/** A plan and an offering, so listings answer items whose schema gets checked too. */
async function seedCatalogue(url: string, staff: string): Promise<void> {
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${staff}` },
      body: JSON.stringify(body),
    });
    if (response.status !== 201) throw new Error(`contract: POST ${path} answered ${response.status}: ${await response.text()}`);
  };
  await post('/api/v1/admin/plans', { code: `contract-${randomUUID()}`, name: 'Contract', amount: 1500, currency: 'usd', interval: 'P1M' });
  const startsAt = new Date(Date.now() + 7 * 24 * 3600_000);
  await post('/api/v1/admin/offerings', {
    name: 'Contract evening',
    kind: 'seating',
    startsAt: startsAt.toISOString(),
    endsAt: new Date(startsAt.getTime() + 2 * 3600_000).toISOString(),
    units: [{ label: 'A1', amount: 2500, currency: 'usd' }],
  });
}

async function waitUntil(what: string, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await ready().catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`contract: ${what} was not ready within ${READY_TIMEOUT_MS / 1000}s`);
}
