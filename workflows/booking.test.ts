import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { and, eq } from 'drizzle-orm';
import type { DatabaseHandle } from '../db/client';
import { bookings, holds, notifications, payments } from '../db/schema';
import { bookingWorkflowId } from '../domain/booking';
import { holdWorkflowId } from '../domain/hold';
import { insertTestOffering, liveClaims, type TestOffering } from '../test/support/booking-fixtures';
import { activitiesFromConfig } from '../activities';
import { createPaymentGateway } from '../activities/gateway';
import { PAYMENT_TIMEOUT_FAILURE_CODE } from '../domain/payment';
import { countingGateway, insertTestUser } from '../test/support/payment-fixtures';
import { eventually } from '../test/support/subscription-fixtures';
import { uniqueTaskQueue, waitUntilClosed } from '../test/support/temporal';
import { startTimeSkippingWorker, type TimeSkippingWorker } from '../test/support/time-skipping-worker';
import { bookingDecisionUpdate, bookingStateQuery, bookingWorkflow, cancelBookingUpdate, rescheduleBookingUpdate } from './booking';
import { claimHoldUpdate, holdStateQuery, holdWorkflow } from './hold';
import { paymentSettledSignal } from './payment';

const HOLD_TTL_MS = 5 * 60 * 1000;
const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

describe('booking saga (time-skipping)', () => {
  let stack: TimeSkippingWorker;
  let env: TestWorkflowEnvironment;
  let database: DatabaseHandle;
  const taskQueue = uniqueTaskQueue('bookings');
  // Test-only faults, by booking id, around the real activities.
  const failConfirmFor = new Set<string>();
  const failSwapFor = new Set<string>();
  // Gateway payment ids whose customer authenticates just before the timeout's cancel reaches the gateway.
  const authenticatedLate = new Set<string>();
  let gatewayCalls: { cancel: number };

  before(async () => {
    stack = await startTimeSkippingWorker({
      taskQueue,
      activities: ({ config, db, redis, logger }) => {
        const scripted = countingGateway(createPaymentGateway(config, { db, logger }), {
          cancelAnswer: ({ gatewayPaymentId }) => (authenticatedLate.has(gatewayPaymentId) ? { status: 'succeeded' } : undefined),
        });
        gatewayCalls = scripted.calls;
        const real = activitiesFromConfig(config, { db, redis, logger, gateway: scripted.gateway });
        return {
          ...real,
          confirmBooking: async (input: Parameters<typeof real.confirmBooking>[0]) => {
            if (failConfirmFor.has(input.bookingId)) throw ApplicationFailure.nonRetryable('injected confirm failure', 'InjectedFault');
            return real.confirmBooking(input);
          },
          swapBookingUnits: async (input: Parameters<typeof real.swapBookingUnits>[0]) => {
            if (failSwapFor.has(input.bookingId)) throw ApplicationFailure.nonRetryable('injected swap failure', 'InjectedFault');
            return real.swapBookingUnits(input);
          },
        };
      },
    });
    ({ env, database } = stack);
  });

  after(() => stack.close());

  async function hold(userId: string, offering: TestOffering, unitIds: string[]) {
    const holdId = randomUUID();
    const handle = await env.client.workflow.start(holdWorkflow, {
      workflowId: holdWorkflowId(holdId),
      taskQueue,
      args: [{ holdId, userId, offeringId: offering.id, unitIds, ttlMs: HOLD_TTL_MS }],
    });
    const outcome = await handle.executeUpdate(claimHoldUpdate);
    assert.equal(outcome.status, 'held');
    return { holdId, handle };
  }

  async function book(userId: string, holdId: string, paymentMethod = 'pm_card_visa', bookingId = randomUUID(), pendingPaymentTimeout = 'P1D') {
    const handle = await env.client.workflow.start(bookingWorkflow, {
      workflowId: bookingWorkflowId(bookingId),
      taskQueue,
      args: [{ bookingId, holdId, userId, paymentMethod, pendingPaymentTimeout, paymentsTaskQueue: taskQueue }],
    });
    const decision = await handle.executeUpdate(bookingDecisionUpdate);
    return { bookingId, handle, decision };
  }

  async function bookedSetup(options: Parameters<typeof insertTestOffering>[1] = {}, unitCount = 2) {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db, { unitCount: 6, ...options });
    const unitIds = offering.unitIds.slice(0, unitCount);
    const { holdId, handle: holdHandle } = await hold(user.id, offering, unitIds);
    const booked = await book(user.id, holdId);
    assert.deepEqual(booked.decision, { status: 'confirmed' });
    return { user, offering, unitIds, holdId, holdHandle, ...booked };
  }

  const bookingRow = async (id: string) => (await database.db.select().from(bookings).where(eq(bookings.id, id)))[0];
  const paymentsOf = (bookingId: string) => database.db.select().from(payments).where(eq(payments.bookingId, bookingId));
  const holdRow = async (id: string) => (await database.db.select().from(holds).where(eq(holds.id, id)))[0];
  const notificationKinds = async (bookingId: string) =>
    (await database.db.select().from(notifications).where(eq(notifications.bookingId, bookingId))).map((n) => n.kind).sort();
  const claimOwners = async (unitIds: string[]) =>
    Object.fromEntries((await liveClaims(database.db, unitIds)).map((c) => [c.unitId, c.bookingId ?? `hold:${c.holdId}`]));

  async function finalHoldPhase(handle: WorkflowHandle) {
    await waitUntilClosed(handle);
    return (await handle.query(holdStateQuery)).phase;
  }

  async function finalBookingState(handle: WorkflowHandle) {
    await waitUntilClosed(handle);
    return handle.query(bookingStateQuery);
  }

  async function offsetFromNow(ms: number): Promise<Date> {
    return new Date((await env.currentTimeMs()) + ms);
  }

  test('charges, confirms in one step and ends the hold as consumed', async () => {
    const { bookingId, unitIds, holdId, holdHandle, handle } = await bookedSetup();

    const row = await bookingRow(bookingId);
    assert.equal(row.status, 'confirmed');
    assert.equal(row.amount, 5000);
    assert.deepEqual(await claimOwners(unitIds), { [unitIds[0]]: bookingId, [unitIds[1]]: bookingId });
    assert.equal((await holdRow(holdId)).status, 'consumed');
    assert.equal(await finalHoldPhase(holdHandle), 'consumed');
    const [charge] = await paymentsOf(bookingId);
    assert.deepEqual([charge.kind, charge.status, charge.amount], ['booking', 'succeeded', 5000]);
    assert.equal((await handle.query(bookingStateQuery)).status, 'confirmed');
    assert.deepEqual(await notificationKinds(bookingId), ['booking_confirmed']);
  });

  test('a decline fails the booking and releases the hold', async () => {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db);
    const unitIds = offering.unitIds.slice(0, 2);
    const { holdId, handle: holdHandle } = await hold(user.id, offering, unitIds);
    const { bookingId, decision, handle } = await book(user.id, holdId, 'pm_card_chargeDeclined');

    assert.deepEqual(decision, { status: 'failed', reason: 'payment_declined' });
    assert.deepEqual(await claimOwners(unitIds), {}, 'the units are free as soon as the answer is given');
    assert.equal((await bookingRow(bookingId)).status, 'failed');
    assert.equal((await bookingRow(bookingId)).failureReason, 'payment_declined');
    assert.equal((await holdRow(holdId)).status, 'released');
    assert.equal(await finalHoldPhase(holdHandle), 'released');
    assert.equal((await finalBookingState(handle)).status, 'failed');
    assert.deepEqual(
      (await paymentsOf(bookingId)).map((p) => p.status),
      ['failed'],
    );
    assert.deepEqual(await notificationKinds(bookingId), ['booking_failed']);
  });

  test('a confirm failing after the charge refunds the money and frees the units', async () => {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db);
    const unitIds = offering.unitIds.slice(0, 2);
    const { holdId } = await hold(user.id, offering, unitIds);
    const bookingId = randomUUID();
    failConfirmFor.add(bookingId);
    const { decision } = await book(user.id, holdId, 'pm_card_visa', bookingId);

    assert.deepEqual(decision, { status: 'failed', reason: 'confirm_failed' });
    assert.deepEqual(await claimOwners(unitIds), {});
    const rows = await paymentsOf(bookingId);
    const charge = rows.find((p) => p.kind === 'booking')!;
    const refund = rows.find((p) => p.kind === 'refund')!;
    assert.equal(charge.status, 'refunded');
    assert.deepEqual([refund.amount, refund.status, refund.refundOf], [5000, 'succeeded', charge.id]);
    assert.equal((await bookingRow(bookingId)).status, 'failed');
  });

  test('an offering that requires a subscription refuses a customer without one, charging nothing', async () => {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db, { requiresSubscription: true });
    const { holdId } = await hold(user.id, offering, offering.unitIds.slice(0, 1));
    const { bookingId, decision } = await book(user.id, holdId);

    assert.deepEqual(decision, { status: 'failed', reason: 'subscription_required' });
    assert.deepEqual(await paymentsOf(bookingId), []);
    assert.deepEqual(await claimOwners(offering.unitIds.slice(0, 1)), {});
  });

  test('a payment settled after the hold expired is refunded and the units stay free', async () => {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db);
    const unitIds = offering.unitIds.slice(0, 2);
    const { holdId, handle: holdHandle } = await hold(user.id, offering, unitIds);
    const { bookingId, decision, handle } = await book(user.id, holdId, 'pm_card_authenticationRequired');
    assert.deepEqual(decision, { status: 'awaiting_payment' });

    await env.sleep(HOLD_TTL_MS + 1000);
    assert.equal(await finalHoldPhase(holdHandle), 'expired');
    assert.deepEqual(await claimOwners(unitIds), {});

    const [pending] = await paymentsOf(bookingId);
    await handle.signal(paymentSettledSignal, {
      paymentId: pending.id,
      gatewayPaymentId: pending.gatewayPaymentId!,
      status: 'succeeded',
      failureCode: null,
    });
    const final = await finalBookingState(handle);
    assert.deepEqual([final.status, final.failureReason], ['failed', 'confirm_failed']);
    const rows = await paymentsOf(bookingId);
    assert.equal(rows.find((p) => p.kind === 'booking')!.status, 'refunded', 'the money went back');
    assert.equal(rows.find((p) => p.kind === 'refund')!.amount, 5000);
    assert.deepEqual(await claimOwners(unitIds), {}, 'and no unit is booked');
  });

  test('a payment settled before the hold expires confirms the booking with its units', async () => {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db);
    const unitIds = offering.unitIds.slice(0, 2);
    const { holdId, handle: holdHandle } = await hold(user.id, offering, unitIds);
    const { bookingId, handle } = await book(user.id, holdId, 'pm_card_authenticationRequired');
    const [pending] = await paymentsOf(bookingId);
    await handle.signal(paymentSettledSignal, {
      paymentId: pending.id,
      gatewayPaymentId: pending.gatewayPaymentId!,
      status: 'succeeded',
      failureCode: null,
    });

    assert.equal(await finalHoldPhase(holdHandle), 'consumed');
    assert.deepEqual(await handle.executeUpdate(bookingDecisionUpdate), { status: 'confirmed' });
    assert.deepEqual(await claimOwners(unitIds), { [unitIds[0]]: bookingId, [unitIds[1]]: bookingId });
    assert.equal((await paymentsOf(bookingId))[0].status, 'succeeded');
  });

  describe('cancel', () => {
    test('before the free window ends: everything back', async () => {
      const { bookingId, unitIds, handle } = await bookedSetup({ startsAt: await offsetFromNow(10 * DAY) });
      assert.deepEqual(await handle.executeUpdate(cancelBookingUpdate), { tier: 'full', refundedAmount: 5000 });

      const row = await bookingRow(bookingId);
      assert.deepEqual([row.status, row.refundedAmount], ['canceled', 5000]);
      const refund = (await paymentsOf(bookingId)).find((p) => p.kind === 'refund')!;
      assert.deepEqual([refund.amount, refund.status], [5000, 'succeeded']);
      assert.deepEqual(await claimOwners(unitIds), {});
      assert.equal((await finalBookingState(handle)).status, 'canceled');
      assert.deepEqual(await notificationKinds(bookingId), ['booking_canceled', 'booking_confirmed']);
    });

    test('inside the free window: the late percentage, rounded down', async () => {
      const { bookingId, handle } = await bookedSetup(
        {
          startsAt: await offsetFromNow(12 * HOUR),
          unitAmount: 999,
          lateRefundPercent: 50,
        },
        1,
      );
      assert.deepEqual(await handle.executeUpdate(cancelBookingUpdate), { tier: 'late', refundedAmount: 499 });
      const row = await bookingRow(bookingId);
      assert.deepEqual([row.status, row.amount, row.refundedAmount], ['canceled', 999, 499]);
      assert.equal((await paymentsOf(bookingId)).find((p) => p.kind === 'refund')!.amount, 499);
    });

    test('after the start: nothing back, units still released', async () => {
      const { bookingId, unitIds, handle } = await bookedSetup({
        startsAt: await offsetFromNow(HOUR),
        endsAt: await offsetFromNow(5 * HOUR),
      });
      await env.sleep(2 * HOUR);
      assert.deepEqual(await handle.executeUpdate(cancelBookingUpdate), { tier: 'none', refundedAmount: 0 });
      const row = await bookingRow(bookingId);
      assert.deepEqual([row.status, row.refundedAmount], ['canceled', 0]);
      assert.equal((await paymentsOf(bookingId)).filter((p) => p.kind === 'refund').length, 0);
      assert.deepEqual(await claimOwners(unitIds), {});
    });

    test('a second cancel is refused', async () => {
      const { handle } = await bookedSetup();
      await handle.executeUpdate(cancelBookingUpdate);
      await assert.rejects(handle.executeUpdate(cancelBookingUpdate));
    });
  });

  describe('reschedule', () => {
    test('to more units: charges the difference, swaps, releases the old unit', async () => {
      const { bookingId, offering, handle } = await bookedSetup();
      const [u0, u1, u2, u3] = offering.unitIds;
      const result = await handle.executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: [u1, u2, u3] }] });

      assert.deepEqual(result, { status: 'rescheduled', amount: 7500, difference: 2500 });
      const row = await bookingRow(bookingId);
      assert.deepEqual([row.unitIds, row.amount, row.status], [[u1, u2, u3], 7500, 'confirmed']);
      assert.deepEqual(await claimOwners([u0, u1, u2, u3]), { [u1]: bookingId, [u2]: bookingId, [u3]: bookingId });
      assert.deepEqual((await paymentsOf(bookingId)).map((p) => [p.kind, p.amount, p.status]).sort(), [
        ['booking', 2500, 'succeeded'],
        ['booking', 5000, 'succeeded'],
      ]);

      // A later full cancel refunds both charges.
      assert.deepEqual(await handle.executeUpdate(cancelBookingUpdate), { tier: 'full', refundedAmount: 7500 });
      assert.deepEqual(
        (await paymentsOf(bookingId))
          .filter((p) => p.kind === 'refund')
          .map((p) => p.amount)
          .sort(),
        [2500, 5000],
      );
    });

    test('to fewer units: refunds the difference', async () => {
      const { bookingId, offering, handle } = await bookedSetup({}, 3);
      const [u0, u1, u2] = offering.unitIds;
      assert.deepEqual(await handle.executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: [u0] }] }), {
        status: 'rescheduled',
        amount: 2500,
        difference: -5000,
      });
      assert.deepEqual(await claimOwners([u0, u1, u2]), { [u0]: bookingId });
      const refund = (await paymentsOf(bookingId)).find((p) => p.kind === 'refund')!;
      assert.equal(refund.amount, 5000);
      const row = await bookingRow(bookingId);
      assert.deepEqual([row.amount, row.refundedAmount], [2500, 0]);
    });

    test('a failing swap leaves the original booking exactly as it was and refunds the top-up', async () => {
      const { bookingId, offering, unitIds, handle } = await bookedSetup();
      const before = await bookingRow(bookingId);
      failSwapFor.add(bookingId);
      const [, , u2, u3] = offering.unitIds;
      await assert.rejects(handle.executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: [u2, u3, unitIds[0]] }] }));

      assert.deepEqual(await bookingRow(bookingId), before);
      assert.deepEqual(await claimOwners([...unitIds, u2, u3]), { [unitIds[0]]: bookingId, [unitIds[1]]: bookingId });
      const rows = await paymentsOf(bookingId);
      const topUp = rows.find((p) => p.kind === 'booking' && p.amount === 2500)!;
      assert.equal(topUp.status, 'refunded');
      assert.equal(rows.find((p) => p.kind === 'refund' && p.refundOf === topUp.id)!.amount, 2500);
      assert.equal((await handle.query(bookingStateQuery)).status, 'confirmed');
    });

    test('a declined top-up leaves the original and frees the new units', async () => {
      const { bookingId, offering, unitIds, handle } = await bookedSetup();
      const before = await bookingRow(bookingId);
      const newUnit = offering.unitIds[4];
      const result = await handle.executeUpdate(rescheduleBookingUpdate, {
        args: [{ unitIds: [...unitIds, newUnit], paymentMethod: 'pm_card_chargeDeclined' }],
      });
      assert.deepEqual(result, { status: 'declined', failureCode: 'generic_decline' });
      assert.deepEqual(await bookingRow(bookingId), before);
      assert.deepEqual(await claimOwners([newUnit]), {});
    });

    test('a unit someone else holds is named and nothing changes', async () => {
      const { bookingId, offering, unitIds, handle, user } = await bookedSetup();
      const taken = offering.unitIds[5];
      const other = await hold(user.id, offering, [taken]);
      const before = await bookingRow(bookingId);
      const result = await handle.executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: [unitIds[0], taken] }] });
      assert.deepEqual(result, { status: 'unavailable', unavailableUnitIds: [taken] });
      assert.deepEqual(await bookingRow(bookingId), before);
      assert.deepEqual(await claimOwners([taken]), { [taken]: `hold:${other.holdId}` });
      assert.equal(
        (
          await database.db
            .select()
            .from(payments)
            .where(and(eq(payments.bookingId, bookingId), eq(payments.kind, 'booking')))
        ).length,
        1,
      );
    });
  });

  describe('a charge still pending at its timeout', () => {
    const NEEDS_AUTHENTICATION = 'pm_card_authenticationRequired';
    // Shorter than the hold's TTL: the units are still held when the timeout passes.
    const WITHIN_HOLD = 'PT1M';
    const MINUTE = 60 * 1000;

    async function pendingBooking(pendingPaymentTimeout: string) {
      const user = await insertTestUser(database.db);
      const offering = await insertTestOffering(database.db);
      const unitIds = offering.unitIds.slice(0, 2);
      const { holdId, handle: holdHandle } = await hold(user.id, offering, unitIds);
      const booked = await book(user.id, holdId, NEEDS_AUTHENTICATION, randomUUID(), pendingPaymentTimeout);
      assert.deepEqual(booked.decision, { status: 'awaiting_payment' });
      const [charge] = await paymentsOf(booked.bookingId);
      return { user, offering, unitIds, holdId, holdHandle, charge, ...booked };
    }

    /** A confirmed booking whose reschedule charges a top-up the sandbox leaves pending. */
    async function pendingTopUp() {
      const user = await insertTestUser(database.db);
      const offering = await insertTestOffering(database.db, { unitCount: 4 });
      const unitIds = offering.unitIds.slice(0, 2);
      const { holdId } = await hold(user.id, offering, unitIds);
      const { bookingId, handle, decision } = await book(user.id, holdId, 'pm_card_visa', randomUUID(), WITHIN_HOLD);
      assert.deepEqual(decision, { status: 'confirmed' });
      const before = await bookingRow(bookingId);
      const newUnit = offering.unitIds[2];
      const update = await handle.startUpdate(rescheduleBookingUpdate, {
        args: [{ unitIds: [...unitIds, newUnit], paymentMethod: NEEDS_AUTHENTICATION }],
        waitForStage: 'ACCEPTED',
      });
      const topUp = await eventually(async () => {
        // Recorded before the gateway is asked; pending with an id once the gateway has answered.
        const pending = (await paymentsOf(bookingId)).find((p) => p.amount === 2500 && p.status === 'pending' && p.gatewayPaymentId);
        assert.ok(pending, 'the gateway has not answered the top-up yet');
        return pending;
      });
      return { bookingId, handle, before, unitIds, newUnit, update, topUp };
    }

    test('is canceled at the gateway: the booking fails and its units are freed', async () => {
      const { bookingId, unitIds, holdHandle, handle, charge } = await pendingBooking(WITHIN_HOLD);
      const cancelsBefore = gatewayCalls.cancel;

      await env.sleep(2 * MINUTE);
      const final = await finalBookingState(handle);
      assert.deepEqual([final.status, final.failureReason], ['failed', 'payment_timeout']);
      assert.equal(gatewayCalls.cancel - cancelsBefore, 1);
      const row = (await paymentsOf(bookingId)).find((p) => p.id === charge.id)!;
      assert.deepEqual([row.status, row.failureCode], ['failed', PAYMENT_TIMEOUT_FAILURE_CODE]);
      assert.equal(await finalHoldPhase(holdHandle), 'released');
      assert.deepEqual(await claimOwners(unitIds), {});
      assert.deepEqual(await notificationKinds(bookingId), ['booking_failed']);
    });

    test('that succeeded before the cancel reached the gateway confirms the booking', async () => {
      const { bookingId, unitIds, holdHandle, handle, charge } = await pendingBooking(WITHIN_HOLD);
      authenticatedLate.add(charge.gatewayPaymentId!);

      await env.sleep(2 * MINUTE);
      assert.equal(await finalHoldPhase(holdHandle), 'consumed');
      assert.deepEqual(await handle.executeUpdate(bookingDecisionUpdate), { status: 'confirmed' });
      assert.deepEqual(await claimOwners(unitIds), { [unitIds[0]]: bookingId, [unitIds[1]]: bookingId });
      assert.deepEqual(
        (await paymentsOf(bookingId)).map((p) => [p.kind, p.status]),
        [['booking', 'succeeded']],
      );
    });

    test('that succeeded after the hold expired is refunded by the compensation and the units stay free', async () => {
      const { bookingId, unitIds, holdHandle, handle, charge } = await pendingBooking('PT10M');
      authenticatedLate.add(charge.gatewayPaymentId!);

      await env.sleep(11 * MINUTE);
      assert.equal(await finalHoldPhase(holdHandle), 'expired');
      const final = await finalBookingState(handle);
      assert.deepEqual([final.status, final.failureReason], ['failed', 'confirm_failed']);
      const rows = await paymentsOf(bookingId);
      assert.equal(rows.find((p) => p.id === charge.id)!.status, 'refunded');
      assert.deepEqual(
        rows.filter((p) => p.kind === 'refund').map((p) => [p.amount, p.status]),
        [[5000, 'succeeded']],
      );
      assert.deepEqual(await claimOwners(unitIds), {});
    });

    test('a reschedule top-up is canceled: the original booking stays as it was and the new unit is freed', async () => {
      const { bookingId, before, newUnit, update, topUp } = await pendingTopUp();

      await env.sleep(2 * MINUTE);
      assert.deepEqual(await update.result(), { status: 'declined', failureCode: PAYMENT_TIMEOUT_FAILURE_CODE });
      assert.deepEqual(await bookingRow(bookingId), before);
      assert.deepEqual(await claimOwners([newUnit]), {});
      assert.equal((await paymentsOf(bookingId)).find((p) => p.id === topUp.id)!.status, 'failed');
    });

    test('a reschedule top-up that succeeded before the cancel reached the gateway reschedules', async () => {
      const { bookingId, unitIds, newUnit, update, topUp } = await pendingTopUp();
      authenticatedLate.add(topUp.gatewayPaymentId!);

      await env.sleep(2 * MINUTE);
      assert.deepEqual(await update.result(), { status: 'rescheduled', amount: 7500, difference: 2500 });
      const row = await bookingRow(bookingId);
      assert.deepEqual([row.unitIds, row.amount], [[...unitIds, newUnit], 7500]);
      assert.equal((await paymentsOf(bookingId)).find((p) => p.id === topUp.id)!.status, 'succeeded');
    });
  });
});
