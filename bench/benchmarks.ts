/**
 * The benchmarks of issue 6, each against the stack of one run (bench/stack.ts). They measure and
 * report; none of them judges a figure.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { and, eq, inArray } from 'drizzle-orm';
import type { AppDeps } from '../api/app';
import { insertCoupon } from '../db/coupons';
import { payments } from '../db/schema';
import { subscriptionWorkflowId } from '../domain/subscription';
import { requestJson, type TestUser } from '../test/support/api';
import { insertTestPlan } from '../test/support/subscription-fixtures';
import { TASK_QUEUES } from '../platform/task-queues';
import { cpuPerOperation, type CpuReading } from './cpu';
import { countTasks, meanStages, type Stages } from './history';
import { sumMetricOver } from './metrics';
import { FIRST_TASK_DONE, seedDueSubscriptions, waitUntilAsleep, type SeededSubscription } from './seed';
import type { LocalStack } from './stack';
import { perSecond, runBounded, since, summarise, tally, type LatencySummary } from './stats';
import { ALONE, latencyAlone, sampleStages, timedRequest } from './timing';

// Benchmark 4 lives in bench/holds.ts.
export { measureHolds, type HoldsResult } from './holds';
export { measureFootprint, type FootprintResult } from './footprint';

export interface Sizes {
  ceiling: number;
  /** No-op workflows started and awaited one at a time: the latency ceiling. */
  ceilingAlone: number;
  subscribe: number;
  holds: number;
  holdUnits: number;
  storm: number;
  /** How many storms a run measures, to show the figure is stable (issue 15: within 15 %). */
  stormRuns: number;
  sleeping: number;
  availabilitySeconds: number;
  availabilityConnections: number;
  /** Requests or starts in flight for the ceiling and subscribe runs (the same, so they compare). */
  concurrency: number;
  users: number;
  /** Requests whose workflow history is read for the stage breakdown. */
  stageSamples: number;
  /** The soak (bench/soak.ts): how long the mix runs, and how many subscriptions renew meanwhile. */
  soakSeconds: number;
  soakRenewing: number;
}

export interface BenchContext {
  stack: LocalStack;
  deps: AppDeps;
  apiUrl: string;
  sizes: Sizes;
  users: TestUser[];
  /** CPU milliseconds used so far by each process of the stack (bench/cpu.ts). */
  readCpu(): CpuReading;
  progress(message: string): void;
}

// ---------------------------------------------------------------------------------------------
// 1. Ceiling

export interface CeilingResult {
  count: number;
  concurrency: number;
  elapsedMs: number;
  perSecond: number;
  latencyMs: LatencySummary;
  failures: number;
  /** CPU milliseconds per workflow in each process. */
  cpuMsPerOperation: CpuReading;
  /** The latency ceiling: `ceilingAlone` more, one at a time after the burst (warm, as for the others). */
  aloneLatencyMs: LatencySummary;
}

/** A no-op workflow started and awaited `count` times (what server and worker turn over), then `ceilingAlone` one at a time. */
export async function measureCeiling(ctx: BenchContext): Promise<CeilingResult> {
  const { ceiling: count, concurrency, ceilingAlone } = ctx.sizes;
  const run = randomUUID().slice(0, 8);
  const noop = (workflowId: string) => ctx.deps.temporal.workflow.execute('noopWorkflow', { taskQueue: TASK_QUEUES.billing, workflowId });
  const cpuBefore = ctx.readCpu();
  const started = performance.now();
  const results = await runBounded(count, concurrency, async (i) => {
    const t = performance.now();
    await noop(`noop-${run}-${i}`);
    return since(t);
  });
  const elapsedMs = since(started);
  const cpuAfter = ctx.readCpu();
  const latencies = results.flatMap((r) => (r.ok ? [r.value] : []));
  const aloneLatencyMs = await latencyAlone(ceilingAlone, async (i) => {
    const t = performance.now();
    await noop(`noop-${run}-alone-${i}`);
    return { latencyMs: since(t) };
  });
  return {
    count,
    concurrency,
    elapsedMs,
    perSecond: perSecond(latencies.length, elapsedMs),
    latencyMs: summarise(latencies),
    failures: count - latencies.length,
    cpuMsPerOperation: cpuPerOperation(cpuBefore, cpuAfter, latencies.length),
    aloneLatencyMs,
  };
}

// ---------------------------------------------------------------------------------------------
// 2. Subscribe through the API

export interface SubscribeResult {
  count: number;
  concurrency: number;
  users: number;
  elapsedMs: number;
  perSecond: number;
  latencyMs: LatencySummary;
  /** ALONE requests sent one at a time before the run. */
  aloneLatencyMs: LatencySummary;
  statuses: Record<string, number>;
  cpuMsPerOperation: CpuReading;
  /** Mean milliseconds per stage over a sample of requests (bench/history.ts). */
  stagesMs: Stages;
  stageSamples: number;
  /** A subscription this run made, for the history counts. */
  sampleSubscriptionId?: string;
}

export async function measureSubscribe(ctx: BenchContext): Promise<SubscribeResult> {
  const { subscribe: count, concurrency } = ctx.sizes;
  const plan = await insertTestPlan(ctx.deps.db, { interval: 'P1M' });
  const subscribe = (i: number) =>
    timedRequest(`${ctx.apiUrl}/api/v1/subscriptions/subscribe`, {
      body: { planId: plan.planId, paymentMethod: 'pm_card_visa' },
      headers: ctx.users[i % ctx.users.length].headers,
    });
  const aloneMs = await latencyAlone(ALONE, subscribe);
  const cpuBefore = ctx.readCpu();
  const started = performance.now();
  const results = await runBounded(count, concurrency, subscribe);
  const elapsedMs = since(started);
  const cpuAfter = ctx.readCpu();
  const answers = results.flatMap((r) => (r.ok ? [r.value] : []));
  const created = answers.filter((a) => a.status === 201);
  const stages = await sampleStages(ctx, created, (a) => subscriptionWorkflowId(a.body.subscription.id));
  return {
    count,
    concurrency,
    users: ctx.users.length,
    elapsedMs,
    perSecond: perSecond(created.length, elapsedMs),
    latencyMs: summarise(answers.map((a) => a.latencyMs)),
    aloneLatencyMs: aloneMs,
    statuses: tally(answers.map((a) => a.status)),
    cpuMsPerOperation: cpuPerOperation(cpuBefore, cpuAfter, answers.length),
    stagesMs: meanStages(stages),
    stageSamples: stages.length,
    sampleSubscriptionId: created[0]?.body.subscription.id,
  };
}

// ---------------------------------------------------------------------------------------------
// 5. Availability reads

export interface AvailabilityResult {
  connections: number;
  durationSeconds: number;
  requestsPerSecond: number;
  requests: number;
  latencyMs: LatencySummary;
  non2xx: number;
  errors: number;
  cpuMsPerOperation: CpuReading;
}

/** GET /availability of the contended offering, `availabilityConnections` connections for `availabilitySeconds`. */
export function measureAvailability(ctx: BenchContext, offeringId: string): Promise<AvailabilityResult> {
  return loadAtConnections(ctx, `${ctx.apiUrl}/api/v1/offerings/${offeringId}/availability`);
}

/**
 * GET /healthz, the same connections for the same time: the HTTP ceiling. The request passes the
 * API's whole middleware stack and does no work, so the read rows' figures over it are what their
 * own work costs, and a latency target below its p95 is out of reach of one API process here.
 */
export function measureHttpCeiling(ctx: BenchContext): Promise<AvailabilityResult> {
  return loadAtConnections(ctx, `${ctx.apiUrl}/healthz`);
}

/** One URL, `availabilityConnections` connections for `availabilitySeconds`, with autocannon. */
async function loadAtConnections(ctx: BenchContext, url: string, headers?: Record<string, string>): Promise<AvailabilityResult> {
  const latencies: number[] = [];
  const cpuBefore = ctx.readCpu();
  const instance = autocannon({ url, headers, connections: ctx.sizes.availabilityConnections, duration: ctx.sizes.availabilitySeconds });
  // autocannon reports p97.5 and p99, not p95: keep every response time.
  instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTimeMs: number) => latencies.push(responseTimeMs));
  const result = await instance;
  return {
    connections: ctx.sizes.availabilityConnections,
    durationSeconds: ctx.sizes.availabilitySeconds,
    requestsPerSecond: result.requests.average,
    requests: result.requests.total,
    latencyMs: summarise(latencies),
    non2xx: result.non2xx,
    errors: result.errors,
    cpuMsPerOperation: cpuPerOperation(cpuBefore, ctx.readCpu(), result.requests.total),
  };
}

// ---------------------------------------------------------------------------------------------
// 5b. Coupon validation

/**
 * GET /coupons/validate of one code on one plan, as `availabilityConnections` connections for
 * `availabilitySeconds` (issue 15's target: p95 under 5 ms; row 5c is the floor under it). The code is cached after the
 * first read, so this measures the cached path: the plan, the coupon, and the customer's own facts
 * (a live redemption), which are read for every answer that is otherwise valid.
 */
export async function measureCouponValidation(ctx: BenchContext): Promise<AvailabilityResult> {
  const plan = await insertTestPlan(ctx.deps.db, { interval: 'P1M' });
  const coupon = await insertCoupon(
    ctx.deps.db,
    {
      code: `BENCH-${Date.now()}`,
      percentOff: 20,
      amountOff: null,
      currency: null,
      duration: 'once',
      durationInCycles: null,
      maxRedemptions: 1_000_000,
      redeemBy: null,
      appliesToPlans: null,
      firstTimeOnly: false,
    },
    null,
  );
  if (!coupon) throw new Error('the bench coupon code is taken');
  const url = `${ctx.apiUrl}/api/v1/coupons/validate?code=${encodeURIComponent(coupon.code.toLowerCase())}&planId=${plan.planId}`;
  const headers = { authorization: `Bearer ${ctx.users[0].token}` };
  // A fast wrong answer would measure nothing: the code must be valid, with its discount priced.
  const probe = await requestJson(url, { headers });
  if (probe.status !== 200 || probe.body?.valid !== true || !probe.body.discount) {
    throw new Error(`the bench coupon does not validate: ${probe.status} ${JSON.stringify(probe.body)}`);
  }
  return loadAtConnections(ctx, url, headers);
}

// ---------------------------------------------------------------------------------------------
// 3. Renewal storm

/** What a run of due renewals came to, the storm's and the cron peer's alike (bench/cron-peer.ts). */
export interface RenewalRunFigures {
  count: number;
  renewed: number;
  /** Due instant → last renewal done. */
  drainMs: number;
  renewalsPerSecond: number;
  /** The most charges answered in any one second: what the gateway saw at the peak. */
  peakChargesPerSecond: number;
  /** Renewal recorded minus the due instant. */
  latenessMs: LatencySummary;
  statuses: Record<string, number>;
  /** From the due instant until the last renewal was done. */
  cpuMsPerOperation: CpuReading;
}

/** The storm's lateness is payments.updated_at (the charge recorded) minus the due instant. */
export interface StormResult extends RenewalRunFigures {
  /** Whether every workflow had started before the due instant (otherwise lateness includes set-up). */
  armedBeforeDue: boolean;
  armingMs: number;
  /**
   * Due instant → every workflow asleep again in its next run (charged, projected, notified,
   * continued as new, first task of the new run done). The CPU figure covers all of it: a renewal
   * is not done when its charge is, and work left over would be billed to whatever ran next.
   */
  settledMs: number;
  sample?: SeededSubscription;
}

const STORM_TIMEOUT_MS = 10 * 60_000;

/**
 * `storm` subscriptions whose first paid period ends at the same instant. The instant leaves
 * three times what starting them should take (at the measured ceiling) plus 10 s, so that every
 * timer is set before it; whether it was is reported.
 */
export async function measureStorm(ctx: BenchContext, ceilingPerSecond: number): Promise<StormResult> {
  const count = ctx.sizes.storm;
  const plan = await insertTestPlan(ctx.deps.db, { interval: 'P1D' });
  const armingBudgetMs = 10_000 + (3 * count * 1000) / Math.max(1, ceilingPerSecond);
  const dueAt = new Date(Math.ceil((Date.now() + armingBudgetMs) / 1000) * 1000);
  const armingStarted = performance.now();
  const seeded = await seedDueSubscriptions(ctx.deps, { plan, userIds: ctx.users.map((u) => u.user.id), count, dueAt });
  await waitUntilAsleep(ctx.deps, seeded);
  const armingMs = since(armingStarted);
  const armedBeforeDue = Date.now() < dueAt.getTime();
  ctx.progress(`storm: ${count} subscriptions armed in ${(armingMs / 1000).toFixed(1)} s, due at ${dueAt.toISOString()}`);

  const ids = seeded.map((s) => s.subscriptionId);
  await sleep(Math.max(0, dueAt.getTime() - Date.now()));
  const cpuBefore = ctx.readCpu();
  const continuedBefore = await continuedAsNew(ctx);
  const charged = await waitForRenewals(ctx.deps, ids, dueAt.getTime() + STORM_TIMEOUT_MS);
  await waitUntilSettled(ctx, seeded, charged, continuedBefore + count, dueAt.getTime() + STORM_TIMEOUT_MS);
  const settledMs = Date.now() - dueAt.getTime();
  const cpuAfter = ctx.readCpu();
  const lateness = charged.filter((p) => p.status === 'succeeded').map((p) => p.updatedAt.getTime() - dueAt.getTime());
  const drainMs = Math.max(0, ...lateness);
  return {
    count,
    armedBeforeDue,
    armingMs,
    settledMs,
    renewed: lateness.length,
    drainMs,
    renewalsPerSecond: perSecond(lateness.length, drainMs),
    peakChargesPerSecond: Math.max(0, ...Object.values(tally(charged.map((p) => Math.floor(p.updatedAt.getTime() / 1000))))),
    latenessMs: summarise(lateness),
    statuses: tally(charged.map((p) => p.status)),
    cpuMsPerOperation: cpuPerOperation(cpuBefore, cpuAfter, charged.length),
    sample: seeded[0],
  };
}

/** Polls until every subscription's cycle-2 charge has an answer (or the deadline passes); answers those rows. */
async function waitForRenewals(deps: AppDeps, subscriptionIds: string[], deadlineMs: number) {
  const read = () =>
    deps.db
      .select({ subscriptionId: payments.subscriptionId, status: payments.status, createdAt: payments.createdAt, updatedAt: payments.updatedAt })
      .from(payments)
      .where(and(inArray(payments.subscriptionId, subscriptionIds), eq(payments.cycle, 2)));
  for (;;) {
    const rows = await read();
    const answered = rows.filter((r) => r.status !== 'pending');
    if (answered.length >= subscriptionIds.length || Date.now() > deadlineMs) return answered;
    await sleep(500);
  }
}

/** Runs the workers have continued as new so far (their own metric, summed: no load on the server). */
async function continuedAsNew(ctx: BenchContext): Promise<number> {
  return sumMetricOver(ctx.stack.metricsUrls.workers, 'temporal_workflow_continue_as_new');
}

/**
 * Until every renewal has continued as new (the worker's count), then until the last 25 charged
 * have run the first task of their next run (as the arming waits for the first).
 */
async function waitUntilSettled(
  ctx: BenchContext,
  seeded: readonly SeededSubscription[],
  charged: ReadonlyArray<{ subscriptionId: string | null; updatedAt: Date }>,
  continuedTarget: number,
  deadlineMs: number,
): Promise<void> {
  while ((await continuedAsNew(ctx)) < continuedTarget && Date.now() < deadlineMs) await sleep(250);
  const lastCharged = [...charged].sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime()).slice(0, 25);
  const bySubscription = new Map(seeded.map((s) => [s.subscriptionId, s]));
  for (const { subscriptionId } of lastCharged) {
    const s = subscriptionId ? bySubscription.get(subscriptionId) : undefined;
    if (!s) continue;
    const handle = ctx.deps.temporal.workflow.getHandle(s.workflowId);
    for (;;) {
      const { runId, historyLength } = await handle.describe();
      if ((runId !== s.firstRunId && historyLength >= FIRST_TASK_DONE) || Date.now() > deadlineMs) break;
      await sleep(100);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 6. History sizes (the footprint is in bench/footprint.ts)

export interface HistoryCounts {
  /** The first run of a subscription made through the API, so far (charged, sleeping). */
  subscribeRun?: ReturnType<typeof countTasks>;
  /** One renewal cycle: a run that woke, charged, projected, notified and continued as new. */
  renewalRun?: ReturnType<typeof countTasks>;
  /** A failed renewal through its whole dunning timeline (3 retries, 3 reminders) to expiry. */
  dunningRun?: ReturnType<typeof countTasks>;
}

// The default policy's shape (3 retries, 3 reminders, then expiry) in seconds instead of days.
const SECONDS_DUNNING = { retryOffsets: ['PT2S', 'PT4S', 'PT6S'], reminderOffsets: ['PT2S', 'PT4S', 'PT6S'], gracePeriod: 'PT8S' };
const DUNNING_TIMEOUT_MS = 300_000;

export async function countHistories(
  ctx: BenchContext,
  subscribed: string | undefined,
  renewed: SeededSubscription | undefined,
): Promise<HistoryCounts> {
  const events = async (workflowId: string, runId?: string) =>
    (await ctx.deps.temporal.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
  const counts: HistoryCounts = {};
  if (subscribed) counts.subscribeRun = countTasks(await events(subscriptionWorkflowId(subscribed)));
  if (renewed) counts.renewalRun = countTasks(await events(renewed.workflowId, renewed.firstRunId));

  const plan = await insertTestPlan(ctx.deps.db, { interval: 'P1D', dunning: SECONDS_DUNNING });
  const [declining] = await seedDueSubscriptions(ctx.deps, {
    plan,
    userIds: [ctx.users[0].user.id],
    count: 1,
    dueAt: new Date(Math.ceil(Date.now() / 1000) * 1000 + 3000),
    paymentMethod: 'pm_card_chargeDeclined',
  });
  const handle = ctx.deps.temporal.workflow.getHandle(declining.workflowId, declining.firstRunId);
  await Promise.race([handle.result(), sleep(DUNNING_TIMEOUT_MS).then(() => Promise.reject(new Error('the dunning run did not end in time')))]);
  counts.dunningRun = countTasks(await events(declining.workflowId, declining.firstRunId));
  return counts;
}
