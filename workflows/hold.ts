import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  patched,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { HoldActivities } from '../activities/hold';
import type { ClaimOutcome, HoldStatus } from '../domain/hold';
import { extendHold, releaseHold } from './activity-options';
import { msUntil, now } from './clock';

export interface HoldWorkflowInput {
  holdId: string;
  userId: string;
  offeringId: string;
  unitIds: string[];
  ttlMs: number;
  /** HOLDS_PER_CUSTOMER_MAX when the hold was asked for (absent in holds started before the limit). */
  holdsPerCustomerMax?: number;
  /** HOLD_MAX_EXTENSION in ms when the hold was asked for: how far past its TTL a booking may keep it (absent in holds from before: none). */
  maxExtensionMs?: number;
  /** Set when the hold is a waitlist offer (activities/waitlist.ts): its claim may take units the line reserves. */
  waitlistEntryId?: string;
}

export type HoldPhase = 'claiming' | 'conflict' | 'rejected' | 'limited' | 'closed' | 'failed' | HoldStatus;

export interface HoldState {
  holdId: string;
  phase: HoldPhase;
  unitIds: string[];
  expiresAt: string;
}

/**
 * Sent with the workflow's start (update-with-start): answers once the units are claimed or
 * refused, so the API's 201 or 409 is immediate while the workflow goes on to own the hold.
 */
export const claimHoldUpdate = defineUpdate<ClaimOutcome>('claimHold');
/** The owner gives the hold back early; answers the hold's final status. */
export const releaseHoldUpdate = defineUpdate<HoldStatus | null>('releaseHold');
/** A booking consumed the hold or gave it back itself: stop waiting for the TTL. */
export const holdSettledSignal = defineSignal('holdSettled');
/**
 * The booking of this hold is waiting for its customer (a charge needing 3-D Secure): keep the
 * units past the TTL, up to `maxExtensionMs` beyond it, until the booking settles the hold.
 */
export const holdKeptSignal = defineSignal('holdKept');

/** Guards the kept hold's commands (the projection of its later expiry, its later timer). */
export const HOLD_KEPT_PATCH = 'hold-kept-while-authenticating';
export const holdStateQuery = defineQuery<HoldState>('state');

// Claiming is one short transaction the API is waiting for: a local activity saves a round trip.
const { claimUnits } = proxyLocalActivities<HoldActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumAttempts: 5 },
});

// Releasing is the only way units come back, so it retries until PostgreSQL takes it (the
// PROJECTION preset's releaseHold).

/**
 * One hold (`hold-<id>`): claims its units, then waits on the workflow clock until its TTL,
 * an early release by its owner, or word from a booking, and ends it. The workflow exists
 * before any claim row does and every path out of it runs `releaseHold`, so no claim outlives
 * its workflow. `releaseHold` locks the hold row, so a TTL firing while a booking confirms is
 * settled by whichever commits first: the booking's consume or this release.
 */
export async function holdWorkflow(input: HoldWorkflowInput): Promise<HoldPhase> {
  const startedAt = now().getTime();
  let expiresAt = new Date(startedAt + input.ttlMs);
  const maxExtensionMs = input.maxExtensionMs ?? 0;
  let keepAsked = false;
  let outcome: ClaimOutcome | undefined;
  let claimError: unknown;
  let releaseRequested = false;
  let settled = false;
  let finalStatus: HoldStatus | null | undefined;

  const phase = (): HoldPhase => {
    if (claimError !== undefined) return 'failed';
    if (!outcome) return 'claiming';
    if (outcome.status !== 'held') return outcome.status;
    return finalStatus ?? 'active';
  };

  setHandler(holdStateQuery, () => ({
    holdId: input.holdId,
    phase: phase(),
    unitIds: input.unitIds,
    expiresAt: expiresAt.toISOString(),
  }));

  setHandler(claimHoldUpdate, async () => {
    await condition(() => outcome !== undefined || claimError !== undefined);
    if (claimError !== undefined)
      throw ApplicationFailure.create({ message: 'could not claim the units', type: 'ClaimFailed', cause: claimError as Error });
    return outcome as ClaimOutcome;
  });

  setHandler(
    releaseHoldUpdate,
    async () => {
      releaseRequested = true;
      await condition(() => finalStatus !== undefined);
      return finalStatus as HoldStatus | null;
    },
    {
      validator: () => {
        if (phase() !== 'active' || releaseRequested) {
          throw ApplicationFailure.nonRetryable(`the hold is ${phase()}`, 'HoldNotActive');
        }
      },
    },
  );

  setHandler(holdSettledSignal, () => {
    settled = true;
  });
  setHandler(holdKeptSignal, () => {
    keepAsked = true;
  });

  try {
    outcome = await claimUnits({
      holdId: input.holdId,
      userId: input.userId,
      offeringId: input.offeringId,
      unitIds: input.unitIds,
      expiresAt: expiresAt.toISOString(),
      workflowId: workflowInfo().workflowId,
      holdsPerCustomerMax: input.holdsPerCustomerMax,
      // Absent for every hold that is no offer, so their claim's input is as it always was.
      ...(input.waitlistEntryId ? { waitlistEntryId: input.waitlistEntryId } : {}),
    });
  } catch (err) {
    // The last attempt may have committed before its answer was lost: give back whatever it took.
    finalStatus = await releaseHold({ holdId: input.holdId, reason: 'released' });
    claimError = err;
    await condition(allHandlersFinished);
    throw err;
  }
  if (outcome.status !== 'held') {
    // The start's update answers with this outcome: let it be delivered before the run ends.
    await condition(allHandlersFinished);
    return outcome.status;
  }

  setCurrentDetails(`Holding ${input.unitIds.length} unit(s) until ${expiresAt.toISOString()}`);
  const ended = () => releaseRequested || settled;
  // Only a hold that may be kept wakes for the ask; the others wait exactly as before.
  let endedEarly = await condition(() => ended() || (keepAsked && maxExtensionMs > 0), msUntil(expiresAt));
  if (!ended() && keepAsked && maxExtensionMs > 0 && patched(HOLD_KEPT_PATCH)) {
    expiresAt = new Date(startedAt + input.ttlMs + maxExtensionMs);
    setCurrentDetails(`Holding ${input.unitIds.length} unit(s) for a booking awaiting payment, until ${expiresAt.toISOString()}`);
    await extendHold({ holdId: input.holdId, expiresAt: expiresAt.toISOString() });
    endedEarly = await condition(ended, msUntil(expiresAt));
  }
  finalStatus = await releaseHold({ holdId: input.holdId, reason: endedEarly ? 'released' : 'expired' });
  await condition(allHandlersFinished);
  return finalStatus ?? 'released';
}
