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
import { bookingWorkflowId } from '../domain/booking';
import { subscriptionWorkflowId } from '../domain/subscription';
import { requestJson, type TestUser } from '../test/support/api';
import { insertTestOffering } from '../test/support/booking-fixtures';
import { insertTestPlan } from '../test/support/subscription-fixtures';
import { TASK_QUEUES } from '../platform/task-queues';
import { cpuPerOperation, type CpuReading } from './cpu';
import { countTasks, meanStages, stagesOf, type Stages } from './history';
import { findDoubleBookings, type DoubleBookings } from './invariants';
import { seedDueSubscriptions, waitUntilAsleep, type SeededSubscription } from './seed';
import { residentBytes, type LocalStack } from './stack';
import { perSecond, runBounded, seededRandom, since, summarise, tally, type LatencySummary } from './stats';

export interface Sizes {
  ceiling: number;
  /** No-op workflows started and awaited one at a time: the latency ceiling. */
  ceilingAlone: number;
  subscribe: number;
  holds: number;
  holdUnits: number;
  storm: number;
  sleeping: number;
  availabilitySeconds: number;
  availabilityConnections: number;
  /** Requests or starts in flight for the ceiling and subscribe runs (the same, so they compare). */
  concurrency: number;
  users: number;
  /** Requests whose workflow history is read for the stage breakdown. */
  stageSamples: number;
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

interface TimedAnswer {
  status: number;
  body: any;
  sentAtMs: number;
  receivedAtMs: number;
  latencyMs: number;
}

async function timedRequest(url: string, init: Parameters<typeof requestJson>[1]): Promise<TimedAnswer> {
  const sentAtMs = Date.now();
  const t = performance.now();
  try {
    const { status, body } = await requestJson(url, init);
    return { status, body, sentAtMs, receivedAtMs: Date.now(), latencyMs: since(t) };
  } catch (error) {
    // A connection-level failure counts as status 0, reported beside the HTTP statuses.
    return { status: 0, body: { error: String(error) }, sentAtMs, receivedAtMs: Date.now(), latencyMs: since(t) };
  }
}

// Requests sent one after another before a burst: the latency with nothing else in the way.
const ALONE = 20;

/** Latency of `count` requests sent one at a time. */
async function latencyAlone(count: number, send: (i: number) => Promise<{ latencyMs: number }>): Promise<LatencySummary> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) latencies.push((await send(i)).latencyMs);
  return summarise(latencies);
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

/** Stage breakdowns of up to `stageSamples` answers spread evenly over the run. */
async function sampleStages(ctx: BenchContext, answers: TimedAnswer[], workflowIdOf: (a: TimedAnswer) => string): Promise<Stages[]> {
  const step = Math.max(1, Math.floor(answers.length / ctx.sizes.stageSamples));
  const sample = answers.filter((_, i) => i % step === 0).slice(0, ctx.sizes.stageSamples);
  return Promise.all(
    sample.map(async (a) => {
      const history = await ctx.deps.temporal.workflow.getHandle(workflowIdOf(a)).fetchHistory();
      return stagesOf(history.events ?? [], a.sentAtMs, a.receivedAtMs);
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// 4. Hold contention, then booking the holds granted

export interface HoldsResult {
  requests: number;
  units: number;
  elapsedMs: number;
  answeredPerSecond: number;
  latencyMs: LatencySummary;
  grantedLatencyMs: LatencySummary;
  refusedLatencyMs: LatencySummary;
  statuses: Record<string, number>;
  granted: number;
  cpuMsPerOperation: CpuReading;
  /** ALONE holds of one free unit each, then their bookings, one request at a time. */
  alone: {
    holdLatencyMs: LatencySummary;
    /** CPU of one hold granted with nothing else going on. */
    holdCpuMsPerOperation: CpuReading;
    bookingLatencyMs: LatencySummary;
    availabilityLatencyMs: LatencySummary;
  };
  /**
   * The refused requests sent again at once after the bookings: their units are booked then, so
   * this is what a refusal alone costs (the burst's CPU also carries the granted holds' workflows).
   */
  refusedAgain: { count: number; statuses: Record<string, number>; latencyMs: LatencySummary; cpuMsPerOperation: CpuReading };
  bookings: {
    count: number;
    elapsedMs: number;
    latencyMs: LatencySummary;
    statuses: Record<string, number>;
    cpuMsPerOperation: CpuReading;
    stagesMs: Stages;
    stageSamples: number;
  };
  doubleBookings: DoubleBookings;
  offeringId: string;
}

/**
 * `holds` requests at once for 1 to 4 adjacent units of `holdUnits`, so that most sets overlap;
 * then every hold granted is booked by its owner. Unit sets come from a fixed seed, so every run
 * asks for the same ones.
 */
export async function measureHolds(ctx: BenchContext): Promise<HoldsResult> {
  const { holds: count, holdUnits } = ctx.sizes;
  const alone = await holdsAndBookingsAlone(ctx);
  const offering = await insertTestOffering(ctx.deps.db, { unitCount: holdUnits, holdTtl: 'PT10M' });
  const random = seededRandom(6);
  const requests = Array.from({ length: count }, (_, i) => {
    const size = 1 + Math.floor(random() * 4);
    const first = Math.floor(random() * (holdUnits - size + 1));
    return { user: ctx.users[i % ctx.users.length], unitIds: offering.unitIds.slice(first, first + size) };
  });
  const cpuBefore = ctx.readCpu();
  const started = performance.now();
  const answers = await Promise.all(
    requests.map((r) =>
      timedRequest(`${ctx.apiUrl}/api/v1/bookings/holds`, { body: { offeringId: offering.id, unitIds: r.unitIds }, headers: r.user.headers }),
    ),
  );
  const elapsedMs = since(started);
  const cpuAfterHolds = ctx.readCpu();
  const granted = answers.flatMap((a, i) => (a.status === 201 ? [{ answer: a, user: requests[i].user }] : []));
  ctx.progress(`holds: ${granted.length} of ${count} granted; booking them`);

  const bookingStarted = performance.now();
  const bookings = await Promise.all(
    granted.map(({ answer, user }) =>
      timedRequest(`${ctx.apiUrl}/api/v1/bookings/create`, {
        body: { holdId: answer.body.hold.id, paymentMethod: 'pm_card_visa' },
        headers: user.headers,
      }),
    ),
  );
  const bookingElapsedMs = since(bookingStarted);
  const cpuAfterBookings = ctx.readCpu();
  const refusedAgain = await sendRefusedAgain(
    ctx,
    offering.id,
    requests.filter((_, i) => answers[i].status === 409),
  );
  const confirmed = bookings.filter((b) => b.status === 201);
  const stages = await sampleStages(ctx, confirmed, (b) => bookingWorkflowId(b.body.booking.id));
  return {
    requests: count,
    units: holdUnits,
    elapsedMs,
    answeredPerSecond: perSecond(answers.length, elapsedMs),
    latencyMs: summarise(answers.map((a) => a.latencyMs)),
    grantedLatencyMs: summarise(granted.map((g) => g.answer.latencyMs)),
    refusedLatencyMs: summarise(answers.filter((a) => a.status === 409).map((a) => a.latencyMs)),
    statuses: tally(answers.map((a) => a.status)),
    granted: granted.length,
    cpuMsPerOperation: cpuPerOperation(cpuBefore, cpuAfterHolds, answers.length),
    alone,
    bookings: {
      count: bookings.length,
      elapsedMs: bookingElapsedMs,
      latencyMs: summarise(bookings.map((b) => b.latencyMs)),
      statuses: tally(bookings.map((b) => b.status)),
      cpuMsPerOperation: cpuPerOperation(cpuAfterHolds, cpuAfterBookings, bookings.length),
      stagesMs: meanStages(stages),
      stageSamples: stages.length,
    },
    refusedAgain,
    doubleBookings: await findDoubleBookings(ctx.deps.db, offering.id),
    offeringId: offering.id,
  };
}

async function sendRefusedAgain(
  ctx: BenchContext,
  offeringId: string,
  requests: Array<{ user: TestUser; unitIds: string[] }>,
): Promise<HoldsResult['refusedAgain']> {
  const cpuBefore = ctx.readCpu();
  const answers = await Promise.all(
    requests.map((r) => timedRequest(`${ctx.apiUrl}/api/v1/bookings/holds`, { body: { offeringId, unitIds: r.unitIds }, headers: r.user.headers })),
  );
  return {
    count: answers.length,
    statuses: tally(answers.map((a) => a.status)),
    latencyMs: summarise(answers.map((a) => a.latencyMs)),
    cpuMsPerOperation: cpuPerOperation(cpuBefore, ctx.readCpu(), answers.length),
  };
}

/** One customer at a time: hold a free unit, then book it; and read availability. */
async function holdsAndBookingsAlone(ctx: BenchContext): Promise<HoldsResult['alone']> {
  // One customer holds all ALONE units before booking them: the offering lets them (and ALONE
  // stays within HOLDS_PER_CUSTOMER_MAX's default of 20 live holds).
  const offering = await insertTestOffering(ctx.deps.db, { unitCount: ALONE, holdTtl: 'PT10M', maxUnitsPerCustomer: ALONE });
  const customer = ctx.users[0];
  const holdIds: string[] = [];
  const cpuBeforeHolds = ctx.readCpu();
  const holdLatencyMs = await latencyAlone(ALONE, async (i) => {
    const answer = await timedRequest(`${ctx.apiUrl}/api/v1/bookings/holds`, {
      body: { offeringId: offering.id, unitIds: [offering.unitIds[i]] },
      headers: customer.headers,
    });
    holdIds.push(answer.body.hold?.id);
    return answer;
  });
  const holdCpuMsPerOperation = cpuPerOperation(cpuBeforeHolds, ctx.readCpu(), ALONE);
  const bookingLatencyMs = await latencyAlone(ALONE, (i) =>
    timedRequest(`${ctx.apiUrl}/api/v1/bookings/create`, { body: { holdId: holdIds[i], paymentMethod: 'pm_card_visa' }, headers: customer.headers }),
  );
  const availabilityLatencyMs = await latencyAlone(ALONE, () => timedRequest(`${ctx.apiUrl}/api/v1/offerings/${offering.id}/availability`, {}));
  return { holdLatencyMs, holdCpuMsPerOperation, bookingLatencyMs, availabilityLatencyMs };
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
export async function measureAvailability(ctx: BenchContext, offeringId: string): Promise<AvailabilityResult> {
  const latencies: number[] = [];
  const cpuBefore = ctx.readCpu();
  const instance = autocannon({
    url: `${ctx.apiUrl}/api/v1/offerings/${offeringId}/availability`,
    connections: ctx.sizes.availabilityConnections,
    duration: ctx.sizes.availabilitySeconds,
  });
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
 * `availabilitySeconds` (the target: p95 well under 50 ms). The code is cached after the
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
  const latencies: number[] = [];
  const cpuBefore = ctx.readCpu();
  const instance = autocannon({
    url,
    headers,
    connections: ctx.sizes.availabilityConnections,
    duration: ctx.sizes.availabilitySeconds,
  });
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
// 3. Renewal storm

export interface StormResult {
  count: number;
  /** Whether every workflow had started before the due instant (otherwise lateness includes set-up). */
  armedBeforeDue: boolean;
  armingMs: number;
  renewed: number;
  /** Due instant → last renewal charged. */
  drainMs: number;
  renewalsPerSecond: number;
  /** The most charges answered in any one second: what the gateway saw at the peak. */
  peakChargesPerSecond: number;
  /** Charge recorded (payments.updated_at) minus the due instant. */
  latenessMs: LatencySummary;
  statuses: Record<string, number>;
  /** From the due instant until the last renewal was charged. */
  cpuMsPerOperation: CpuReading;
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
  const charged = await waitForRenewals(ctx.deps, ids, dueAt.getTime() + STORM_TIMEOUT_MS);
  const cpuAfter = ctx.readCpu();
  const lateness = charged.filter((p) => p.status === 'succeeded').map((p) => p.updatedAt.getTime() - dueAt.getTime());
  const drainMs = Math.max(0, ...lateness);
  return {
    count,
    armedBeforeDue,
    armingMs,
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

// ---------------------------------------------------------------------------------------------
// 6. Footprint and history sizes

export interface FootprintResult {
  sleepingAdded: number;
  runningWorkflows: number | null;
  maxCachedWorkflows: number | null;
  rssIdleMiB: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  seedingMs: number;
}

/** Worker RSS before and after `sleeping` more subscriptions start sleeping until their next renewal. */
export async function measureFootprint(ctx: BenchContext, rssIdleBytes: number): Promise<FootprintResult> {
  const plan = await insertTestPlan(ctx.deps.db, { interval: 'P30D' });
  const workerPid = ctx.stack.worker.pid();
  const rssBefore = residentBytes(workerPid);
  const started = performance.now();
  const seeded = await seedDueSubscriptions(ctx.deps, {
    plan,
    userIds: ctx.users.map((u) => u.user.id),
    count: ctx.sizes.sleeping,
    dueAt: new Date(Date.now() + 30 * 24 * 3600_000),
    concurrency: 40,
  });
  await waitUntilAsleep(ctx.deps, seeded);
  const seedingMs = since(started);
  const rssAfter = await settledResidentBytes(workerPid);
  const billing = ctx.stack.workerSettings().workers.find((w) => w.taskQueue === TASK_QUEUES.billing);
  return {
    sleepingAdded: ctx.sizes.sleeping,
    runningWorkflows: await runningWorkflows(ctx.deps),
    maxCachedWorkflows: billing?.maxCachedWorkflows ?? null,
    rssIdleMiB: mib(rssIdleBytes),
    rssBeforeMiB: mib(rssBefore),
    rssAfterMiB: mib(rssAfter),
    seedingMs,
  };
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
