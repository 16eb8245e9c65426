/**
 * Provisions the programs that `npm start` and `npm test` run: the Temporal CLI (dev server),
 * stripe-mock, the Java time-skipping test server, the PostgreSQL and Redis servers, and Chromium
 * for the browser tests.
 * Everything is reused when present; builds land in the ignored `.tools/` folder.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..');
const TOOLS_DIR = path.join(REPO_ROOT, '.tools');
const TOOLS_BIN = path.join(TOOLS_DIR, 'bin');
const TEST_SERVER_JARS = path.join(TOOLS_DIR, 'temporal-test-server');
const TEST_SERVER_POM = path.join(REPO_ROOT, 'scripts', 'temporal-test-server', 'pom.xml');
export const TEMPORAL_TEST_SERVER_LAUNCHER = path.join(REPO_ROOT, 'scripts', 'temporal-test-server.sh');

// Later CLI tags carry a `replace` directive in go.mod, which `go install pkg@version` refuses.
const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';
const STRIPE_MOCK_MODULE = 'github.com/stripe/stripe-mock@latest';
// The Temporal server proper and its UI, for `npm run cluster`. v1.30.4's go.mod asks for a Go
// the usual toolchains have, and has no `replace` directive (which `go install` refuses); the UI
// server's newer tags need a newer Go than v2.42.1.
const TEMPORAL_SERVER_VERSION = 'v1.30.4';
const TEMPORAL_UI_SERVER_MODULE = 'github.com/temporalio/ui-server/v2/cmd/server@v2.42.1';
const SCHEMATHESIS_VENV = path.join(TOOLS_DIR, 'venv');
const SCHEMATHESIS_REQUIREMENT = 'schemathesis==4.32.5';

export interface PostgresBinaries {
  postgres: string;
  initdb: string;
}

export interface ServerBinaries {
  postgres?: PostgresBinaries;
  redisServer?: string;
}

export function log(message: string): void {
  console.log(`[platform] ${message}`);
}

export class ToolError extends Error {
  override name = 'ToolError';
}

/** The temporal CLI: TEMPORAL_CLI when set, else the project-local build, else a fresh build. */
export async function ensureTemporalCli(): Promise<string> {
  const configured = process.env.TEMPORAL_CLI;
  if (configured) {
    if (!(await isExecutable(configured))) throw new ToolError(`TEMPORAL_CLI=${configured} is not an executable file`);
    log(`temporal CLI: using TEMPORAL_CLI (${configured})`);
    return configured;
  }
  return ensureGoBinary('temporal CLI', 'temporal', TEMPORAL_CLI_MODULE, 'several minutes the first time');
}

export function ensureStripeMock(): Promise<string> {
  return ensureGoBinary('stripe-mock', 'stripe-mock', STRIPE_MOCK_MODULE, 'about a minute the first time');
}

/** Resolves the Java test server's jars with Maven; returns the launcher the SDK is handed. */
export async function ensureTemporalTestServer(): Promise<string> {
  if (!(await findOnPath('java'))) {
    throw new ToolError('java was not found: install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)');
  }
  // The stamp records which pom.xml the jars came from, so an edited pom.xml is re-resolved.
  const stamp = path.join(TEST_SERVER_JARS, '.pom-sha256');
  const pomDigest = createHash('sha256').update(readFileSync(TEST_SERVER_POM)).digest('hex');
  if (hasJars(TEST_SERVER_JARS) && existsSync(stamp) && readFileSync(stamp, 'utf8') === pomDigest) {
    log(`temporal test server: reusing jars in ${relative(TEST_SERVER_JARS)}`);
    return TEMPORAL_TEST_SERVER_LAUNCHER;
  }
  if (!(await findOnPath('mvn'))) {
    throw new ToolError('mvn was not found: install Maven (e.g. apt-get install maven) to fetch the Temporal test server');
  }
  log('temporal test server: resolving jars from Maven Central');
  const started = Date.now();
  // Resolve beside the old jars and swap, so a test server starting meanwhile finds a whole set.
  const staging = `${TEST_SERVER_JARS}.${process.pid}`;
  await run('mvn', ['-q', '-B', '-f', TEST_SERVER_POM, 'dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${staging}`]);
  writeFileSync(path.join(staging, '.pom-sha256'), pomDigest);
  const previous = `${staging}.old`;
  if (existsSync(TEST_SERVER_JARS)) renameSync(TEST_SERVER_JARS, previous);
  renameSync(staging, TEST_SERVER_JARS);
  rmSync(previous, { recursive: true, force: true });
  log(`temporal test server: jars ready in ${seconds(started)}`);
  return TEMPORAL_TEST_SERVER_LAUNCHER;
}

/**
 * schemathesis, from PyPI, in a virtualenv under `.tools/`; answers its `st` command. Pinned, so a
 * release with new checks cannot fail CI by itself; the stamp reinstalls when the pin changes.
 */
export async function ensureSchemathesis(): Promise<string> {
  const st = path.join(SCHEMATHESIS_VENV, 'bin', 'st');
  const stamp = path.join(SCHEMATHESIS_VENV, '.requirement');
  if ((await isExecutable(st)) && existsSync(stamp) && readFileSync(stamp, 'utf8') === SCHEMATHESIS_REQUIREMENT) {
    log(`schemathesis: reusing ${relative(st)}`);
    return st;
  }
  const python = await findOnPath('python3');
  if (!python) throw new ToolError('python3 was not found: install Python 3.10+ with venv (apt-get install python3-venv) to run schemathesis');
  log(`schemathesis: installing ${SCHEMATHESIS_REQUIREMENT} from PyPI into ${relative(SCHEMATHESIS_VENV)}`);
  const started = Date.now();
  await run(python, ['-m', 'venv', SCHEMATHESIS_VENV]);
  await run(path.join(SCHEMATHESIS_VENV, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', SCHEMATHESIS_REQUIREMENT]);
  writeFileSync(stamp, SCHEMATHESIS_REQUIREMENT);
  log(`schemathesis: installed in ${seconds(started)}`);
  return st;
}

/**
 * Finds the PostgreSQL and Redis server programs that are wanted; when some are missing,
 * installs Debian's packages as root, otherwise stops with what to install.
 */
export async function ensureServerBinaries(wanted: { postgres: boolean; redis: boolean }): Promise<ServerBinaries> {
  let found = await findServerBinaries(wanted);
  const missing = missingPackages(wanted, found);
  if (missing.length === 0) {
    if (found.postgres) log(`postgresql: using ${path.dirname(found.postgres.postgres)}`);
    if (found.redisServer) log(`redis: using ${found.redisServer}`);
    return found;
  }
  if (!(await canInstallWithApt())) {
    throw new ToolError(
      `server programs missing: install the Debian/Ubuntu package(s) ${missing.join(' ')} ` +
        `(sudo apt-get install -y ${missing.join(' ')}), ` +
        'or point DATABASE_URL / REDIS_URL at running servers',
    );
  }
  await aptInstall(missing);
  found = await findServerBinaries(wanted);
  const stillMissing = missingPackages(wanted, found);
  if (stillMissing.length > 0) throw new ToolError(`installed ${missing.join(' ')} but cannot find their servers`);
  return found;
}

/**
 * Debian's Chromium, for the browser tests (playwright-core drives it and downloads no browser of
 * its own): CHROMIUM_PATH when set, else the system's, installed with apt as root when missing.
 */
export async function ensureChromium(): Promise<string> {
  const configured = process.env.CHROMIUM_PATH;
  if (configured) {
    if (!(await isExecutable(configured))) throw new ToolError(`CHROMIUM_PATH=${configured} is not an executable file`);
    return configured;
  }
  const found = await findChromium();
  if (found) {
    log(`chromium: using ${found}`);
    return found;
  }
  if (!(await canInstallWithApt())) {
    throw new ToolError('chromium was not found: install the Debian package chromium (sudo apt-get install -y chromium) or set CHROMIUM_PATH');
  }
  await aptInstall(['chromium']);
  const installed = await findChromium();
  if (!installed) throw new ToolError('installed chromium but cannot find its program');
  return installed;
}

export interface TemporalServerBinaries {
  server: string;
  sqlTool: string;
}

/** The Temporal server (`temporal-server`) and its SQL schema tool (`temporal-sql-tool`), built once into .tools/bin. */
export async function ensureTemporalServer(): Promise<TemporalServerBinaries> {
  const [server, sqlTool] = await ensureGoBinaries(
    'temporal server',
    [
      { module: `go.temporal.io/server/cmd/server@${TEMPORAL_SERVER_VERSION}`, builds: 'server', installAs: 'temporal-server' },
      { module: `go.temporal.io/server/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`, builds: 'sql', installAs: 'temporal-sql-tool' },
    ],
    'about 4 minutes of CPU the first time',
  );
  return { server, sqlTool };
}

/** The Temporal Web UI's server (`temporal-ui-server`), with the UI built in. */
export async function ensureTemporalUiServer(): Promise<string> {
  const [uiServer] = await ensureGoBinaries(
    'temporal UI server',
    [{ module: TEMPORAL_UI_SERVER_MODULE, builds: 'server', installAs: 'temporal-ui-server' }],
    'a few minutes the first time',
  );
  return uiServer;
}

/** Debian's nginx, the cluster's load balancer: on PATH or in /usr/sbin, installed with apt as root when missing. */
export async function ensureNginx(): Promise<string> {
  const find = async () => (await findOnPath('nginx')) ?? ((await isExecutable('/usr/sbin/nginx')) ? '/usr/sbin/nginx' : undefined);
  const found = await find();
  if (found) {
    log(`nginx: using ${found}`);
    return found;
  }
  if (!(await canInstallWithApt())) {
    throw new ToolError('nginx was not found: install the Debian package nginx (sudo apt-get install -y nginx)');
  }
  await aptInstall(['nginx']);
  const installed = await find();
  if (!installed) throw new ToolError('installed nginx but cannot find its program');
  return installed;
}

/** The programs the README's walk-through runs beside `npm start`, and their Debian packages. */
const WALKTHROUGH_PROGRAMS: Record<string, string> = { curl: 'curl', jq: 'jq', uuidgen: 'uuid-runtime', openssl: 'openssl' };

/**
 * curl, jq, uuidgen and openssl for the README's walk-through: installed with apt as root when
 * missing. Not needed to run anything, so without root it only says what to install; returns
 * the programs still missing.
 */
export async function ensureWalkthroughTools(): Promise<string[]> {
  const missingPrograms = async () => {
    const found = await Promise.all(Object.keys(WALKTHROUGH_PROGRAMS).map(async (program) => [program, await findOnPath(program)] as const));
    return found.filter(([, location]) => !location).map(([program]) => program);
  };
  const missing = await missingPrograms();
  if (missing.length === 0) return [];
  const packages = missing.map((program) => WALKTHROUGH_PROGRAMS[program]);
  if (!(await canInstallWithApt())) {
    log(`walk-through: ${missing.join(', ')} not found; the README's examples need them (sudo apt-get install -y ${packages.join(' ')})`);
    return missing;
  }
  try {
    await aptInstall(packages);
  } catch (error) {
    log(`walk-through: could not install ${packages.join(' ')}: ${describeError(error)}`);
  }
  return missingPrograms();
}

async function findChromium(): Promise<string | undefined> {
  return (await findOnPath('chromium')) ?? (await findOnPath('chromium-browser'));
}

export async function canInstallWithApt(): Promise<boolean> {
  return process.getuid?.() === 0 && (await findOnPath('apt-get')) !== undefined;
}

// dpkg takes one install at a time: callers that provision in parallel queue here.
let aptTurn: Promise<unknown> = Promise.resolve();

export function aptInstall(packages: string[]): Promise<void> {
  const install = aptTurn.then(async () => {
    log(`apt: installing ${packages.join(' ')}`);
    const started = Date.now();
    const aptEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await run('apt-get', ['update', '-q'], { env: aptEnv });
    await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...packages], { env: aptEnv });
    log(`apt: installed in ${seconds(started)}`);
  });
  aptTurn = install.catch(() => undefined);
  return install;
}

/**
 * Awaits every task even when one fails, so no build is left running unobserved, and reports
 * all failures together.
 */
export async function settleAll<T extends readonly unknown[] | []>(tasks: T): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const results = await Promise.allSettled(tasks);
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [describeError(r.reason)] : []));
  if (failures.length > 0) throw new ToolError(failures.join('\n'));
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as { -readonly [K in keyof T]: Awaited<T[K]> };
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function ensureGoBinary(label: string, binary: string, module: string, expectation: string): Promise<string> {
  const [target] = await ensureGoBinaries(label, [{ module, builds: binary, installAs: binary }], expectation);
  return target;
}

export interface GoBuild {
  /** `path@version` for go install. */
  module: string;
  /** The program go install writes: the last element of the package path. */
  builds: string;
  /** Its name under .tools/bin. */
  installAs: string;
}

/**
 * Programs built with one `go install` (a shared module builds once) into a temporary GOBIN,
 * then renamed into .tools/bin: several packages build a program named `server`, and a build
 * killed halfway leaves nothing that looks ready. Reused when every one is present.
 */
export async function ensureGoBinaries(label: string, builds: GoBuild[], expectation: string): Promise<string[]> {
  const targets = builds.map((build) => path.join(TOOLS_BIN, build.installAs));
  if ((await Promise.all(targets.map(isExecutable))).every(Boolean)) {
    log(`${label}: reusing ${targets.map(relative).join(', ')}`);
    return targets;
  }
  const modules = builds.map((build) => build.module);
  if (!(await findOnPath('go'))) {
    throw new ToolError(`go was not found: install Go (https://go.dev/dl) to build ${label} (${modules.join(' ')})`);
  }
  log(`${label}: building ${modules.join(' ')} with go install (${expectation})`);
  const started = Date.now();
  const staging = path.join(TOOLS_BIN, `.build-${process.pid}-${builds[0].installAs}`);
  try {
    await run('go', ['install', ...modules], { env: { ...process.env, GOBIN: staging } });
    builds.forEach((build, i) => renameSync(path.join(staging, build.builds), targets[i]));
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  log(`${label}: built ${targets.map(relative).join(', ')} in ${seconds(started)}`);
  return targets;
}

async function findServerBinaries(wanted: { postgres: boolean; redis: boolean }): Promise<ServerBinaries> {
  const [postgres, redisServer] = await Promise.all([
    wanted.postgres ? findPostgres() : undefined,
    wanted.redis ? findOnPath('redis-server') : undefined,
  ]);
  return { postgres, redisServer };
}

function missingPackages(wanted: { postgres: boolean; redis: boolean }, found: ServerBinaries): string[] {
  return [...(wanted.postgres && !found.postgres ? ['postgresql'] : []), ...(wanted.redis && !found.redisServer ? ['redis-server'] : [])];
}

/** PATH first, then Debian's versioned directories (newest first), which are not on PATH. */
async function findPostgres(): Promise<PostgresBinaries | undefined> {
  const onPath = await findOnPath('postgres');
  const candidates = [...(onPath ? [path.dirname(onPath)] : []), ...debianPostgresDirs()];
  for (const dir of candidates) {
    const binaries = { postgres: path.join(dir, 'postgres'), initdb: path.join(dir, 'initdb') };
    if ((await isExecutable(binaries.postgres)) && (await isExecutable(binaries.initdb))) return binaries;
  }
  return undefined;
}

function debianPostgresDirs(): string[] {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((version) => /^\d+$/.test(version))
    .sort((a, b) => Number(b) - Number(a))
    .map((version) => path.join(root, version, 'bin'));
}

export async function findOnPath(program: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, program);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

export async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function hasJars(dir: string): boolean {
  return existsSync(dir) && readdirSync(dir).some((name) => name.endsWith('.jar'));
}

/** Runs a build step; its output is shown only when it fails. */
function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const output: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const tail = Buffer.concat(output).toString().trim().split('\n').slice(-40).join('\n');
      reject(new ToolError(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${tail}`));
    });
  });
}

function relative(file: string): string {
  return path.relative(REPO_ROOT, file) || '.';
}

export function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)}s`;
}
