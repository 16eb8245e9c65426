/**
 * The payment branches of the subscription workflow with stubbed activities on a time-skipping
 * server: a declined first charge, a gateway timeout, a charge awaiting authentication settled by
 * the webhook's signal or canceled at the gateway at its timeout, a declined renewal, a cancel
 * while a charge is pending. Asserted through the workflow's client calls (start, updates,
 * signals, the state query, the result) and the payment activities it calls; the slower
 * workflows/subscription.test.ts and subscription-pending.test.ts cover the same workflow with
 * the real activities.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import type { LatePaymentSuccess } from '../activities/payment';
import { testPlanTerms } from '../test/support/plan-terms';
import type { NotificationInput } from '../domain/notification';
import {
  PAYMENT_TIMEOUT_FAILURE_CODE,
  type ChargeInput,
  type ChargeResult,
  type OrphanedPayment,
  type PaymentSettlement,
  type RefundInput,
  type RefundResult,
} from '../domain/payment';
import { subscriptionWorkflowId } from '../domain/subscription';
import { ActivityCalls, gatewayTimeout, runStubbedWorker, stubActivities, stubChargeResult } from '../test/support/stubbed-activities';
import { advanceTo, waitForState } from '../test/support/subscription-fixtures';
import { uniqueTaskQueue } from '../test/support/temporal';
import { paymentSettledSignal } from './payment';
import { cancelSubscription, startSubscription, subscriptionHandle } from '../api/subscription-client';

/** How the stubbed gateway answers one subscription's charges (in order) and the cancel of a pending one. */
interface Script {
  charges: (ChargeResult['status'] | 'timeout')[];
  cancel?: ChargeResult['status'];
}

const PAYMENT_ACTIVITIES = new Set(['chargePayment', 'settlePayment', 'cancelPendingPayment', 'recordLatePaymentSuccess', 'refundPayment']);
const taskQueue = uniqueTaskQueue('subscription-branches');
const calls = new ActivityCalls();
const scripts = new Map<string, Script>();

const subscriptionOfPayment = (paymentId: string) => paymentId.split('/')[0];

const chargeResult = stubChargeResult;

const activities = stubActivities(calls, {
  recordSubscription: (_: unknown): void => undefined,
  chargePayment: ({ subscriptionId, cycle, attempt }: ChargeInput): ChargeResult => {
    const answer = scripts.get(subscriptionId!)!.charges.shift() ?? 'succeeded';
    if (answer === 'timeout') throw gatewayTimeout();
    return chargeResult(`${subscriptionId}/${cycle}/${attempt}`, answer, 'card_declined');
  },
  settlePayment: (_: PaymentSettlement): void => undefined,
  cancelPendingPayment: ({ paymentId }: { paymentId: string }): ChargeResult =>
    chargeResult(paymentId, scripts.get(subscriptionOfPayment(paymentId))!.cancel ?? 'failed', PAYMENT_TIMEOUT_FAILURE_CODE),
  recordLatePaymentSuccess: ({ paymentId }: OrphanedPayment): LatePaymentSuccess => ({
    userId: 'user-1',
    amount: 1999,
    currency: 'usd',
    refundable: 1999,
    description: 'Pro, period 1',
    subscriptionId: subscriptionOfPayment(paymentId),
    bookingId: null,
  }),
  refundPayment: ({ paymentId }: RefundInput): RefundResult => ({ refundPaymentId: `re_${paymentId}`, status: 'succeeded' }),
  notify: (_: NotificationInput) => ({ notificationId: randomUUID(), sent: true }),
  recordChargeInvoice: ({ status }: { paymentId: string; status: string }) => ({ invoiceId: randomUUID(), number: 'INV-2026-000001', status }),
});

const stubbed = runStubbedWorker(taskQueue, activities);

async function subscribe(script: Script) {
  const subscriptionId = randomUUID();
  scripts.set(subscriptionId, script);
  const activation = await startSubscription(stubbed.env.client, taskQueue, {
    subscriptionId,
    userId: 'user-1',
    plan: testPlanTerms(),
    paymentMethod: 'pm_test',
    pendingPaymentTimeout: 'PT1H',
    paymentsTaskQueue: taskQueue,
  });
  return { subscriptionId, activation, handle: subscriptionHandle(stubbed.env.client, subscriptionId) };
}

/** The payment activities a subscription called, in order (projections and notices left out). */
function payments(subscriptionId: string): string[] {
  return calls.names(subscriptionWorkflowId(subscriptionId)).filter((name) => PAYMENT_ACTIVITIES.has(name));
}

describe('subscriptionWorkflow payment branches (stubbed activities)', () => {
  test('a declined first charge: activation answers declined and the workflow ends incomplete', async () => {
    const { subscriptionId, activation, handle } = await subscribe({ charges: ['failed'] });
    assert.equal(activation.outcome, 'declined');
    assert.deepEqual([activation.payment?.status, activation.payment?.failureCode], ['failed', 'card_declined']);
    assert.equal((await handle.result()).status, 'incomplete');
    assert.deepEqual(payments(subscriptionId), ['chargePayment']);
  });

  test('a gateway timeout on the first charge is retried with the same key and the subscription activates', async () => {
    const { subscriptionId, activation } = await subscribe({ charges: ['timeout', 'succeeded'] });
    assert.deepEqual([activation.outcome, activation.subscription.status, activation.subscription.cycle], ['active', 'active', 1]);
    const keys = calls.inputs<ChargeInput>(subscriptionWorkflowId(subscriptionId), 'chargePayment').map((c) => c.idempotencyKey);
    assert.equal(keys.length, 2);
    assert.equal(new Set(keys).size, 1);
    assert.equal((await cancelSubscription(stubbed.env.client, subscriptionId, false)).status, 'canceled');
  });

  test('a first charge awaiting authentication activates when the webhook signals it succeeded', async () => {
    const { subscriptionId, activation, handle } = await subscribe({ charges: ['pending'] });
    assert.equal(activation.outcome, 'pending');
    const { paymentId } = activation.payment!;
    await handle.signal(paymentSettledSignal, { paymentId, gatewayPaymentId: `pi_${paymentId}`, status: 'succeeded', failureCode: null });
    const active = await waitForState(stubbed.env.client, subscriptionId, (s) => s.status === 'active');
    assert.deepEqual([active.cycle, active.pendingPayment], [1, null]);
    assert.deepEqual(payments(subscriptionId), ['chargePayment', 'settlePayment']);
    await cancelSubscription(stubbed.env.client, subscriptionId, false);
  });

  test('a first charge nobody authenticates is canceled at the gateway at its timeout; the workflow ends incomplete', async () => {
    const { subscriptionId, activation, handle } = await subscribe({ charges: ['pending'], cancel: 'failed' });
    assert.equal(activation.outcome, 'pending');
    const ended = await handle.result();
    assert.deepEqual([ended.status, ended.lastPayment?.status], ['incomplete', 'failed']);
    assert.deepEqual(payments(subscriptionId), ['chargePayment', 'cancelPendingPayment']);
  });

  test('a pending first charge the customer completed just before the cancel activates the subscription', async () => {
    const { subscriptionId } = await subscribe({ charges: ['pending'], cancel: 'succeeded' });
    const pending = await waitForState(stubbed.env.client, subscriptionId, (s) => s.pendingPayment !== null);
    await advanceTo(stubbed.env, pending.pendingPayment!.expiresAt);
    const active = await waitForState(stubbed.env.client, subscriptionId, (s) => s.status === 'active');
    assert.equal(active.cycle, 1);
    assert.deepEqual(payments(subscriptionId), ['chargePayment', 'cancelPendingPayment']);
    await cancelSubscription(stubbed.env.client, subscriptionId, false);
  });

  test('a declined renewal puts the subscription past due with a retry scheduled', async () => {
    const { subscriptionId, activation } = await subscribe({ charges: ['succeeded', 'failed'] });
    await advanceTo(stubbed.env, activation.subscription.nextBillingDate!);
    const pastDue = await waitForState(stubbed.env.client, subscriptionId, (s) => s.status === 'past_due');
    assert.equal(pastDue.dunning?.cycle, 2);
    assert.deepEqual(
      calls.inputs<ChargeInput>(subscriptionWorkflowId(subscriptionId), 'chargePayment').map((c) => [c.cycle, c.attempt]),
      [
        [1, 1],
        [2, 1],
      ],
    );
    await cancelSubscription(stubbed.env.client, subscriptionId, false);
  });

  test('a cancel while the first charge awaits authentication withdraws it; one that went through first is refunded', async () => {
    const { subscriptionId, activation, handle } = await subscribe({ charges: ['pending'], cancel: 'succeeded' });
    assert.equal(activation.outcome, 'pending');
    await cancelSubscription(stubbed.env.client, subscriptionId, false);
    assert.equal((await handle.result()).status, 'canceled');
    assert.deepEqual(payments(subscriptionId), ['chargePayment', 'cancelPendingPayment', 'recordLatePaymentSuccess', 'refundPayment']);
  });
});
