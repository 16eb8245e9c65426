/**
 * `npm run bench -- --cluster`: the benchmarks on the production topology (bench/stack.ts with
 * `temporal: 'cluster'`): the Temporal server proper on PostgreSQL, two API instances behind
 * nginx, and two worker processes. The no-op ceiling, subscribe, the renewal storm and hold
 * contention run first with ONE worker (the second stopped) and then with TWO (started again), on
 * the same stack in the same run, so that two ÷ one says what the second worker bought. CPU is
 * read per kind of process (every worker is `worker`, every API `api`): on a small machine the
 * ratio can be near 1, and the cores each kind kept busy say where the CPU went instead.
 *
 * Writes bench/results/cluster-<timestamp>.json and, for a full run, bench/results/cluster-latest.md;
 * never latest.md, which holds the dev-server figures.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestUser, type TestUser } from '../test/support/api';
import { reconcileScope } from '../test/support/reconciliation';
import { measureCeiling, measureHolds, measureStorm, measureSubscribe, type BenchContext, type Sizes } from './benchmarks';
import { toClusterMarkdown, type ClusterBenchmark, type ClusterBenchResults, type ClusterPass } from './cluster-report';
import { readCpu } from './cpu';
import type { Machine } from './report';
import { connectToStack } from './seed';
import { stackProcessIds, startLocalStack, type LocalStack } from './stack';
import { runBounded } from './stats';

export const CLUSTER_BENCHMARKS: readonly ClusterBenchmark[] = ['ceiling', 'subscribe', 'holds', 'storm'];
const WORKERS = 2;
const APIS = 2;

export interface ClusterBenchOptions {
  sizes: Sizes;
  /** Which of CLUSTER_BENCHMARKS to run. */
  selected: ReadonlySet<string>;
  label?: string;
  /** Every benchmark at full size: the run also writes cluster-latest.md. */
  fullRun: boolean;
  machine: Machine;
  resultsDir: string;
  /** The tuning the stack's processes run with (scripts/bench.ts reads it the same way for both topologies). */
  tuningOf: (stack: LocalStack) => Record<string, string | number | null>;
  progress: (message: string) => void;
}

/** Runs both passes on one cluster stack; answers the exit code (1 when the books do not reconcile). */
export async function runClusterBench(options: ClusterBenchOptions): Promise<number> {
  const { progress } = options;
  const results: ClusterBenchResults = {
    startedAt: new Date().toISOString(),
    label: options.label,
    machine: options.machine,
    sizes: options.sizes,
    topology: { temporal: 'the Temporal server on PostgreSQL', historyShards: 0, apis: APIS, loadBalancer: 'nginx' },
    tuning: {},
    passes: [],
    errors: {},
  };
  progress(`starting the cluster stack (PostgreSQL, Redis, the Temporal server on PostgreSQL, ${WORKERS} workers, ${APIS} APIs behind nginx)`);
  const stack = await startLocalStack({
    name: 'billing-bench-cluster',
    temporal: 'cluster',
    api: true,
    workers: WORKERS,
    apis: APIS,
    loadBalancer: true,
    recordGateway: true,
  });
  let failed = false;
  try {
    results.tuning = options.tuningOf(stack);
    await runPasses(stack, options, results);
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    results.finishedAt = new Date().toISOString();
    results.machine.loadAverageAtEnd = os.loadavg();
    await stack.stop({ keepDir: failed });
    if (!failed) writeResults(results, options);
  }
  return results.errors.reconciliation ? 1 : 0;
}

async function runPasses(stack: LocalStack, options: ClusterBenchOptions, results: ClusterBenchResults): Promise<void> {
  const { deps, close } = await connectToStack(stack, { poolSize: 20 });
  try {
    // What the server itself says it runs: its version and its shard count.
    const info = await deps.temporal.workflowService.getClusterInfo({});
    results.topology.temporal = `the Temporal server ${info.serverVersion ?? '(version unknown)'} on PostgreSQL`;
    results.topology.historyShards = info.historyShardCount ?? 0;
    const users = await createUsers(deps, options.sizes.users);
    // Pids are read at each reading: the second worker is stopped and started between passes.
    const ctx: BenchContext = {
      stack,
      deps,
      apiUrl: stack.apiUrl!,
      sizes: options.sizes,
      users,
      readCpu: () => readCpu(stackProcessIds(stack)),
      progress: options.progress,
    };
    // A few quiet seconds, so the first reading is not start-up work.
    await sleep(3000);
    const second = stack.workers[1];
    options.progress('first pass: one worker (the second stopped)');
    await second.stop();
    results.passes.push(await runPass(ctx, 1, options, results.errors));
    options.progress('second pass: two workers (the second started again)');
    await second.start();
    results.passes.push(await runPass(ctx, 2, options, results.errors));

    const { result, summary } = await reconcileScope(deps.db, { gatewayLog: stack.gatewayLogFile });
    options.progress(summary);
    if (result.differences.length > 0) {
      results.errors.reconciliation = `${result.differences.length} differences; the first: ${JSON.stringify(result.differences.slice(0, 3))}`;
    }
    results.reconciliation = { ...result.checked, gateway: result.gateway ?? null, differences: result.differences.length };
  } finally {
    await close();
  }
}

/** The selected benchmarks once, with `workers` worker processes running; a failure is recorded and the rest run. */
async function runPass(ctx: BenchContext, workers: number, options: ClusterBenchOptions, errors: Record<string, string>): Promise<ClusterPass> {
  const pass: ClusterPass = { workers, loadAverageAtStart: os.loadavg() };
  const step = async <T>(name: ClusterBenchmark, run: () => Promise<T>): Promise<T | undefined> => {
    if (!options.selected.has(name)) return undefined;
    const key = `${name}, ${workers} worker${workers > 1 ? 's' : ''}`;
    options.progress(`${key}: running`);
    const started = Date.now();
    try {
      const result = await run();
      options.progress(`${key}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return result;
    } catch (error) {
      errors[key] = error instanceof Error ? error.message : String(error);
      options.progress(`${key}: failed: ${errors[key]}`);
      return undefined;
    }
  };
  pass.ceiling = await step('ceiling', () => measureCeiling(ctx));
  pass.subscribe = await step('subscribe', () => measureSubscribe(ctx));
  pass.holds = await step('holds', () => measureHolds(ctx));
  // The databases' growth over the storm: what a subscription (seeded, armed, renewed once,
  // asleep in its next run) stores, in the app's database and in Temporal's.
  const sizesBefore = await databaseSizes(ctx.deps);
  pass.storm = await step('storm', () => measureStorm(ctx, pass.ceiling?.perSecond || 50));
  if (pass.storm) pass.stormStorage = { before: sizesBefore, after: await databaseSizes(ctx.deps) };
  pass.loadAverageAtEnd = os.loadavg();
  return pass;
}

/** Bytes on disk of each database of the stack's one PostgreSQL server (the app's and Temporal's). */
async function databaseSizes(deps: BenchContext['deps']): Promise<Record<string, number>> {
  const rows = await deps.sql<Array<{ name: string; bytes: string }>>`
    select datname as name, pg_database_size(datname)::text as bytes from pg_database where not datistemplate and datname <> 'postgres'`;
  return Object.fromEntries(rows.map((row) => [row.name, Number(row.bytes)]));
}

/** Users with tokens; argon2 hashing is the slow part, so a few at a time. */
async function createUsers(deps: BenchContext['deps'], count: number): Promise<TestUser[]> {
  return (await runBounded(count, 4, () => createTestUser(deps))).map((r) => {
    if (!r.ok) throw r.error;
    return r.value;
  });
}

function writeResults(results: ClusterBenchResults, options: ClusterBenchOptions): void {
  mkdirSync(options.resultsDir, { recursive: true });
  const jsonFile = path.join(options.resultsDir, `cluster-${results.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
  const markdown = toClusterMarkdown(results);
  if (options.fullRun) writeFileSync(path.join(options.resultsDir, 'cluster-latest.md'), markdown);
  console.log(`\n${markdown}`);
  options.progress(
    `results: ${path.relative(process.cwd(), jsonFile)}${options.fullRun ? ' and bench/results/cluster-latest.md' : ' (cluster-latest.md is written by full runs only)'}`,
  );
}
