/**
 * The steps of an offering's cancellation by the business (workflows/offering): the row marked
 * canceled, its active holds released, its waitlist closed, its bookings found page by page and
 * each canceled through its own workflow's cancelByBusiness update, which makes the refunds.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { and, asc, count, eq, gt, inArray, sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import type { Database } from '../db/client';
import { bookings, holds, offerings, waitlistEntries } from '../db/schema';
import { LIVE_WAITLIST_STATUSES } from '../domain/waitlist';
import type { Logger } from '../platform/logger';
import { cancelByBusinessUpdate } from '../workflows/booking/contract';
import type { BookingCancelOutcome, CanceledOffering } from '../workflows/offering/contract';
import { createHoldActivities } from './hold';

/** The bookings a cancellation refunds: the ones a customer holds a place with. */
const CANCELABLE_BOOKING_STATUSES = ['confirmed', 'checked_in'] as const;
/**
 * The updateId every cancellation of an offering sends each booking: an attempt retried after
 * a worker died attaches to the update the first one started instead of sending another.
 */
export const BUSINESS_CANCEL_UPDATE_ID = 'offering-cancel';
const HEARTBEAT_EVERY_MS = 2000;

export interface BookingToCancel {
  bookingId: string;
  workflowId: string;
}

export function createOfferingActivities(deps: { db: Database; redis?: Redis; logger: Logger }) {
  const { db, logger } = deps;
  const { releaseHold } = createHoldActivities(deps);
  return {
    markOfferingCanceled: (input: { offeringId: string; reason: string }) => markOfferingCanceled(db, logger, input),
    /** Ends every active hold of the offering (releaseHold locks each row: a booking's confirm or the hold's own release after this is a no-op). */
    releaseOfferingHolds: async (input: { offeringId: string }): Promise<string[]> => {
      const active = await db
        .select({ id: holds.id })
        .from(holds)
        .where(and(eq(holds.offeringId, input.offeringId), eq(holds.status, 'active')));
      const released: string[] = [];
      for (const { id } of active) if ((await releaseHold({ holdId: id, reason: 'released' })) === 'released') released.push(id);
      return released;
    },
    /** Live entries become `closed` (idempotent: a repeat finds none live); answers how many. */
    closeOfferingWaitlist: async (input: { offeringId: string }): Promise<number> => {
      const closed = await db
        .update(waitlistEntries)
        .set({ status: 'closed', updatedAt: sql`now()` })
        .where(and(eq(waitlistEntries.offeringId, input.offeringId), inArray(waitlistEntries.status, [...LIVE_WAITLIST_STATUSES])))
        .returning({ id: waitlistEntries.id });
      return closed.length;
    },
    countBookingsToCancel: async (input: { offeringId: string }): Promise<number> => {
      const [row] = await db.select({ n: count() }).from(bookings).where(cancelable(input.offeringId));
      return row.n;
    },
    /** The next page by id (keyset): bookings canceled meanwhile drop out, the cursor keeps its place. */
    bookingsToCancel: (input: { offeringId: string; afterBookingId: string | null; limit: number }): Promise<BookingToCancel[]> =>
      db
        .select({ bookingId: bookings.id, workflowId: bookings.workflowId })
        .from(bookings)
        .where(and(cancelable(input.offeringId), input.afterBookingId ? gt(bookings.id, input.afterBookingId) : undefined))
        .orderBy(asc(bookings.id))
        .limit(input.limit),
    cancelBookingOfOffering: (input: BookingToCancel & { reason: string }) => cancelBookingOfOffering(db, input),
  };
}

export type OfferingActivities = ReturnType<typeof createOfferingActivities>;

function cancelable(offeringId: string) {
  return and(eq(bookings.offeringId, offeringId), inArray(bookings.status, [...CANCELABLE_BOOKING_STATUSES]));
}

/**
 * Marks the offering canceled, once: a repeat answers the first cancellation's time and reason.
 * The row lock orders it against claims and confirms, which share-lock the row.
 */
async function markOfferingCanceled(db: Database, logger: Logger, input: { offeringId: string; reason: string }): Promise<CanceledOffering> {
  const row = await db.transaction(async (tx) => {
    const [offering] = await tx.select().from(offerings).where(eq(offerings.id, input.offeringId)).for('update');
    if (!offering) throw ApplicationFailure.nonRetryable(`no offering ${input.offeringId}`, 'OfferingNotFound');
    if (offering.status === 'canceled') return offering;
    const [updated] = await tx
      .update(offerings)
      .set({ status: 'canceled', canceledAt: sql`now()`, cancelReason: input.reason })
      .where(eq(offerings.id, offering.id))
      .returning();
    logger.info({ offeringId: offering.id }, 'offering canceled');
    return updated;
  });
  return { offeringId: row.id, canceledAt: row.canceledAt!.toISOString(), cancelReason: row.cancelReason ?? input.reason };
}

/**
 * One booking's cancelByBusiness update, with a fixed updateId: after a worker's death the
 * retried attempt attaches to the update already running or answers its result, so the refunds
 * (keyed by the booking's workflow, booking/business-cancel.ts) are made once. A booking whose
 * workflow has closed meanwhile (the update finished and the run ended) is judged by its row.
 */
async function cancelBookingOfOffering(db: Database, input: BookingToCancel & { reason: string }): Promise<BookingCancelOutcome> {
  const context = Context.current();
  const heartbeat = setInterval(() => context.heartbeat(), HEARTBEAT_EVERY_MS);
  try {
    const handle = context.client.workflow.getHandle(input.workflowId);
    const result = await handle.executeUpdate(cancelByBusinessUpdate, { args: [{ reason: input.reason }], updateId: BUSINESS_CANCEL_UPDATE_ID });
    return result.status === 'canceled' ? { status: 'canceled', refundedAmount: result.refundedAmount } : { status: 'skipped' };
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) return { status: 'failed', error: String(err.cause?.message ?? err.message) };
    if (err instanceof WorkflowNotFoundError || isClosedWorkflowError(err)) return outcomeOfRow(db, input.bookingId);
    throw err;
  } finally {
    clearInterval(heartbeat);
  }
}

/** The server's answer to an update sent to a workflow that has completed. */
function isClosedWorkflowError(err: unknown): boolean {
  return err instanceof Error && /workflow execution already completed/i.test(err.message);
}

async function outcomeOfRow(db: Database, bookingId: string): Promise<BookingCancelOutcome> {
  const [row] = await db
    .select({ status: bookings.status, refundedAmount: bookings.refundedAmount })
    .from(bookings)
    .where(eq(bookings.id, bookingId));
  // Its own update canceled it and the run ended before this attempt heard the answer; the amount is the row's.
  if (row?.status === 'canceled') return { status: 'canceled', refundedAmount: 0 };
  return { status: 'skipped' };
}
