/**
 * Benchmark 6, the footprint: what a sleeping subscription costs while the worker holds it in its
 * sticky cache, and what it costs once it is not cached (the worker, the Temporal server, and
 * PostgreSQL), in one run. Subscriptions due in 30 days are started in two steps: first as many as
 * the worker's cache has room for (each stays cached), then `sleeping` more with the cache full
 * (each new one evicts the least recently used, so the count cached does not move and what grows
 * is the cost of sleepers nobody holds). The worker's cache count is its own gauge
 * (`temporal_sticky_cache_size`); its V8 heap is read in every isolate after a full collection
 * (bench/worker-memory.ts), so a heap figure is what the cache retains.
 */
import { sql } from 'drizzle-orm';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppDeps } from '../api/app';
import { insertTestPlan } from '../test/support/subscription-fixtures';
import { TASK_QUEUES } from '../platform/task-queues';
import type { BenchContext } from './benchmarks';
import { readWorkerMetric } from './metrics';
import { seedDueSubscriptions, waitUntilAsleep } from './seed';
import { residentBytes } from './stack';
import { since } from './stats';
import { heapUsedBytes, readWorkerMemory } from './worker-memory';

/** Where heap snapshots of the worker go, when set (the footprint's two readings around the cached step). */
const SNAPSHOT_DIR_VARIABLE = 'BENCH_HEAP_SNAPSHOT_DIR';

/** The memory of every process a sleeping subscription can cost, at one moment. */
export interface MemoryPoint {
  /** Workflows in the worker's sticky caches (every task queue). */
  cachedWorkflows: number;
  workerRssMiB: number;
  /** V8 heap used in every isolate of the worker (main thread and workflow threads), after a full collection. */
  workerHeapMiB: number;
  /** The part of it in the workflow threads: the workflows' own state. */
  workflowThreadsHeapMiB: number;
  /** V8 heap the isolates have reserved (used or not): RSS less this is memory outside V8 (the SDK's core, allocators). */
  workerHeapCommittedMiB: number;
  temporalRssMiB: number;
  postgresDatabaseMiB: number;
}

export interface FootprintResult {
  /** Subscriptions started in all (both steps). */
  sleepingAdded: number;
  runningWorkflows: number | null;
  maxCachedWorkflows: number | null;
  rssIdleMiB: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  seedingMs: number;
  start?: MemoryPoint;
  cacheFull?: MemoryPoint;
  end?: MemoryPoint;
  /** Per workflow the cache gained in the first step. */
  perCachedWorkflow?: {
    workflows: number;
    workerRssMiB: number;
    workerHeapMiB: number;
    workflowThreadsHeapMiB: number;
    workerHeapCommittedMiB: number;
  };
  /** Per subscription started with the cache full (null when the first step did not fill it: a cache larger than `sleeping`). */
  perSleepingWorkflow?: {
    workflows: number;
    workerRssMiB: number;
    workerHeapMiB: number;
    workerHeapCommittedMiB: number;
    temporalRssMiB: number;
    postgresDatabaseMiB: number;
  } | null;
  heapSnapshots?: string[];
}

export async function measureFootprint(ctx: BenchContext, rssIdleBytes: number): Promise<FootprintResult> {
  const plan = await insertTestPlan(ctx.deps.db, { interval: 'P30D' });
  const maxCached = ctx.stack.workerSettings().workers.find((w) => w.taskQueue === TASK_QUEUES.billing)?.maxCachedWorkflows ?? null;
  const seed = async (count: number) => {
    if (count === 0) return;
    const seeded = await seedDueSubscriptions(ctx.deps, {
      plan,
      userIds: ctx.users.map((u) => u.user.id),
      count,
      dueAt: new Date(Date.now() + 30 * 24 * 3600_000),
      concurrency: 40,
    });
    await waitUntilAsleep(ctx.deps, seeded);
  };
  const snapshotDir = process.env[SNAPSHOT_DIR_VARIABLE];
  const heapSnapshots: string[] = [];
  const snapshot = async () => {
    if (!snapshotDir) return;
    const memory = await readWorkerMemory(ctx.stack.worker, ctx.stack.workerReadyFile, { snapshotDir });
    heapSnapshots.push(...[memory.mainSnapshotFile, ...memory.threads.map((t) => t.snapshotFile)].filter((f): f is string => f !== null));
  };

  const started = performance.now();
  const start = await readMemoryPoint(ctx);
  await snapshot();
  const billingCached = await cachedWorkflows(ctx, TASK_QUEUES.billing);
  const toFill = Math.max(0, Math.min(ctx.sizes.sleeping, (maxCached ?? 0) - billingCached));
  ctx.progress(`footprint: ${toFill} subscriptions to fill the cache (${billingCached} of ${maxCached ?? '?'} cached)`);
  await seed(toFill);
  const cacheFull = await readMemoryPoint(ctx);
  await snapshot();
  const filled = maxCached !== null && (await cachedWorkflows(ctx, TASK_QUEUES.billing)) >= maxCached;
  const sleepers = filled ? ctx.sizes.sleeping : 0;
  ctx.progress(`footprint: ${sleepers} more with the cache full`);
  await seed(sleepers);
  const end = await readMemoryPoint(ctx);
  const seedingMs = since(started);

  const perCachedWorkflow = perWorkflow(start, cacheFull, cacheFull.cachedWorkflows - start.cachedWorkflows);
  return {
    sleepingAdded: toFill + sleepers,
    runningWorkflows: await runningWorkflows(ctx.deps),
    maxCachedWorkflows: maxCached,
    rssIdleMiB: mib(rssIdleBytes),
    rssBeforeMiB: start.workerRssMiB,
    rssAfterMiB: end.workerRssMiB,
    seedingMs,
    start,
    cacheFull,
    end,
    perCachedWorkflow: {
      workflows: cacheFull.cachedWorkflows - start.cachedWorkflows,
      workerRssMiB: perCachedWorkflow('workerRssMiB'),
      workerHeapMiB: perCachedWorkflow('workerHeapMiB'),
      workflowThreadsHeapMiB: perCachedWorkflow('workflowThreadsHeapMiB'),
      workerHeapCommittedMiB: perCachedWorkflow('workerHeapCommittedMiB'),
    },
    perSleepingWorkflow: sleepers > 0 ? perSleeper(cacheFull, end, sleepers, perCachedWorkflow) : null,
    ...(snapshotDir ? { heapSnapshots } : {}),
  };
}

type PerWorkflow = (field: keyof MemoryPoint) => number;

/** (after − before) ÷ count for one field; NaN-free (0 when nothing was added). */
function perWorkflow(before: MemoryPoint, after: MemoryPoint, count: number): PerWorkflow {
  return (field) => (count > 0 ? (after[field] - before[field]) / count : 0);
}

/** A sleeper's cost once uncached: the growth less what a change in the cache count explains. */
function perSleeper(before: MemoryPoint, after: MemoryPoint, count: number, perCached: PerWorkflow): FootprintResult['perSleepingWorkflow'] {
  const grown = perWorkflow(before, after, count);
  const cacheMoved = (after.cachedWorkflows - before.cachedWorkflows) / count;
  return {
    workflows: count,
    workerRssMiB: grown('workerRssMiB') - cacheMoved * perCached('workerRssMiB'),
    workerHeapMiB: grown('workerHeapMiB') - cacheMoved * perCached('workerHeapMiB'),
    workerHeapCommittedMiB: grown('workerHeapCommittedMiB') - cacheMoved * perCached('workerHeapCommittedMiB'),
    temporalRssMiB: grown('temporalRssMiB'),
    postgresDatabaseMiB: grown('postgresDatabaseMiB'),
  };
}

async function readMemoryPoint(ctx: BenchContext): Promise<MemoryPoint> {
  const workerRss = await settledResidentBytes(ctx.stack.worker.pid());
  const memory = await readWorkerMemory(ctx.stack.worker, ctx.stack.workerReadyFile);
  const [row] = await ctx.deps.db.execute<{ bytes: string }>(sql`select pg_database_size(current_database())::text as bytes`);
  return {
    cachedWorkflows: await cachedWorkflows(ctx),
    workerRssMiB: mib(workerRss),
    workerHeapMiB: mib(heapUsedBytes(memory)),
    workflowThreadsHeapMiB: mib(memory.threads.reduce((sum, t) => sum + t.usedBytes, 0)),
    workerHeapCommittedMiB: mib(memory.main.totalBytes + memory.threads.reduce((sum, t) => sum + t.totalBytes, 0)),
    temporalRssMiB: mib(residentBytes(ctx.stack.temporal.pid())),
    postgresDatabaseMiB: mib(Number(row.bytes)),
  };
}

/** The worker's own gauge of its sticky caches: every task queue's, or one's. */
async function cachedWorkflows(ctx: BenchContext, taskQueue?: string): Promise<number> {
  return readWorkerMetric(ctx.stack.metricsUrls, 'temporal_sticky_cache_size', taskQueue ? { task_queue: taskQueue } : {});
}

/** RSS once it has stopped growing (three equal readings a second apart), at most 30 s. */
async function settledResidentBytes(pid: number): Promise<number> {
  const readings: number[] = [];
  for (let i = 0; i < 30; i++) {
    readings.push(residentBytes(pid));
    const last = readings.slice(-3);
    if (last.length === 3 && Math.max(...last) - Math.min(...last) < 2 * 1024 * 1024) break;
    await sleep(1000);
  }
  return readings[readings.length - 1];
}

async function runningWorkflows(deps: AppDeps): Promise<number | null> {
  try {
    return (await deps.temporal.workflow.count('ExecutionStatus = "Running"')).count;
  } catch {
    return null;
  }
}

function mib(bytes: number): number {
  return bytes / (1024 * 1024);
}

/** The report's rows (bench/report.ts) for the two per-workflow figures. */
export function footprintRows(f: FootprintResult): Array<[string, string, string]> {
  const rows: Array<[string, string, string]> = [];
  const c = f.perCachedWorkflow;
  if (c && c.workflows > 0) {
    rows.push([
      `6e. Worker memory per cached subscription workflow (${c.workflows} added to the sticky cache)`,
      `RSS **${kib(c.workerRssMiB)}**, V8 heap used ${kib(c.workerHeapMiB)} (${kib(c.workflowThreadsHeapMiB)} of it in the workflow threads), V8 heap reserved ${kib(c.workerHeapCommittedMiB)}`,
      '',
    ]);
  }
  const s = f.perSleepingWorkflow;
  if (s) {
    rows.push([
      `6f. Memory per sleeping subscription not cached (${s.workflows} started with the cache full)`,
      `worker RSS **${kib(s.workerRssMiB)}**, V8 heap used ${kib(s.workerHeapMiB)}, reserved ${kib(s.workerHeapCommittedMiB)}; Temporal server RSS **${kib(s.temporalRssMiB)}**; PostgreSQL database ${kib(s.postgresDatabaseMiB)}`,
      '',
    ]);
  }
  return rows;
}

/** KiB below one MiB, MiB above, signed (a sleeper's worker heap is noise around zero). */
function kib(value: number): string {
  const k = value * 1024;
  return Math.abs(value) >= 1 ? `${value.toFixed(2)} MiB` : `${k.toFixed(Math.abs(k) < 10 ? 1 : 0)} KiB`;
}
