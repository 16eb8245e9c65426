/**
 * Benchmark 4: hold contention (1000 hold requests at once for adjacent units), then booking
 * every hold granted, the refused requests sent again, and holds and bookings one at a time.
 */
import { bookingWorkflowId } from '../domain/booking';
import type { TestUser } from '../test/support/api';
import { insertTestOffering } from '../test/support/booking-fixtures';
import type { BenchContext } from './benchmarks';
import { cpuPerOperation, type CpuReading } from './cpu';
import { meanStages, type Stages } from './history';
import { findDoubleBookings, type DoubleBookings } from './invariants';
import { perSecond, seededRandom, since, summarise, tally, type LatencySummary } from './stats';
import { ALONE, latencyAlone, sampleStages, timedRequest } from './timing';

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
