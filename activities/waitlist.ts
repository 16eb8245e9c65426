import { Context } from '@temporalio/activity';
import { WithStartWorkflowOperation, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { offerings, waitlistEntries } from '../db/schema';
import { freeUnitsOf, waitingEntriesOf } from '../db/waitlist';
import { holdWorkflowId, type ClaimOutcome } from '../domain/hold';
import { offeringClosedReason, waitlistOfferTtlProblem } from '../domain/offering';
import { durationToMilliseconds } from '../domain/period';
import { LIVE_WAITLIST_STATUSES, planOffers, type PlannedOffer } from '../domain/waitlist';
import type { Logger } from '../platform/logger';
import { OfferingIdAttribute } from '../platform/search-attribute-keys';
import { claimHoldUpdate, holdWorkflow } from '../workflows/hold';
import { customerAttributes } from '../workflows/search-attributes';

// Entries read per round: far more than the units that free up at once, and a round's offers are
// made one by one, so a longer line only waits for the next round.
const ENTRIES_PER_ROUND = 500;

/** What the waitlist workflow does next for its offering. */
export type WaitlistRound =
  { status: 'closed'; reason: string } | { status: 'open'; offeringName: string; ttlMs: number; offers: PlannedOffer[]; waiting: boolean };

export interface PlanRoundInput {
  offeringId: string;
  /** ISO-8601, the workflow's clock: whether the offering has started is judged by it (absent: this process's clock). */
  at?: string;
}

export interface StartOfferInput {
  offeringId: string;
  holdId: string;
  ttlMs: number;
  offer: PlannedOffer;
}

export type OfferOutcome = { status: 'offered'; expiresAt: string } | { status: 'skipped'; reason: string };

export function createWaitlistActivities(deps: { db: Database; logger: Logger }) {
  return {
    planWaitlistRound: (input: PlanRoundInput): Promise<WaitlistRound> => planWaitlistRound(deps, input),
    startWaitlistOffer: (input: StartOfferInput): Promise<OfferOutcome> => startWaitlistOffer(deps, input),
  };
}

export type WaitlistActivities = ReturnType<typeof createWaitlistActivities>;

/**
 * The offers this round makes: the free units of the offering to the first waiting entries that
 * fit (domain/waitlist.ts). A canceled or started offering closes its line instead. Only reads
 * but for the closing, which is one idempotent update: a retry plans again from what is there.
 */
async function planWaitlistRound({ db, logger }: { db: Database; logger: Logger }, input: PlanRoundInput): Promise<WaitlistRound> {
  const [offering] = await db.select().from(offerings).where(eq(offerings.id, input.offeringId));
  const closed = offering ? offeringClosedReason(offering, input.at ? new Date(input.at) : new Date()) : 'the offering does not exist';
  if (closed) {
    const entries = await db
      .update(waitlistEntries)
      .set({ status: 'closed', updatedAt: sql`now()` })
      .where(and(eq(waitlistEntries.offeringId, input.offeringId), inArray(waitlistEntries.status, [...LIVE_WAITLIST_STATUSES])))
      .returning({ id: waitlistEntries.id });
    if (entries.length > 0) logger.info({ offeringId: input.offeringId, entries: entries.length, reason: closed }, 'waitlist closed');
    return { status: 'closed', reason: closed };
  }
  const entries = await waitingEntriesOf(db, offering.id, ENTRIES_PER_ROUND);
  const offers = entries.length > 0 ? planOffers(await freeUnitsOf(db, offering.id), entries) : [];
  // The offering's TTL was checked when it was set; a bad one still makes offers, at the default.
  const ttl = waitlistOfferTtlProblem(offering.waitlistOfferTtl) ? 'PT15M' : offering.waitlistOfferTtl;
  return { status: 'open', offeringName: offering.name, ttlMs: durationToMilliseconds(ttl), offers, waiting: entries.length > 0 };
}

/**
 * One offer: a hold of the planned units for the entry's customer, owned by its own hold workflow
 * like any hold (its TTL, its release, the booking that consumes it), started and asked to claim
 * in one call as the API does. The claim makes the entry `offered` in its transaction. Idempotent
 * by the hold id the workflow chose: a retry reaches the same hold workflow (or finds its run
 * over, and reads what the entry became), never a second hold.
 */
async function startWaitlistOffer({ db, logger }: { db: Database; logger: Logger }, input: StartOfferInput): Promise<OfferOutcome> {
  const { offer } = input;
  const context = Context.current();
  const start = new WithStartWorkflowOperation(holdWorkflow, {
    workflowId: holdWorkflowId(input.holdId),
    taskQueue: context.info.taskQueue,
    args: [
      {
        holdId: input.holdId,
        userId: offer.userId,
        offeringId: input.offeringId,
        unitIds: offer.unitIds,
        ttlMs: input.ttlMs,
        waitlistEntryId: offer.entryId,
      },
    ],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'REJECT_DUPLICATE',
    typedSearchAttributes: [...customerAttributes({ userId: offer.userId }), { key: OfferingIdAttribute, value: input.offeringId }],
    staticSummary: `Waitlist offer of ${offer.unitIds.length} unit(s) to entry ${offer.entryId}`,
  });
  let outcome: ClaimOutcome;
  try {
    outcome = await context.client.workflow.executeUpdateWithStart(claimHoldUpdate, { startWorkflowOperation: start });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    return offeredByHold(db, offer.entryId, input.holdId);
  }
  if (outcome.status === 'held') return { status: 'offered', expiresAt: outcome.hold.expiresAt };
  const reason = skipReason(outcome);
  if (outcome.status === 'limited' || outcome.status === 'rejected') {
    // The customer cannot take these units now (a fair-use limit): the offer passes on rather
    // than being made to them again every round.
    await db
      .update(waitlistEntries)
      .set({ status: 'expired', updatedAt: sql`now()` })
      .where(and(eq(waitlistEntries.id, offer.entryId), eq(waitlistEntries.status, 'waiting')));
  }
  logger.info({ entryId: offer.entryId, reason }, 'waitlist offer not made');
  return { status: 'skipped', reason };
}

/** The answer of an earlier attempt whose hold workflow has closed since: what the entry shows. */
async function offeredByHold(db: Database, entryId: string, holdId: string): Promise<OfferOutcome> {
  const [entry] = await db.select().from(waitlistEntries).where(eq(waitlistEntries.id, entryId));
  if (entry?.holdId === holdId && entry.offerExpiresAt) return { status: 'offered', expiresAt: entry.offerExpiresAt.toISOString() };
  return { status: 'skipped', reason: 'the offer was not made' };
}

function skipReason(outcome: Exclude<ClaimOutcome, { status: 'held' }>): string {
  switch (outcome.status) {
    case 'conflict':
      return outcome.entryNotWaiting ? 'the entry left the line' : `units taken meanwhile: ${outcome.unavailableUnitIds.join(', ')}`;
    case 'limited':
      return outcome.refusal.detail;
    case 'rejected':
      return `units not of the offering: ${outcome.unknownUnitIds.join(', ')}`;
    case 'closed':
      return outcome.reason;
  }
}
