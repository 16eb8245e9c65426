import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { eq, inArray } from 'drizzle-orm';
import { activitiesFromConfig } from '../activities';
import { createPaymentGateway } from '../activities/gateway';
import type { DatabaseHandle } from '../db/client';
import { bookings, offerings, payments } from '../db/schema';
import { holdWorkflowId } from '../domain/hold';
import { OfferingIdAttribute } from '../platform/search-attribute-keys';
import { insertTestOffering, liveClaims, type TestOffering } from '../test/support/booking-fixtures';
import { insertTestUser } from '../test/support/payment-fixtures';
import { uniqueTaskQueue } from '../test/support/temporal';
import { startConfirmedBooking, startTimeSkippingWorker, type TimeSkippingWorker } from '../test/support/time-skipping-worker';
import { bookingStateQuery, rescheduleBookingUpdate } from './booking';
import { claimHoldUpdate, holdWorkflow } from './hold';

const DAY = 24 * 60 * 60 * 1000;

describe('a booking moved to another offering of its series (time-skipping)', () => {
  let stack: TimeSkippingWorker;
  let env: TestWorkflowEnvironment;
  let database: DatabaseHandle;
  const taskQueue = uniqueTaskQueue('bookings');
  // Test-only fault, by booking id, around the real activity.
  const failMoveFor = new Set<string>();

  before(async () => {
    stack = await startTimeSkippingWorker({
      taskQueue,
      activities: ({ config, db, redis, logger }) => {
        const gateway = createPaymentGateway(config, { db, logger });
        const real = activitiesFromConfig(config, { db, redis, logger, gateway });
        return {
          ...real,
          moveBooking: async (input: Parameters<typeof real.moveBooking>[0]) => {
            if (failMoveFor.has(input.bookingId)) throw ApplicationFailure.nonRetryable('injected move failure', 'InjectedFault');
            return real.moveBooking(input);
          },
        };
      },
    });
    ({ env, database } = stack);
  });

  after(() => stack.close());

  /** A confirmed booking of two 2500 units of an offering in a series, and a dearer offering (4000 a unit) of the same series. */
  async function seriesSetup() {
    const seriesId = randomUUID();
    const user = await insertTestUser(database.db);
    const from = await insertTestOffering(database.db, { unitCount: 4 });
    const to = await insertTestOffering(database.db, { unitCount: 4, unitAmount: 4000, startsAt: new Date(Date.now() + 12 * DAY) });
    await database.db
      .update(offerings)
      .set({ seriesId })
      .where(inArray(offerings.id, [from.id, to.id]));
    const unitIds = from.unitIds.slice(0, 2);
    const holdId = await hold(user.id, from, unitIds);
    const { bookingId, handle } = await startConfirmedBooking(env, taskQueue, { holdId, userId: user.id });
    return { from, to, unitIds, bookingId, handle };
  }

  async function hold(userId: string, offering: TestOffering, unitIds: string[]) {
    const holdId = randomUUID();
    const handle = await env.client.workflow.start(holdWorkflow, {
      workflowId: holdWorkflowId(holdId),
      taskQueue,
      args: [{ holdId, userId, offeringId: offering.id, unitIds, ttlMs: 5 * 60 * 1000 }],
    });
    assert.equal((await handle.executeUpdate(claimHoldUpdate)).status, 'held');
    return holdId;
  }

  const bookingRow = async (id: string) => (await database.db.select().from(bookings).where(eq(bookings.id, id)))[0];
  const paymentsOf = (bookingId: string) => database.db.select().from(payments).where(eq(payments.bookingId, bookingId));

  test('a switch that fails gives the top-up back and frees the claimed units; the booking is as it was', async () => {
    const { to, unitIds, bookingId, handle } = await seriesSetup();
    const before = await bookingRow(bookingId);
    failMoveFor.add(bookingId);
    const newUnitIds = to.unitIds.slice(0, 2);
    await assert.rejects(handle.executeUpdate(rescheduleBookingUpdate, { args: [{ offeringId: to.id, unitIds: newUnitIds }] }));

    assert.deepEqual(await bookingRow(bookingId), before);
    assert.deepEqual(await liveClaims(database.db, newUnitIds), [], 'the claim in the target is released');
    assert.equal((await liveClaims(database.db, unitIds)).length, 2);
    const rows = await paymentsOf(bookingId);
    const topUp = rows.find((p) => p.kind === 'booking' && p.amount === 3000)!;
    assert.equal(topUp.status, 'refunded');
    assert.equal(rows.find((p) => p.kind === 'refund' && p.refundOf === topUp.id)!.amount, 3000);
    const state = await handle.query(bookingStateQuery);
    assert.deepEqual([state.status, state.operation, state.unitIds, state.amount], ['confirmed', null, unitIds, 5000]);
  });

  test('after a move the booking is the new offering’s: a reschedule without offeringId picks units of it', async () => {
    const { to, bookingId, handle } = await seriesSetup();
    const moved = await handle.executeUpdate(rescheduleBookingUpdate, { args: [{ offeringId: to.id, unitIds: [to.unitIds[0]] }] });
    assert.deepEqual(moved, { status: 'rescheduled', amount: 4000, difference: -1000 });
    const within = await handle.executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: [to.unitIds[1], to.unitIds[2]] }] });
    assert.deepEqual(within, { status: 'rescheduled', amount: 8000, difference: 4000 });
    const row = await bookingRow(bookingId);
    assert.deepEqual([row.offeringId, row.unitIds, row.amount], [to.id, [to.unitIds[1], to.unitIds[2]], 8000]);
    const { typedSearchAttributes } = await handle.describe();
    assert.equal(typedSearchAttributes.get(OfferingIdAttribute), to.id, 'found by its new offering');
    const refunds = (await paymentsOf(bookingId)).filter((p) => p.kind === 'refund');
    assert.deepEqual(
      refunds.map((p) => p.amount),
      [1000],
    );
  });
});
