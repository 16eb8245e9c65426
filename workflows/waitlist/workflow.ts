import { condition, continueAsNew, defineSignal, proxyActivities, setCurrentDetails, setHandler, uuid4, workflowInfo } from '@temporalio/workflow';
import type { WaitlistActivities } from '../../activities/waitlist';
import { notificationDedupeKey } from '../../domain/notification';
import { waitlistOfferNotice, type PlannedOffer } from '../../domain/waitlist';
import { PROJECTION } from '../activity-options';
import { now } from '../clock';
import { notifyQuietly } from '../notify';

export interface WaitlistWorkflowInput {
  offeringId: string;
}

/** Units of the offering came back (a hold ended, a booking was canceled or moved): look again. */
export const unitsFreedSignal = defineSignal<[freed?: { offeringId: string }]>('unitsFreed');
/** Someone joined or left the line. */
export const entryChangedSignal = defineSignal('entryChanged');
/** The offering was canceled (its cancel workflow closes the entries): make no more offers and end. */
export const offeringCanceledSignal = defineSignal('offeringCanceled');

// Reads and the offer's update-with-start are retried until they go through (PROJECTION).
const { planWaitlistRound, startWaitlistOffer } = proxyActivities<WaitlistActivities>(PROJECTION);

/** How often the line is looked at without a signal: a lost signal only delays an offer by this. */
export const WAITLIST_RECHECK_MS = 60_000;
// Each round is a timer and a read or two: a run's history stays small.
const ROUNDS_PER_RUN = 250;

export type WaitlistEnd = 'closed' | 'canceled' | 'empty';

/**
 * The one waitlist workflow of an offering (`waitlist-<offeringId>`): the only maker of its
 * offers, one after the other, so a freed unit is offered to exactly one entry. While anyone
 * waits, the claims of everyone else are refused (activities/hold.ts), so nobody holds a freed
 * unit meanwhile. Each round offers the free units to the first waiting entries that fit; each
 * offer is a hold workflow of its own (the TTL, the release, the booking that takes it), and
 * when it ends unbooked its release marks the entry expired and signals `unitsFreed`, which
 * starts the next round. Started by signal-with-start on a join and on freed units; ends when
 * nobody waits any more, when the offering is canceled, or when it has started.
 */
export async function waitlistWorkflow(input: WaitlistWorkflowInput): Promise<WaitlistEnd> {
  let wake = true;
  let canceled = false;
  setHandler(unitsFreedSignal, () => void (wake = true));
  setHandler(entryChangedSignal, () => void (wake = true));
  setHandler(offeringCanceledSignal, () => void (canceled = true));

  for (let round = 0; round < ROUNDS_PER_RUN && !workflowInfo().continueAsNewSuggested; round++) {
    if (!wake) await condition(() => wake || canceled, WAITLIST_RECHECK_MS);
    if (canceled) return 'canceled';
    wake = false;
    const plan = await planWaitlistRound({ offeringId: input.offeringId, at: now().toISOString() });
    if (plan.status === 'closed') return 'closed';
    setCurrentDetails(plan.offers.length > 0 ? `Offering units to ${plan.offers.length} entr(ies)` : 'Waiting for units to free up');
    for (const offer of plan.offers) {
      if (canceled) return 'canceled';
      await makeOffer(input.offeringId, plan, offer);
    }
    if (!plan.waiting && !wake) return 'empty';
  }
  // Signals that arrived meanwhile are not lost: the next run starts with a round.
  return continueAsNew<typeof waitlistWorkflow>(input);
}

async function makeOffer(offeringId: string, plan: { offeringName: string; ttlMs: number }, offer: PlannedOffer): Promise<void> {
  const holdId = uuid4();
  const outcome = await startWaitlistOffer({ offeringId, holdId, ttlMs: plan.ttlMs, offer });
  if (outcome.status !== 'offered') return;
  await notifyQuietly({
    userId: offer.userId,
    kind: 'waitlist_offer',
    ...waitlistOfferNotice({ offeringName: plan.offeringName, units: offer.unitIds.length, holdId, expiresAt: outcome.expiresAt }),
    dedupeKey: notificationDedupeKey(workflowInfo().workflowId, `offer:${offer.entryId}`),
  });
}
