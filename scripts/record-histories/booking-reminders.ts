/**
 * Booking histories with reminders (patched 'booking-reminders'): sent at their times, cut short
 * by a cancel, or re-planned by a move to another date of the booking's series.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { eq, inArray } from 'drizzle-orm';
import { offerings } from '../../db/schema';
import { bookingWorkflowId } from '../../domain/booking';
import { holdWorkflowId } from '../../domain/hold';
import { insertTestOffering } from '../../test/support/booking-fixtures';
import { insertTestUser } from '../../test/support/payment-fixtures';
import { bookingDecisionUpdate, bookingWorkflow, cancelBookingUpdate, rescheduleBookingUpdate } from '../../workflows/booking';
import { claimHoldUpdate, holdWorkflow } from '../../workflows/hold';
import type { Recorder, Scenario } from './recorder';

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

export const BOOKING_REMINDER_SCENARIOS: Record<string, Scenario> = {
  // Both reminders sent at their offsets, then nobody checks in: a no-show at the offering's end.
  'booking-reminded-no-show': async (r) => {
    const { booking } = await bookingWithReminders(r, ['P1D', 'PT2H'], 3 * DAY);
    assert.equal((await booking.result()).status, 'no_show');
    return [{ file: 'booking-reminded-no-show', workflowId: booking.workflowId, runId: booking.firstExecutionRunId }];
  },

  // The P1D reminder is sent, then the customer cancels: the PT2H one never is.
  'booking-reminded-canceled': async (r) => {
    const { booking } = await bookingWithReminders(r, ['P1D', 'PT2H'], 3 * DAY);
    await r.env.sleep(2 * DAY + HOUR);
    await booking.executeUpdate(cancelBookingUpdate);
    assert.equal((await booking.result()).status, 'canceled');
    return [{ file: 'booking-reminded-canceled', workflowId: booking.workflowId, runId: booking.firstExecutionRunId }];
  },

  // The P2D reminder is sent, then the booking moves to a later date of its series: the old date's
  // P1D reminder is not sent, the new date's are, and the booking ends a no-show with the new offering.
  'booking-reminded-moved': async (r) => {
    const { booking, offering: from } = await bookingWithReminders(r, ['P2D', 'P1D'], 4 * DAY);
    const to = await offeringWithReminders(r, ['P2D', 'P1D'], 6 * DAY);
    await r.db
      .update(offerings)
      .set({ seriesId: randomUUID() })
      .where(inArray(offerings.id, [from.id, to.id]));
    await r.env.sleep(2 * DAY + HOUR);
    const moved = await booking.executeUpdate(rescheduleBookingUpdate, { args: [{ offeringId: to.id, unitIds: [to.unitIds[0]] }] });
    assert.equal(moved.status, 'rescheduled');
    assert.equal((await booking.result()).status, 'no_show');
    return [{ file: 'booking-reminded-moved', workflowId: booking.workflowId, runId: booking.firstExecutionRunId }];
  },
};

/** An offering starting `startsInMs` from the server's clock that lists `reminders`. */
async function offeringWithReminders(r: Recorder, reminders: string[], startsInMs: number) {
  const offering = await insertTestOffering(r.db, { startsAt: new Date((await r.env.currentTimeMs()) + startsInMs) });
  await r.db.update(offerings).set({ reminders }).where(eq(offerings.id, offering.id));
  return offering;
}

/** A confirmed booking of one unit of such an offering. */
async function bookingWithReminders(r: Recorder, reminders: string[], startsInMs: number) {
  const user = await insertTestUser(r.db);
  const offering = await offeringWithReminders(r, reminders, startsInMs);
  const holdId = randomUUID();
  const hold = await r.env.client.workflow.start(holdWorkflow, {
    workflowId: holdWorkflowId(holdId),
    taskQueue: r.taskQueue,
    args: [{ holdId, userId: user.id, offeringId: offering.id, unitIds: offering.unitIds.slice(0, 1), ttlMs: HOUR }],
  });
  assert.equal((await hold.executeUpdate(claimHoldUpdate)).status, 'held');
  const bookingId = randomUUID();
  const booking = await r.env.client.workflow.start(bookingWorkflow, {
    workflowId: bookingWorkflowId(bookingId),
    taskQueue: r.taskQueue,
    args: [{ bookingId, holdId, userId: user.id, paymentMethod: 'pm_card_visa', pendingPaymentTimeout: 'PT1H', paymentsTaskQueue: r.taskQueue }],
  });
  assert.deepEqual(await booking.executeUpdate(bookingDecisionUpdate), { status: 'confirmed' });
  return { booking, offering };
}
