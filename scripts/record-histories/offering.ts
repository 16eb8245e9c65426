/** Offering cancellation histories: the business cancels an offering with bookings and a hold, and one with nothing booked. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation } from '@temporalio/client';
import { bookingWorkflowId } from '../../domain/booking';
import { insertTestOffering, type TestOffering } from '../../test/support/booking-fixtures';
import { insertTestUser } from '../../test/support/payment-fixtures';
import { waitUntilClosed } from '../../test/support/temporal';
import { bookingDecisionUpdate, bookingWorkflow, checkInBookingUpdate } from '../../workflows/booking';
import { offeringCanceledUpdate, offeringCancellationWorkflow, offeringCancellationWorkflowId } from '../../workflows/offering';
import { run, startHold } from './booking';
import type { Recorder, Scenario } from './recorder';

const HOLD_TTL_MS = 2 * 60 * 60 * 1000;
const DAY = 24 * 60 * 60 * 1000;

export const OFFERING_SCENARIOS: Record<string, Scenario> = {
  // Two bookings (one checked in) refunded in full and canceled, a hold released.
  'offering-cancel-bookings-refunded': async (r) => {
    const offering = await offeringOnServerClock(r);
    const [a, b, c, d] = offering.unitIds;
    const first = await book(r, offering, [a, b]);
    const second = await book(r, offering, [c]);
    await second.executeUpdate(checkInBookingUpdate);
    await startHold(r, (await insertTestUser(r.db)).id, offering, [d], HOLD_TTL_MS);
    const cancellation = await cancel(r, offering);
    const progress = await cancellation.result();
    assert.deepEqual([progress.canceled, progress.skipped, progress.holdsReleased], [2, 0, 1]);
    await Promise.all([waitUntilClosed(first), waitUntilClosed(second)]);
    return [
      { file: 'offering-cancel-bookings-refunded', workflowId: cancellation.workflowId },
      run('booking-canceled-by-business', first),
      run('booking-checked-in-canceled-by-business', second),
    ];
  },

  // Nothing booked or held: the offering is canceled and the run ends.
  'offering-cancel-nothing-booked': async (r) => {
    const offering = await offeringOnServerClock(r);
    const cancellation = await cancel(r, offering);
    assert.equal((await cancellation.result()).total, 0);
    return [{ file: 'offering-cancel-nothing-booked', workflowId: cancellation.workflowId }];
  },
};

async function offeringOnServerClock(r: Recorder): Promise<TestOffering> {
  return insertTestOffering(r.db, { unitCount: 4, startsAt: new Date((await r.env.currentTimeMs()) + 10 * DAY) });
}

async function book(r: Recorder, offering: TestOffering, unitIds: string[]) {
  const userId = (await insertTestUser(r.db)).id;
  const { holdId } = await startHold(r, userId, offering, unitIds, HOLD_TTL_MS);
  const bookingId = randomUUID();
  const booking = await r.env.client.workflow.start(bookingWorkflow, {
    workflowId: bookingWorkflowId(bookingId),
    taskQueue: r.taskQueue,
    args: [{ bookingId, holdId, userId, paymentMethod: 'pm_card_visa', pendingPaymentTimeout: 'PT1H', paymentsTaskQueue: r.taskQueue }],
  });
  assert.deepEqual(await booking.executeUpdate(bookingDecisionUpdate), { status: 'confirmed' });
  return booking;
}

async function cancel(r: Recorder, offering: TestOffering) {
  const start = new WithStartWorkflowOperation(offeringCancellationWorkflow, {
    workflowId: offeringCancellationWorkflowId(offering.id),
    taskQueue: r.taskQueue,
    args: [{ offeringId: offering.id, reason: 'Venue flooded' }],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  const canceled = await r.env.client.workflow.executeUpdateWithStart(offeringCanceledUpdate, { startWorkflowOperation: start });
  assert.equal(canceled.offeringId, offering.id);
  return start.workflowHandle();
}
