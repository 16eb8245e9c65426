/**
 * Benchmark 7: the soak of issue 15, "interactive work before background work". A fixed mix for a
 * fixed time, as a new user tried it on `npm start`: `soakRenewing` subscriptions renewing every
 * 30 s in the background, two clients subscribing in a loop, two reading availability, two holding
 * and releasing, two opening and closing the SSE stream of the same offering. Before the load, the
 * idle one-at-a-time subscribe p50 that the targets divide by. During it, the task-queue backlogs
 * sampled from the Temporal server (DescribeTaskQueue); the RSS of every process at the start and the
 * end, and the CPU each used over the soak.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { temporal } from '@temporalio/proto';
import { and, gte, inArray } from 'drizzle-orm';
import { payments } from '../db/schema';
import type { TestUser } from '../test/support/api';
import { insertTestOffering } from '../test/support/booking-fixtures';
import { insertTestPlan } from '../test/support/subscription-fixtures';
import { TASK_QUEUES } from '../platform/task-queues';
import type { BenchContext } from './benchmarks';
import { cpuPerOperation, type CpuReading } from './cpu';
import { metricDelta, readMetrics, sumOf, type MetricSample } from './metrics';
import { seedDueSubscriptions, waitUntilAsleep } from './seed';
import { residentBytes, stackProcessIds } from './stack';
import { summarise, tally, type LatencySummary } from './stats';
import { ALONE, latencyAlone, timedRequest, type TimedAnswer } from './timing';

// The renewing subscriptions' plan: short enough that each renews several times in a quick soak.
const RENEWAL_INTERVAL = 'PT30S';
const RENEWAL_INTERVAL_MS = 30_000;
const BACKLOG_SAMPLE_MS = 2_000;
// How long each SSE client keeps a stream open before closing it and opening the next.
const SSE_OPEN_MS = 3_000;
const LOOPS_PER_KIND = 2;
// Statuses that mean a customer's request was not answered in time (202: still at work after the
// answer deadline; 503: refused, retry).
const LATE = ['202', '503'];

export type SoakOperation = 'subscribe' | 'availability' | 'hold' | 'release' | 'sse';

export interface SoakOperationFigures {
  latencyMs: LatencySummary;
  statuses: Record<string, number>;
}

export interface BacklogSample {
  atMs: number;
  /** By task queue and task type, e.g. `billing/workflow`. */
  queues: Record<string, { count: number; ageSeconds: number }>;
}

export interface SoakResult {
  seconds: number;
  renewing: number;
  /** Renewal charges (cycle 2 and later) answered during the soak, and what PT30S asks for. */
  renewals: { charged: number; expected: number };
  /** ALONE subscribes one at a time on the idle stack, before anything else. */
  idleSubscribeLatencyMs: LatencySummary;
  operations: Record<SoakOperation, SoakOperationFigures>;
  backlog: BacklogSample[];
  /**
   * Mean milliseconds a task waited between scheduled and started, by task queue and kind (the
   * worker's own metrics, sticky queues included): where a request waits, which the backlog of the
   * normal queues does not show.
   */
  scheduleToStartMs: Record<string, { tasks: number; meanMs: number }>;
  /** The largest backlog count and age seen for each queue. */
  backlogMax: Record<string, { count: number; ageSeconds: number }>;
  rssStartMiB: Record<string, number>;
  rssEndMiB: Record<string, number>;
  /** CPU milliseconds each process used over the soak. */
  cpuMs: CpuReading;
  /** The targets, as same-run figures. */
  targets: {
    /** Subscribe, hold and release answers that were 202 or 503 (target 0). */
    lateOrRefused: number;
    /** Subscribe p95 under load over the idle one-at-a-time p50 (target ≤ 5). */
    subscribeP95OverIdleP50: number;
    /** RSS at the end over the start, per process (target ≈ 1). */
    rssEndOverStart: Record<string, number>;
  };
}

export async function measureSoak(ctx: BenchContext): Promise<SoakResult> {
  const seconds = ctx.sizes.soakSeconds;
  const subscribePlan = await insertTestPlan(ctx.deps.db, { interval: 'P1M' });
  let next = 0;
  const subscribe = () => {
    const user = ctx.users[next++ % ctx.users.length];
    return timedRequest(`${ctx.apiUrl}/api/v1/subscriptions/subscribe`, {
      body: { planId: subscribePlan.planId, paymentMethod: 'pm_card_visa' },
      headers: user.headers,
    });
  };
  const idleSubscribeLatencyMs = await latencyAlone(ALONE, subscribe);

  const renewingIds = await seedRenewing(ctx);
  const offering = await insertTestOffering(ctx.deps.db, { unitCount: 20, holdTtl: 'PT10M' });
  ctx.progress(`soak: ${renewingIds.length} subscriptions renewing every ${RENEWAL_INTERVAL}; the mix for ${seconds} s`);

  const pids = stackProcessIds(ctx.stack);
  const rssStart = rssOf(pids);
  const cpuBefore = ctx.readCpu();
  const metricsBefore = await readMetrics(ctx.stack.metricsUrls);
  const startedAt = new Date();
  const deadline = Date.now() + seconds * 1000;
  const answers: Record<SoakOperation, TimedAnswer[]> = { subscribe: [], availability: [], hold: [], release: [], sse: [] };
  const loops = (n: number, body: (i: number) => Promise<void>) =>
    Array.from({ length: n }, async (_, i) => {
      while (Date.now() < deadline) await body(i);
    });
  const backlog: BacklogSample[] = [];
  const sampling = sampleBacklog(ctx, deadline, backlog);
  await Promise.all([
    ...loops(LOOPS_PER_KIND, async () => void answers.subscribe.push(await subscribe())),
    ...loops(
      LOOPS_PER_KIND,
      async () => void answers.availability.push(await timedRequest(`${ctx.apiUrl}/api/v1/offerings/${offering.id}/availability`, {})),
    ),
    ...loops(LOOPS_PER_KIND, (i) => holdAndRelease(ctx, ctx.users[i], offering.id, offering.unitIds[i], answers)),
    ...loops(LOOPS_PER_KIND, async () => void answers.sse.push(await openAndCloseStream(`${ctx.apiUrl}/api/v1/offerings/${offering.id}/events`))),
    sampling,
  ]);
  const cpuMs = cpuPerOperation(cpuBefore, ctx.readCpu(), 1);
  const rssEnd = rssOf(pids);
  const workerMetrics = metricDelta(metricsBefore.worker, (await readMetrics(ctx.stack.metricsUrls)).worker);

  const operations = Object.fromEntries(
    Object.entries(answers).map(([name, list]) => [
      name,
      { latencyMs: summarise(list.map((a) => a.latencyMs)), statuses: tally(list.map((a) => a.status)) },
    ]),
  ) as Record<SoakOperation, SoakOperationFigures>;
  const lateOrRefused = (['subscribe', 'hold', 'release'] as const).reduce(
    (sum, op) => sum + LATE.reduce((n, status) => n + (operations[op].statuses[status] ?? 0), 0),
    0,
  );
  const rssStartMiB = mibOf(rssStart);
  const rssEndMiB = mibOf(rssEnd);
  return {
    seconds,
    renewing: renewingIds.length,
    renewals: {
      charged: await renewalsSince(ctx, renewingIds, startedAt),
      expected: Math.round((renewingIds.length * seconds * 1000) / RENEWAL_INTERVAL_MS),
    },
    idleSubscribeLatencyMs,
    operations,
    scheduleToStartMs: scheduleToStartByQueue(ctx, workerMetrics),
    backlog,
    backlogMax: largestBacklogs(backlog),
    rssStartMiB,
    rssEndMiB,
    cpuMs,
    targets: {
      lateOrRefused,
      subscribeP95OverIdleP50: operations.subscribe.latencyMs.p95 / idleSubscribeLatencyMs.p50,
      rssEndOverStart: Object.fromEntries(Object.keys(rssEndMiB).map((name) => [name, rssEndMiB[name] / rssStartMiB[name]])),
    },
  };
}

/**
 * `soakRenewing` subscriptions on a PT30S plan, their first renewals spread evenly over one
 * interval (a second apart per batch), as subscriptions made over time would be; each renews every
 * 30 s from then on. Seeded as continued runs (bench/seed.ts), so they start with the renewal,
 * which is the background work.
 */
async function seedRenewing(ctx: BenchContext): Promise<string[]> {
  const plan = await insertTestPlan(ctx.deps.db, { interval: RENEWAL_INTERVAL });
  const batches = RENEWAL_INTERVAL_MS / 1000;
  const perBatch = Math.ceil(ctx.sizes.soakRenewing / batches);
  const firstDue = Date.now() + 10_000;
  const ids: string[] = [];
  for (let b = 0; b < batches && ids.length < ctx.sizes.soakRenewing; b++) {
    const count = Math.min(perBatch, ctx.sizes.soakRenewing - ids.length);
    const seeded = await seedDueSubscriptions(ctx.deps, {
      plan,
      userIds: ctx.users.map((u) => u.user.id),
      count,
      dueAt: new Date(firstDue + b * 1000),
    });
    await waitUntilAsleep(ctx.deps, seeded, { sample: 1 });
    ids.push(...seeded.map((s) => s.subscriptionId));
  }
  return ids;
}

/** One holder's turn: hold its own unit, then release the hold. */
async function holdAndRelease(ctx: BenchContext, user: TestUser, offeringId: string, unitId: string, answers: Record<SoakOperation, TimedAnswer[]>) {
  const hold = await timedRequest(`${ctx.apiUrl}/api/v1/bookings/holds`, { body: { offeringId, unitIds: [unitId] }, headers: user.headers });
  answers.hold.push(hold);
  const holdId: string | undefined = hold.body?.hold?.id;
  if (hold.status !== 201 || !holdId) {
    // A refusal (the unit's last release not yet seen everywhere) is counted; wait a moment, not a spin.
    await sleep(100);
    return;
  }
  answers.release.push(await timedRequest(`${ctx.apiUrl}/api/v1/bookings/holds/${holdId}`, { method: 'DELETE', headers: user.headers }));
}

/** Opens the stream, times its first bytes (the snapshot), keeps it open SSE_OPEN_MS, closes it. */
async function openAndCloseStream(url: string): Promise<TimedAnswer> {
  const sentAtMs = Date.now();
  const started = performance.now();
  const controller = new AbortController();
  try {
    const response = await fetch(url, { signal: controller.signal, headers: { accept: 'text/event-stream' } });
    const reader = response.body?.getReader();
    await reader?.read();
    const latencyMs = performance.now() - started;
    await sleep(SSE_OPEN_MS);
    controller.abort();
    await reader?.cancel().catch(() => undefined);
    return { status: response.status, body: null, sentAtMs, receivedAtMs: sentAtMs + latencyMs, latencyMs };
  } catch (error) {
    controller.abort();
    await sleep(100);
    return { status: 0, body: { error: String(error) }, sentAtMs, receivedAtMs: Date.now(), latencyMs: performance.now() - started };
  }
}

/**
 * Every BACKLOG_SAMPLE_MS until the deadline: each queue's approximate backlog (count and age of its
 * oldest task) from DescribeTaskQueue. The dev server does not export `approximate_backlog_count`
 * to Prometheus; sticky queues are not reported this way (their tasks fall back to the normal
 * queue after WORKER_STICKY_QUEUE_TIMEOUT).
 */
async function sampleBacklog(ctx: BenchContext, deadline: number, samples: BacklogSample[]): Promise<void> {
  const started = Date.now();
  while (Date.now() < deadline) {
    samples.push({ atMs: Date.now() - started, queues: await backlogOf(ctx) });
    await sleep(BACKLOG_SAMPLE_MS);
  }
}

const TASK_TYPES = [
  ['workflow', temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW],
  ['activity', temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY],
] as const;

async function backlogOf(ctx: BenchContext): Promise<BacklogSample['queues']> {
  const service = ctx.deps.temporal.workflowService;
  const queues: BacklogSample['queues'] = {};
  const names = [...new Set(Object.values(ctx.deps.taskQueues ?? TASK_QUEUES))];
  await Promise.all(
    names.flatMap((name) =>
      TASK_TYPES.map(async ([type, taskQueueType]) => {
        try {
          const { stats } = await service.describeTaskQueue({ namespace: 'default', taskQueue: { name }, taskQueueType, reportStats: true });
          const age = stats?.approximateBacklogAge;
          queues[`${name}/${type}`] = {
            count: Number(stats?.approximateBacklogCount ?? 0),
            ageSeconds: Number(age?.seconds ?? 0) + (age?.nanos ?? 0) / 1e9,
          };
        } catch {
          // A sample missed is a gap in the series, not a failed run.
        }
      }),
    ),
  );
  return queues;
}

const WAITS = [
  ['workflow', 'temporal_workflow_task_schedule_to_start_latency'],
  ['activity', 'temporal_activity_schedule_to_start_latency'],
] as const;

function scheduleToStartByQueue(ctx: BenchContext, delta: MetricSample): SoakResult['scheduleToStartMs'] {
  const waits: SoakResult['scheduleToStartMs'] = {};
  for (const name of new Set(Object.values(ctx.deps.taskQueues ?? TASK_QUEUES))) {
    for (const [kind, metric] of WAITS) {
      const tasks = sumOf(delta, `${metric}_count`, { task_queue: name });
      if (tasks > 0) waits[`${name}/${kind}`] = { tasks, meanMs: sumOf(delta, `${metric}_sum`, { task_queue: name }) / tasks };
    }
  }
  return waits;
}

function largestBacklogs(samples: BacklogSample[]): SoakResult['backlogMax'] {
  const max: SoakResult['backlogMax'] = {};
  for (const sample of samples) {
    for (const [queue, { count, ageSeconds }] of Object.entries(sample.queues)) {
      const entry = (max[queue] ??= { count: 0, ageSeconds: 0 });
      entry.count = Math.max(entry.count, count);
      entry.ageSeconds = Math.max(entry.ageSeconds, ageSeconds);
    }
  }
  return max;
}

async function renewalsSince(ctx: BenchContext, subscriptionIds: string[], since: Date): Promise<number> {
  const rows = await ctx.deps.db
    .select({ status: payments.status })
    .from(payments)
    .where(and(inArray(payments.subscriptionId, subscriptionIds), gte(payments.updatedAt, since)));
  return rows.filter((r) => r.status === 'succeeded').length;
}

/** The RSS of each process itself (PostgreSQL's postmaster, not its backends: they share memory). */
/** Resident bytes per name, summed over its processes. */
function rssOf(pids: Record<string, readonly number[]>): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([name, list]) => [name, list.reduce((sum, pid) => sum + residentBytes(pid), 0)]));
}

function mibOf(bytes: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(bytes).map(([name, b]) => [name, b / (1024 * 1024)]));
}
