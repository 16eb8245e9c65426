/** Booking and hold histories: the saga's outcomes, a booking's later changes, a hold's endings. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { WorkflowHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { and, eq } from 'drizzle-orm';
import { payments } from '../../db/schema';
import { bookingWorkflowId } from '../../domain/booking';
import { holdWorkflowId } from '../../domain/hold';
import { insertTestOffering, type TestOffering } from '../../test/support/booking-fixtures';
import { waitUntilClosed } from '../../test/support/temporal';
import { insertTestUser } from '../../test/support/payment-fixtures';
import { eventually } from '../../test/support/subscription-fixtures';
import {
  bookingDecisionUpdate,
  bookingStateQuery,
  bookingWorkflow,
  cancelBookingUpdate,
  checkInBookingUpdate,
  rescheduleBookingUpdate,
  staffRefundUpdate,
} from '../../workflows/booking';
import { claimHoldUpdate, holdStateQuery, holdWorkflow, releaseHoldUpdate } from '../../workflows/hold';
import { paymentSettledSignal } from '../../workflows/payment';
import type { RecordedRun, Recorder, Scenario } from './recorder';

// Long enough that a booking's pending charge times out (PT1H) before its hold would expire.
const BOOKING_HOLD_TTL_MS = 2 * 60 * 60 * 1000;
const SHORT_HOLD_TTL_MS = 5 * 60 * 1000;
const HOLD_MAX_EXTENSION_MS = 15 * 60 * 1000;
const DAY = 24 * 60 * 60 * 1000;

export const BOOKING_SCENARIOS: Record<string, Scenario> = {
  // Confirmed at once, then canceled by the customer (full refund); the hold is consumed.
  // Recorded before the booking-local-steps patch (the checkout's steps as activity tasks).
  'booking-confirmed-canceled': (r) => confirmedThenCanceled(r, 'booking-confirmed-canceled', 'hold-consumed-by-booking'),

  // The same with the patch: begin, confirm and the receipt as local activities.
  'booking-local-steps-confirmed-canceled': (r) =>
    confirmedThenCanceled(r, 'booking-local-steps-confirmed-canceled', 'hold-consumed-by-local-steps-booking'),

  // A declined reschedule (its claim given back), one to more units (top-up charge), one to fewer
  // (refund of the difference), a staff refund; the booking ends with its offering.
  'booking-rescheduled-refunded-completed': async (r) => {
    const { booking, offering } = await bookedSetup(r, 'pm_card_visa');
    const [a, b, c] = offering.unitIds;
    const outcomes = [
      await booking.executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: [a, b, c], paymentMethod: 'pm_card_chargeDeclined' }] }),
      await booking.executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: [a, b, c] }] }),
      await booking.executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: [a] }] }),
    ];
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['declined', 'rescheduled', 'rescheduled'],
    );
    await booking.executeUpdate(staffRefundUpdate, { args: [{ amount: 500, reason: 'Late start' }] });
    assert.equal((await booking.result()).status, 'confirmed');
    return [run('booking-rescheduled-refunded-completed', booking)];
  },

  // Staff check the customer in at the door; the booking ends with its offering, checked in.
  'booking-checked-in': async (r) => {
    const { booking, decision } = await bookedSetup(r, 'pm_card_visa');
    assert.deepEqual(decision, { status: 'confirmed' });
    const { checkedInAt } = await booking.executeUpdate(checkInBookingUpdate);
    const state = await booking.result();
    assert.deepEqual([state.status, state.checkedInAt], ['checked_in', checkedInAt]);
    return [run('booking-checked-in', booking)];
  },

  // Nobody checks the customer in: at the offering's end the booking is a no-show.
  'booking-no-show': async (r) => {
    const { booking, decision } = await bookedSetup(r, 'pm_card_visa');
    assert.deepEqual(decision, { status: 'confirmed' });
    assert.equal((await booking.result()).status, 'no_show');
    return [run('booking-no-show', booking)];
  },

  // The card is declined: the saga compensates (hold released, booking failed, customer told).
  'booking-declined-compensated': async (r) => {
    const { booking, hold, decision } = await bookedSetup(r, 'pm_card_chargeDeclined');
    assert.deepEqual(decision, { status: 'failed', reason: 'payment_declined' });
    await Promise.all([waitUntilClosed(booking), waitUntilClosed(hold)]);
    return [run('booking-declined-compensated', booking), run('hold-released-by-failed-booking', hold)];
  },

  // The charge awaits authentication; the payment webhook's signal settles it and the booking confirms.
  'booking-pending-settled-canceled': async (r) => {
    const { booking, bookingId, hold, decision } = await bookedSetup(r, 'pm_card_authenticationRequired');
    assert.deepEqual(decision, { status: 'awaiting_payment' });
    const pending = await waitForPendingCharge(r, bookingId);
    await booking.signal(paymentSettledSignal, { ...pending, status: 'succeeded', failureCode: null });
    await waitForBookingStatus(booking, 'confirmed');
    await booking.executeUpdate(cancelBookingUpdate);
    await Promise.all([waitUntilClosed(booking), waitUntilClosed(hold)]);
    return [run('booking-pending-settled-canceled', booking)];
  },

  // The charge awaits authentication past the hold's TTL: the hold is kept (HOLD_MAX_EXTENSION) until the booking confirms.
  'booking-pending-hold-kept': async (r) => {
    const { booking, bookingId, hold } = await bookedSetup(r, 'pm_card_authenticationRequired', SHORT_HOLD_TTL_MS, HOLD_MAX_EXTENSION_MS);
    const pending = await waitForPendingCharge(r, bookingId);
    await r.env.sleep(SHORT_HOLD_TTL_MS + 60_000);
    assert.equal((await hold.query(holdStateQuery)).phase, 'active');
    await booking.signal(paymentSettledSignal, { ...pending, status: 'succeeded', failureCode: null });
    await waitForBookingStatus(booking, 'confirmed');
    await booking.executeUpdate(cancelBookingUpdate);
    await Promise.all([waitUntilClosed(booking), waitUntilClosed(hold)]);
    return [run('booking-pending-hold-kept', booking), run('hold-kept-then-consumed', hold)];
  },

  // Nobody authenticates the charge: canceled at the gateway at its timeout; the saga compensates.
  'booking-pending-timeout': async (r) => {
    const { booking, hold } = await bookedSetup(r, 'pm_card_authenticationRequired');
    assert.equal((await booking.result()).failureReason, 'payment_timeout');
    await waitUntilClosed(hold);
    return [run('booking-pending-timeout', booking)];
  },

  // Nobody books: the hold expires at its TTL.
  'hold-expired': async (r) => {
    const { offering, userId } = await offeringAndUser(r);
    const { handle: hold } = await startHold(r, userId, offering, offering.unitIds.slice(0, 2), SHORT_HOLD_TTL_MS);
    assert.equal(await hold.result(), 'expired');
    return [run('hold-expired', hold)];
  },

  // A second hold on a taken unit is refused; the first is released early by its owner.
  'hold-conflict-and-released': async (r) => {
    const { offering, userId } = await offeringAndUser(r);
    const [a, b, c] = offering.unitIds;
    const { handle: first } = await startHold(r, userId, offering, [a, b], SHORT_HOLD_TTL_MS);
    const { handle: second, outcome } = await startHold(r, userId, offering, [b, c], SHORT_HOLD_TTL_MS);
    assert.equal(outcome.status, 'conflict');
    await first.query(holdStateQuery);
    assert.equal(await first.executeUpdate(releaseHoldUpdate), 'released');
    await Promise.all([waitUntilClosed(first), waitUntilClosed(second)]);
    return [run('hold-released-early', first), run('hold-conflict', second)];
  },
};

async function offeringAndUser(r: Recorder) {
  const user = await insertTestUser(r.db);
  // Ten days ahead on the server's clock, which earlier scenarios have moved past the wall clock.
  const startsAt = new Date((await r.env.currentTimeMs()) + 10 * DAY);
  const offering = await insertTestOffering(r.db, { unitCount: 4, startsAt });
  return { userId: user.id, offering };
}

export async function startHold(r: Recorder, userId: string, offering: TestOffering, unitIds: string[], ttlMs: number, maxExtensionMs?: number) {
  const holdId = randomUUID();
  const handle = await r.env.client.workflow.start(holdWorkflow, {
    workflowId: holdWorkflowId(holdId),
    taskQueue: r.taskQueue,
    args: [{ holdId, userId, offeringId: offering.id, unitIds, ttlMs, ...(maxExtensionMs === undefined ? {} : { maxExtensionMs }) }],
  });
  const outcome = await handle.executeUpdate(claimHoldUpdate);
  return { holdId, handle, outcome };
}

/** A held pair of units and a booking of them paid with `paymentMethod`, once it has decided. */
async function bookedSetup(r: Recorder, paymentMethod: string, holdTtlMs = BOOKING_HOLD_TTL_MS, maxExtensionMs?: number) {
  const { offering, userId } = await offeringAndUser(r);
  const { holdId, handle: hold } = await startHold(r, userId, offering, offering.unitIds.slice(0, 2), holdTtlMs, maxExtensionMs);
  const bookingId = randomUUID();
  const booking = await r.env.client.workflow.start(bookingWorkflow, {
    workflowId: bookingWorkflowId(bookingId),
    taskQueue: r.taskQueue,
    args: [{ bookingId, holdId, userId, paymentMethod, pendingPaymentTimeout: 'PT1H', paymentsTaskQueue: r.taskQueue }],
  });
  const decision = await booking.executeUpdate(bookingDecisionUpdate);
  return { booking, bookingId, hold, offering, decision };
}

/** The booking's charge the gateway left pending, as the payment webhook would name it. */
async function waitForPendingCharge(r: Recorder, bookingId: string) {
  return eventually(async () => {
    const [charge] = await r.db
      .select()
      .from(payments)
      .where(and(eq(payments.bookingId, bookingId), eq(payments.status, 'pending')));
    if (!charge?.gatewayPaymentId) throw new Error(`booking ${bookingId} has no pending charge yet`);
    return { paymentId: charge.id, gatewayPaymentId: charge.gatewayPaymentId };
  });
}

function waitForBookingStatus(booking: WorkflowHandle<typeof bookingWorkflow>, status: string) {
  return eventually(async () => {
    const state = await booking.query(bookingStateQuery);
    if (state.status !== status) throw new Error(`booking is ${state.status}, not ${status}`);
  });
}

export function run(file: string, handle: WorkflowHandleWithFirstExecutionRunId): RecordedRun {
  return { file, workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
}

async function confirmedThenCanceled(r: Recorder, bookingFile: string, holdFile: string): Promise<RecordedRun[]> {
  const { booking, hold, decision } = await bookedSetup(r, 'pm_card_visa');
  assert.deepEqual(decision, { status: 'confirmed' });
  await booking.query(bookingStateQuery);
  assert.equal((await booking.executeUpdate(cancelBookingUpdate)).tier, 'full');
  await Promise.all([waitUntilClosed(booking), waitUntilClosed(hold)]);
  return [run(bookingFile, booking), run(holdFile, hold)];
}
