/**
 * The business cancels an offering (`offering-cancel-<offeringId>`): the offering is marked
 * canceled (the API waits for that through the offeringCanceled update sent with the start), its
 * holds released, its waitlist closed, then every confirmed or checked-in booking refunded in
 * full and canceled through its own workflow's cancelByBusiness update, a bounded number at a
 * time, page by page. Support staff follow the progress in the Temporal UI (the details line)
 * and through the `progress` query; the history stays bounded by continuing as new.
 */
import { allHandlersFinished, condition, continueAsNew, getExternalWorkflowHandle, log, setCurrentDetails, setHandler } from '@temporalio/workflow';
import { holdWorkflowId } from '../../domain/hold';
import { waitlistWorkflowId } from '../../domain/waitlist';
import { cancelBookingOfOffering, offeringSteps } from '../activity-options';
import { holdSettledSignal } from '../hold';
// The waitlist's own signal: on it the line closes and its workflow ends.
import { offeringCanceledSignal as waitlistOfferingCanceledSignal } from '../waitlist/workflow';
import {
  offeringCanceledUpdate,
  offeringCancellationProgressQuery,
  type CanceledOffering,
  type OfferingCancellationInput,
  type OfferingCancellationProgress,
} from './contract';

/** Bookings read per page (keyset by id). */
export const BOOKINGS_PER_PAGE = 50;
/** Bookings whose update is in flight at once: the gateway's rate limit is shared with checkouts. */
export const BOOKINGS_IN_PARALLEL = 10;
/** Pages per run: about 4 events per booking keeps a run's history near 2,000 events. */
export const PAGES_PER_RUN = 10;

export async function offeringCancellationWorkflow(input: OfferingCancellationInput): Promise<OfferingCancellationProgress> {
  const progress: OfferingCancellationProgress = input.resume?.progress ?? {
    phase: 'canceling_offering',
    total: 0,
    canceled: 0,
    skipped: 0,
    failed: 0,
    refundedAmount: 0,
    holdsReleased: 0,
    waitlistEntriesClosed: 0,
  };
  let canceled: CanceledOffering | undefined = input.resume?.canceled;
  setHandler(offeringCancellationProgressQuery, () => progress);
  // A repeated POST sends this again (to whichever run is current): it answers once the row is marked.
  setHandler(offeringCanceledUpdate, async () => {
    await condition(() => canceled !== undefined);
    return canceled!;
  });

  const { offeringId } = input;
  if (!input.resume) {
    setCurrentDetails('Canceling the offering…');
    canceled = await offeringSteps.markOfferingCanceled({ offeringId, reason: input.reason });
    await releaseHolds(progress, offeringId);
    await closeWaitlist(progress, offeringId);
    progress.total = await offeringSteps.countBookingsToCancel({ offeringId });
    progress.phase = 'refunding_bookings';
  }

  let afterBookingId = input.resume?.afterBookingId ?? null;
  for (let page = 0; page < PAGES_PER_RUN; page++) {
    describe(progress);
    const bookings = await offeringSteps.bookingsToCancel({ offeringId, afterBookingId, limit: BOOKINGS_PER_PAGE });
    if (bookings.length === 0) {
      progress.phase = 'done';
      describe(progress);
      await condition(allHandlersFinished);
      return progress;
    }
    await eachBounded(bookings, BOOKINGS_IN_PARALLEL, async (booking) => {
      const outcome = await cancelBookingOfOffering({ ...booking, reason: input.reason });
      if (outcome.status === 'canceled') {
        progress.canceled += 1;
        progress.refundedAmount += outcome.refundedAmount;
      } else if (outcome.status === 'skipped') progress.skipped += 1;
      else {
        progress.failed += 1;
        log.error('a booking of the canceled offering was not refunded; needs a person', { bookingId: booking.bookingId, error: outcome.error });
      }
      describe(progress);
    });
    afterBookingId = bookings[bookings.length - 1].bookingId;
  }
  // The update of a repeated POST is answered before this run hands over.
  await condition(allHandlersFinished);
  return continueAsNew<typeof offeringCancellationWorkflow>({ ...input, resume: { canceled: canceled!, afterBookingId, progress } });
}

async function releaseHolds(progress: OfferingCancellationProgress, offeringId: string): Promise<void> {
  progress.phase = 'releasing_holds';
  setCurrentDetails('Releasing the holds…');
  const released = await offeringSteps.releaseOfferingHolds({ offeringId });
  progress.holdsReleased = released.length;
  // Each hold's workflow stops waiting for its TTL (its own release then finds the hold ended).
  await Promise.all(released.map((holdId) => signalQuietly(holdWorkflowId(holdId), holdSettledSignal)));
}

async function closeWaitlist(progress: OfferingCancellationProgress, offeringId: string): Promise<void> {
  progress.phase = 'closing_waitlist';
  setCurrentDetails('Closing the waitlist…');
  progress.waitlistEntriesClosed = await offeringSteps.closeOfferingWaitlist({ offeringId });
  await signalQuietly(waitlistWorkflowId(offeringId), waitlistOfferingCanceledSignal);
}

/** A workflow that has ended (or never ran: an offering without a waitlist) has nothing left to hear. */
async function signalQuietly(workflowId: string, signal: Parameters<ReturnType<typeof getExternalWorkflowHandle>['signal']>[0]): Promise<void> {
  try {
    await getExternalWorkflowHandle(workflowId).signal(signal);
  } catch (err) {
    log.info('workflow not signalled', { workflowId, error: String(err) });
  }
}

/** Runs `each` over `items`, at most `limit` at a time, in the items' order (deterministic). */
async function eachBounded<T>(items: readonly T[], limit: number, each: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await each(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

function describe(p: OfferingCancellationProgress): void {
  const done = p.canceled + p.skipped + p.failed;
  const tail = [p.skipped > 0 ? `${p.skipped} skipped` : '', p.failed > 0 ? `${p.failed} FAILED (need a person)` : ''].filter(Boolean).join(', ');
  const line =
    p.phase === 'done'
      ? `Offering canceled: ${p.canceled} booking(s) refunded and canceled`
      : `Refunded ${p.canceled} of ${p.total} bookings… (${done} handled)`;
  setCurrentDetails(tail ? `${line}; ${tail}` : line);
}
