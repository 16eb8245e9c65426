/**
 * `npm run drills`: the fault drills of test/drills/. First the fast ones (`*.test.ts`, also part
 * of `npm test`) on the test runner's servers, through scripts/test.ts; then the process-level
 * ones (`*.drill.ts`), one at a time, each starting a stack of its own (bench/stack.ts) so that
 * it may kill, stop and restart its servers. A failed drill keeps its stack's logs and says where.
 *
 *   npm run drills                                  # all of them
 *   npm run drills -- test/drills/worker-kill.drill.ts …   # only the files named
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { log, REPO_ROOT } from './tools';

const DRILLS_DIR = path.join(REPO_ROOT, 'test', 'drills');
// A bound on a hung drill, not a performance assertion.
const DRILL_TIMEOUT_MS = 15 * 60_000;

async function main(): Promise<number> {
  const requested = process.argv.slice(2).map((file) => path.relative(REPO_ROOT, path.resolve(file)));
  const files = requested.length > 0 ? requested : readdirSync(DRILLS_DIR).map((name) => path.relative(REPO_ROOT, path.join(DRILLS_DIR, name)));
  const fast = files.filter((file) => file.endsWith('.test.ts')).sort();
  const drills = files.filter((file) => file.endsWith('.drill.ts')).sort();
  if (fast.length + drills.length === 0) throw new Error('no drills named');

  const outcomes: Array<[string, number]> = [];
  if (fast.length > 0) {
    log(`fast drills on the test runner's servers: ${fast.join(', ')}`);
    outcomes.push(['fast drills (npm test)', await run([path.join('scripts', 'test.ts'), ...fast])]);
  }
  if (drills.length > 0) {
    log(`process-level drills, each on a stack of its own: ${drills.join(', ')}`);
    const runner = [
      '--test',
      '--test-concurrency=1',
      `--test-timeout=${DRILL_TIMEOUT_MS}`,
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
    ];
    outcomes.push(['process-level drills', await run([...runner, ...drills])]);
  }
  for (const [what, code] of outcomes) log(`${what}: ${code === 0 ? 'passed' : `FAILED (exit ${code})`}`);
  return outcomes.every(([, code]) => code === 0) ? 0 : 1;
}

function run(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: REPO_ROOT, stdio: 'inherit' });
    child.on('error', () => resolve(1));
    child.on('close', (code) => resolve(code ?? 1));
  });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`[platform] ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
