/**
 * The booking saga's branches with stubbed activities on a time-skipping server: which
 * compensations run, and in which order, when a payment is declined, times out or a step after
 * it fails; a pending charge settled by signal; a reschedule undone. Asserted through the
 * workflow's name, updates, signals, queries and result, plus the activity calls it makes.
 * workflows/booking.test.ts covers the same saga with the real activities.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { describe, test } from 'node:test';
import type { BookingTerms, ConfirmOutcome, SwapUnitsInput } from '../activities/booking';
import type { ClaimUnitsInput, ExtendHoldInput, ReleaseHoldInput } from '../activities/hold';
import { bookingWorkflowId, MAX_RESCHEDULES, type BookingFailureReason } from '../domain/booking';
import { holdWorkflowId } from '../domain/hold';
import type { ClaimOutcome } from '../domain/hold';
import type { NotificationInput } from '../domain/notification';
import {
  PAYMENT_TIMEOUT_FAILURE_CODE,
  type ChargeInput,
  type ChargeResult,
  type PaymentSettlement,
  type RefundInput,
  type RefundResult,
} from '../domain/payment';
import { ActivityCalls, gatewayTimeout, runStubbedWorker, stubActivities, stubChargeResult } from '../test/support/stubbed-activities';
import { uniqueTaskQueue } from '../test/support/temporal';
import {
  bookingDecisionUpdate,
  bookingStateQuery,
  bookingWorkflow,
  cancelBookingUpdate,
  checkInBookingUpdate,
  rescheduleBookingUpdate,
  type BookingWorkflowInput,
} from './booking';
import { claimHoldUpdate, holdStateQuery, holdWorkflow } from './hold';
import { paymentSettledSignal } from './payment';

const DAY = 24 * 60 * 60 * 1000;
const UNIT_PRICE = 2500;

/** How the stubbed world answers one booking. */
interface Script {
  charges?: (ChargeResult['status'] | 'timeout')[];
  cancel?: ChargeResult['status'];
  confirm?: ConfirmOutcome;
  subscribed?: boolean;
  requiresSubscription?: boolean;
  swap?: boolean;
}

const taskQueue = uniqueTaskQueue('booking-branches');
const calls = new ActivityCalls();
const scripts = new Map<string, Script>();

const scriptOf = (bookingId: string) => scripts.get(bookingId)!;

const chargeResult = stubChargeResult;

/** Pending charges by payment id, so a cancel at the timeout finds its booking's script. */
const bookingOfPayment = new Map<string, string>();

const activities = stubActivities(calls, {
  beginBooking: async ({ bookingId }: { bookingId: string }): Promise<BookingTerms> => {
    const startsAt = (await stubbed.env.currentTimeMs()) + 10 * DAY;
    return {
      offeringId: 'offering-1',
      offeringName: 'Test show',
      unitIds: ['u1', 'u2'],
      amount: 2 * UNIT_PRICE,
      currency: 'usd',
      requiresSubscription: scriptOf(bookingId).requiresSubscription ?? false,
      startsAt: new Date(startsAt).toISOString(),
      endsAt: new Date(startsAt + DAY / 12).toISOString(),
      policy: { freeUntil: 'P1D', lateRefundPercent: 50 },
      holdActive: true,
    };
  },
  hasActiveSubscription: (_: { userId: string }) => false,
  chargePayment: ({ bookingId, cycle }: ChargeInput): ChargeResult => {
    const answer = scriptOf(bookingId!).charges?.shift() ?? 'succeeded';
    if (answer === 'timeout') throw gatewayTimeout();
    const paymentId = `${bookingId}-${cycle}`;
    bookingOfPayment.set(paymentId, bookingId!);
    return chargeResult(paymentId, answer, 'card_declined');
  },
  settlePayment: (_: PaymentSettlement): void => undefined,
  cancelPendingPayment: ({ paymentId }: { paymentId: string }): ChargeResult =>
    chargeResult(paymentId, scriptOf(bookingOfPayment.get(paymentId)!).cancel ?? 'failed', PAYMENT_TIMEOUT_FAILURE_CODE),
  refundPayment: ({ paymentId }: RefundInput): RefundResult => ({ refundPaymentId: `re_${paymentId}`, status: 'succeeded' }),
  confirmBooking: ({ bookingId }: { bookingId: string; holdId: string }): ConfirmOutcome => scriptOf(bookingId).confirm ?? 'confirmed',
  failBooking: (_: { bookingId: string; reason: BookingFailureReason }): void => undefined,
  releaseHold: ({ reason }: ReleaseHoldInput) => reason,
  extendHold: (_: ExtendHoldInput): void => undefined,
  claimUnits: (input: ClaimUnitsInput): ClaimOutcome =>
    ({
      status: 'held',
      hold: {
        id: input.holdId,
        userId: input.userId,
        offeringId: input.offeringId,
        unitIds: input.unitIds,
        status: 'active',
        expiresAt: input.expiresAt,
      },
    }) as ClaimOutcome,
  priceUnits: ({ unitIds }: { offeringId: string; unitIds: string[] }) => ({ amount: unitIds.length * UNIT_PRICE, currency: 'usd' }),
  swapBookingUnits: ({ bookingId }: SwapUnitsInput): boolean => scriptOf(bookingId).swap ?? true,
  cancelBooking: (_: { bookingId: string; refundedAmount: number }): void => undefined,
  checkInBooking: (_: { bookingId: string; checkedInAt: string }): void => undefined,
  markNoShow: (_: { bookingId: string }): void => undefined,
  notify: (_: NotificationInput) => ({ notificationId: randomUUID(), sent: true }),
});

const stubbed = runStubbedWorker(taskQueue, activities);

async function startBooking(script: Script, holdId: string = randomUUID()) {
  const input: BookingWorkflowInput = {
    bookingId: randomUUID(),
    holdId,
    userId: 'user-1',
    paymentMethod: 'pm_test',
    pendingPaymentTimeout: 'PT1H',
    paymentsTaskQueue: taskQueue,
  };
  scripts.set(input.bookingId, script);
  const handle = await stubbed.env.client.workflow.start(bookingWorkflow, {
    taskQueue,
    workflowId: bookingWorkflowId(input.bookingId),
    args: [input],
  });
  const decision = await handle.executeUpdate(bookingDecisionUpdate);
  return { handle, input, decision };
}

/** The activity calls of a booking, each with what identifies it in the saga. */
function steps(workflowId: string): string[] {
  return calls.of(workflowId).map(({ name, input }) => {
    if (name === 'notify') return `notify:${(input as NotificationInput).kind}`;
    if (name === 'refundPayment') return `refundPayment:${(input as RefundInput).amount}`;
    if (name === 'releaseHold') return `releaseHold:${(input as ReleaseHoldInput).holdId}`;
    return name;
  });
}

/**
 * A reschedule's steps, from its claim on. The checkout's confirmation notice runs beside a
 * reschedule sent as soon as the booking is confirmed, so it is left out of the order asserted.
 */
function rescheduleSteps(workflowId: string): string[] {
  const all = steps(workflowId);
  return all.slice(all.indexOf('claimUnits')).filter((step) => step !== 'notify:booking_confirmed');
}

describe('bookingWorkflow branches (stubbed activities)', () => {
  test('a declined charge: the hold is released, the booking failed, the customer told, in that order', async () => {
    const { handle, input, decision } = await startBooking({ charges: ['failed'] });
    assert.deepEqual(decision, { status: 'failed', reason: 'payment_declined' });
    const state = await handle.result();
    assert.deepEqual([state.status, state.failureReason, state.charges], ['failed', 'payment_declined', []]);
    assert.deepEqual(steps(handle.workflowId), [
      'beginBooking',
      'chargePayment',
      `releaseHold:${input.holdId}`,
      'failBooking',
      'notify:booking_failed',
    ]);
  });

  test('a step failing after the payment: the charge is refunded first, then the hold, the booking, the notice', async () => {
    const { handle, input, decision } = await startBooking({ confirm: 'hold_unavailable' });
    assert.deepEqual(decision, { status: 'failed', reason: 'confirm_failed' });
    const state = await handle.result();
    assert.equal(state.charges[0].refunded, 2 * UNIT_PRICE);
    assert.deepEqual(steps(handle.workflowId), [
      'beginBooking',
      'chargePayment',
      'confirmBooking',
      `refundPayment:${2 * UNIT_PRICE}`,
      `releaseHold:${input.holdId}`,
      'failBooking',
      'notify:booking_failed',
    ]);
  });

  test('an offering for subscribers only and no subscription: compensated before any charge', async () => {
    const { handle, decision } = await startBooking({ requiresSubscription: true });
    assert.deepEqual(decision, { status: 'failed', reason: 'subscription_required' });
    await handle.result();
    assert.ok(!calls.names(handle.workflowId).includes('chargePayment'));
    assert.deepEqual(calls.names(handle.workflowId).slice(-3), ['releaseHold', 'failBooking', 'notify']);
  });

  test('a gateway timeout is retried with the same idempotency key and the booking confirms', async () => {
    const { handle, decision } = await startBooking({ charges: ['timeout', 'succeeded'] });
    assert.deepEqual(decision, { status: 'confirmed' });
    const keys = calls.inputs<ChargeInput>(handle.workflowId, 'chargePayment').map((c) => c.idempotencyKey);
    assert.equal(keys.length, 2);
    assert.equal(new Set(keys).size, 1);
    await handle.executeUpdate(cancelBookingUpdate);
    assert.equal((await handle.result()).status, 'canceled');
  });

  test('a pending charge: the decision is awaiting payment, the settlement signal confirms the booking', async () => {
    const { handle, decision } = await startBooking({ charges: ['pending'] });
    assert.deepEqual(decision, { status: 'awaiting_payment' });
    const [charge] = calls.inputs<ChargeInput>(handle.workflowId, 'chargePayment');
    const paymentId = `${charge.bookingId}-${charge.cycle}`;
    await handle.signal(paymentSettledSignal, { paymentId, gatewayPaymentId: `pi_${paymentId}`, status: 'succeeded', failureCode: null });
    const state = await handle.result(); // ends with its offering, on the skipped clock, nobody having checked in
    assert.deepEqual([state.status, state.charges.map((c) => c.paymentId)], ['no_show', [paymentId]]);
    assert.deepEqual(steps(handle.workflowId), [
      'beginBooking',
      'chargePayment',
      'settlePayment',
      'confirmBooking',
      'notify:booking_confirmed',
      'markNoShow',
    ]);
  });

  test('a pending charge past its timeout is canceled at the gateway and the saga compensates', async () => {
    const { handle, input, decision } = await startBooking({ charges: ['pending'], cancel: 'failed' });
    assert.deepEqual(decision, { status: 'awaiting_payment' });
    const state = await handle.result();
    assert.deepEqual([state.status, state.failureReason], ['failed', 'payment_timeout']);
    assert.deepEqual(steps(handle.workflowId), [
      'beginBooking',
      'chargePayment',
      'cancelPendingPayment',
      `releaseHold:${input.holdId}`,
      'failBooking',
      'notify:booking_failed',
    ]);
  });

  test('a reschedule whose swap loses a race undoes itself newest first: top-up refunded, then the new claim released', async () => {
    const { handle, decision, input } = await startBooking({ swap: false });
    assert.deepEqual(decision, { status: 'confirmed' });
    const result = await handle.executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: ['u1', 'u2', 'u3'] }] });
    assert.deepEqual(result, { status: 'conflict' });
    const [claim] = calls.inputs<ClaimUnitsInput>(handle.workflowId, 'claimUnits');
    assert.deepEqual(claim.unitIds, ['u3']);
    assert.deepEqual(rescheduleSteps(handle.workflowId), [
      'claimUnits',
      'priceUnits',
      'chargePayment',
      'swapBookingUnits',
      `refundPayment:${UNIT_PRICE}`,
      `releaseHold:${claim.holdId}`,
    ]);
    assert.notEqual(claim.holdId, input.holdId);
    assert.deepEqual((await handle.query(bookingStateQuery)).unitIds, ['u1', 'u2']);
    await handle.executeUpdate(cancelBookingUpdate);
    await handle.result();
  });

  test('a declined top-up of a reschedule gives the new claim back and keeps the booking as it was', async () => {
    const { handle } = await startBooking({ charges: ['succeeded', 'failed'] });
    const result = await handle.executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: ['u1', 'u2', 'u3'] }] });
    assert.deepEqual(result, { status: 'declined', failureCode: 'card_declined' });
    assert.deepEqual(rescheduleSteps(handle.workflowId), [
      'claimUnits',
      'priceUnits',
      'chargePayment',
      `releaseHold:${calls.inputs<ClaimUnitsInput>(handle.workflowId, 'claimUnits')[0].holdId}`,
    ]);
    const state = await handle.query(bookingStateQuery);
    assert.deepEqual([state.status, state.unitIds, state.amount], ['confirmed', ['u1', 'u2'], 2 * UNIT_PRICE]);
    await handle.executeUpdate(cancelBookingUpdate);
    await handle.result();
  });

  test('a check-in: checked_in at the workflow clock, projected once, and the booking ends checked in, not a no-show', async () => {
    const { handle, input } = await startBooking({});
    const { checkedInAt } = await handle.executeUpdate(checkInBookingUpdate);
    assert.deepEqual(calls.inputs(handle.workflowId, 'checkInBooking'), [{ bookingId: input.bookingId, checkedInAt }]);
    const state = await handle.result();
    assert.deepEqual([state.status, state.checkedInAt], ['checked_in', checkedInAt]);
    assert.ok(!calls.names(handle.workflowId).includes('markNoShow'));
  });

  test('check-in refusals say why: a second check-in is refused, and so are changes after a check-in', async () => {
    const { handle } = await startBooking({});
    const { checkedInAt } = await handle.executeUpdate(checkInBookingUpdate);
    await assert.rejects(
      handle.executeUpdate(checkInBookingUpdate),
      refusal('BookingCheckInRefused', `the booking was already checked in at ${checkedInAt}`),
    );
    await assert.rejects(handle.executeUpdate(cancelBookingUpdate), refusal('BookingNotConfirmed', 'the booking is checked_in'));
    assert.equal(calls.inputs(handle.workflowId, 'checkInBooking').length, 1);
    await handle.result();
  });

  test('a booking that never confirmed cannot be checked in', async () => {
    const { handle, decision } = await startBooking({ charges: ['pending'], cancel: 'failed' });
    assert.deepEqual(decision, { status: 'awaiting_payment' });
    await assert.rejects(handle.executeUpdate(checkInBookingUpdate), refusal('BookingCheckInRefused', 'the booking is not confirmed yet'));
    assert.equal((await handle.result()).status, 'failed');
  });

  test('past MAX_RESCHEDULES a reschedule is refused before acceptance, leaving no event, and a cancel still goes through', async () => {
    const { handle } = await startBooking({});
    for (let i = 0; i < MAX_RESCHEDULES; i++) {
      const result = await handle.executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: ['u1', 'u2'] }] });
      assert.equal(result.status, 'rescheduled');
    }
    const refused = await handle.executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: ['u1', 'u2'] }] }).then(
      () => assert.fail('the reschedule past the limit was accepted'),
      (err: unknown) => err,
    );
    assert.ok(refused instanceof WorkflowUpdateFailedError);
    assert.ok(refused.cause instanceof ApplicationFailure);
    assert.equal(refused.cause.type, 'RescheduleLimitReached');
    assert.match(refused.cause.message, new RegExp(`at most ${MAX_RESCHEDULES} times`));
    assert.equal(await acceptedUpdates(handle, 'rescheduleBooking'), MAX_RESCHEDULES);

    assert.equal((await handle.executeUpdate(cancelBookingUpdate)).tier, 'full');
    assert.equal((await handle.result()).status, 'canceled');
  });

  test('while the checkout charge awaits 3-D Secure the hold is kept past its TTL, and ends when the booking settles it', async () => {
    const hold = await startHold();
    const { handle, decision } = await startBooking({ charges: ['pending'] }, hold.holdId);
    assert.deepEqual(decision, { status: 'awaiting_payment' });
    await stubbed.env.sleep(HOLD_TTL_MS + HOLD_EXTENSION_MS / 2);
    const kept = await hold.handle.query(holdStateQuery);
    assert.deepEqual([kept.phase, kept.expiresAt], ['active', new Date(hold.expiresAt + HOLD_EXTENSION_MS).toISOString()]);
    assert.deepEqual(calls.inputs<ExtendHoldInput>(hold.handle.workflowId, 'extendHold'), [{ holdId: hold.holdId, expiresAt: kept.expiresAt }]);
    assert.deepEqual(calls.inputs(hold.handle.workflowId, 'releaseHold'), [], 'the units are still held');

    const [charge] = calls.inputs<ChargeInput>(handle.workflowId, 'chargePayment');
    const paymentId = `${charge.bookingId}-${charge.cycle}`;
    await handle.signal(paymentSettledSignal, { paymentId, gatewayPaymentId: `pi_${paymentId}`, status: 'succeeded', failureCode: null });
    assert.equal(await hold.handle.result(), 'released', 'settled by the booking, not expired');
    // Confirmed once the charge settled; nobody checks in, so at the event's end it is a no-show.
    assert.equal((await handle.result()).status, 'no_show');
    assert.ok(calls.names(handle.workflowId).includes('confirmBooking'), 'the booking was confirmed');
  });

  test('a hold kept for a charge that never settles is released at its TTL plus HOLD_MAX_EXTENSION', async () => {
    const hold = await startHold();
    const { handle } = await startBooking({ charges: ['pending'], cancel: 'failed' }, hold.holdId);
    await stubbed.env.sleep(HOLD_TTL_MS + HOLD_EXTENSION_MS - 60_000);
    assert.equal((await hold.handle.query(holdStateQuery)).phase, 'active');
    assert.deepEqual(calls.inputs(hold.handle.workflowId, 'releaseHold'), []);
    assert.equal(await hold.handle.result(), 'expired');
    assert.ok((await stubbed.env.currentTimeMs()) >= hold.expiresAt + HOLD_EXTENSION_MS);
    const state = await handle.result();
    assert.deepEqual([state.status, state.failureReason], ['failed', 'payment_timeout']);
  });
});

/** An update the workflow's validator refused with `type` and `message`. */
function refusal(type: string, message: string) {
  return (error: unknown) => {
    const cause = (error as { cause?: { type?: string; message?: string } }).cause;
    assert.deepEqual([cause?.type, cause?.message], [type, message]);
    return true;
  };
}

const HOLD_TTL_MS = 5 * 60 * 1000;
const HOLD_EXTENSION_MS = 15 * 60 * 1000;

/** A hold's own workflow, as the API starts it, for a booking to consume. */
async function startHold() {
  const holdId = randomUUID();
  const handle = await stubbed.env.client.workflow.start(holdWorkflow, {
    taskQueue,
    workflowId: holdWorkflowId(holdId),
    args: [{ holdId, userId: 'user-1', offeringId: 'offering-1', unitIds: ['u1', 'u2'], ttlMs: HOLD_TTL_MS, maxExtensionMs: HOLD_EXTENSION_MS }],
  });
  assert.equal((await handle.executeUpdate(claimHoldUpdate)).status, 'held');
  // Its TTL's end on the workflow's clock.
  const expiresAt = new Date((await handle.query(holdStateQuery)).expiresAt).getTime();
  return { holdId, handle, expiresAt };
}

/** The updates of `name` the workflow accepted: each one is an event in its history. */
async function acceptedUpdates(handle: WorkflowHandle, name: string): Promise<number> {
  const { events } = await handle.fetchHistory();
  return (events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name === name).length;
}
