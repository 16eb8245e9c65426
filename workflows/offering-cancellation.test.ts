/**
 * The offering's cancellation workflow with stubbed activities on a time-skipping server: the
 * offering marked once (a repeated start attaches to the same run), holds and waitlist first,
 * then every booking sent its update exactly once across pages and a continue-as-new, and the
 * counts (canceled, skipped, failed, refunded) carried over into the next run.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WithStartWorkflowOperation } from '@temporalio/client';
import type { BookingToCancel } from '../activities/offering';
import { ActivityCalls, runStubbedWorker, stubActivities } from '../test/support/stubbed-activities';
import { uniqueTaskQueue } from '../test/support/temporal';
import {
  offeringCanceledUpdate,
  offeringCancellationProgressQuery,
  offeringCancellationWorkflow,
  offeringCancellationWorkflowId,
  type BookingCancelOutcome,
  type CanceledOffering,
} from './offering';
import { BOOKINGS_PER_PAGE, PAGES_PER_RUN } from './offering/workflow';

const taskQueue = uniqueTaskQueue('offering-cancel');
const calls = new ActivityCalls();
// More than one run's worth of pages, so the workflow continues as new once.
const BOOKINGS = BOOKINGS_PER_PAGE * PAGES_PER_RUN + 10;
const bookingIds = Array.from({ length: BOOKINGS }, (_, i) => `b${String(i).padStart(4, '0')}`);
const FAILING = 'b0007';
const ALREADY_CANCELED = 'b0008';
const PRICE = 2500;

const activities = stubActivities(calls, {
  markOfferingCanceled: ({ offeringId, reason }: { offeringId: string; reason: string }): CanceledOffering => ({
    offeringId,
    canceledAt: '2030-01-01T00:00:00.000Z',
    cancelReason: reason,
  }),
  releaseOfferingHolds: (_: { offeringId: string }): string[] => ['hold-of-nobody'],
  closeOfferingWaitlist: (_: { offeringId: string }): number => 2,
  countBookingsToCancel: (_: { offeringId: string }): number => BOOKINGS,
  bookingsToCancel: ({ afterBookingId, limit }: { offeringId: string; afterBookingId: string | null; limit: number }): BookingToCancel[] =>
    bookingIds
      .filter((id) => afterBookingId === null || id > afterBookingId)
      .slice(0, limit)
      .map((bookingId) => ({ bookingId, workflowId: `booking-${bookingId}` })),
  cancelBookingOfOffering: ({ bookingId }: BookingToCancel & { reason: string }): BookingCancelOutcome => {
    if (bookingId === FAILING) return { status: 'failed', error: 'the refund of payment p failed' };
    if (bookingId === ALREADY_CANCELED) return { status: 'skipped' };
    return { status: 'canceled', refundedAmount: PRICE };
  },
});

const stubbed = runStubbedWorker(taskQueue, activities);

describe('offeringCancellationWorkflow (stubbed activities)', () => {
  test('every booking once across a continue-as-new; counts carried over; a repeated start attaches', async () => {
    const workflowId = offeringCancellationWorkflowId('offering-1');
    const startOperation = () =>
      new WithStartWorkflowOperation(offeringCancellationWorkflow, {
        workflowId,
        taskQueue,
        args: [{ offeringId: 'offering-1', reason: 'Storm' }],
        workflowIdConflictPolicy: 'USE_EXISTING',
      });
    const first = startOperation();
    const canceled = await stubbed.env.client.workflow.executeUpdateWithStart(offeringCanceledUpdate, { startWorkflowOperation: first });
    assert.deepEqual(canceled, { offeringId: 'offering-1', canceledAt: '2030-01-01T00:00:00.000Z', cancelReason: 'Storm' });
    const again = await stubbed.env.client.workflow.executeUpdateWithStart(offeringCanceledUpdate, { startWorkflowOperation: startOperation() });
    assert.deepEqual(again, canceled);

    const handle = await first.workflowHandle();
    const progress = await handle.result();
    assert.deepEqual(progress, {
      phase: 'done',
      total: BOOKINGS,
      canceled: BOOKINGS - 2,
      skipped: 1,
      failed: 1,
      refundedAmount: (BOOKINGS - 2) * PRICE,
      holdsReleased: 1,
      waitlistEntriesClosed: 2,
    });
    assert.deepEqual(await stubbed.env.client.workflow.getHandle(workflowId).query(offeringCancellationProgressQuery), progress);

    const names = calls.names(workflowId);
    assert.deepEqual(names.slice(0, 4), ['markOfferingCanceled', 'releaseOfferingHolds', 'closeOfferingWaitlist', 'countBookingsToCancel']);
    assert.equal(names.filter((n) => n === 'markOfferingCanceled').length, 1, 'the offering is marked once');
    const sent = calls.inputs<BookingToCancel & { reason: string }>(workflowId, 'cancelBookingOfOffering').map((i) => i.bookingId);
    assert.deepEqual([...sent].sort(), bookingIds, 'each booking once');
    const latest = await stubbed.env.client.workflow.getHandle(workflowId).fetchHistory();
    assert.ok(latest.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId, 'the workflow continued as new');
  });
});
