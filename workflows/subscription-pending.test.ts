/**
 * The subscription workflow on the time-skipping server with the real activities, continued:
 * charges awaiting the customer's authentication (first charges and renewals settled by the
 * webhook, timed out, or completed just before their cancel) and a signal and an update that
 * arrive as a run continues as new. The harness is test/support/subscription-harness.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { WorkflowUpdateHandle } from '@temporalio/client';
import { addPeriods } from '../domain/period';
import type { SubscriptionSnapshot } from '../domain/subscription';
import { eventually } from '../test/support/subscription-fixtures';
import { days, NEEDS_AUTHENTICATION, useSubscriptionHarness, VISA } from '../test/support/subscription-harness';
import { cancelSubscription, changePaymentMethod } from '../api/subscription-client';
import { paymentSettledSignal } from './payment';
import { cancelSubscriptionUpdate, paymentMethodUpdatedSignal } from './subscription';

const harness = useSubscriptionHarness();
const { subscribe, waitForState, advanceTo, closed, paymentsOf, notificationsOf, rowOf, gatewayCalls, authenticatedLate, onNotified } = harness;

describe('pending payments', () => {
  test('a first charge awaiting authentication activates when the webhook signals success', async () => {
    const { subscriptionId, activation, handle } = await subscribe(NEEDS_AUTHENTICATION);
    assert.equal(activation.outcome, 'pending');
    assert.equal(activation.subscription.status, 'incomplete');
    const paymentId = activation.payment!.paymentId;
    const pending = await waitForState(subscriptionId, (s) => s.pendingPayment !== null);
    assert.equal(days(pending.pendingPayment!.since, pending.pendingPayment!.expiresAt), 1);

    const [row] = await paymentsOf(subscriptionId);
    await handle.signal(paymentSettledSignal, { paymentId, gatewayPaymentId: row.gatewayPaymentId!, status: 'succeeded', failureCode: null });

    const active = await waitForState(subscriptionId, (s) => s.status === 'active');
    assert.equal(active.cycle, 1);
    assert.equal(active.pendingPayment, null);
    assert.equal((await paymentsOf(subscriptionId))[0].status, 'succeeded');
    await eventually(async () => {
      assert.deepEqual((await notificationsOf(subscriptionId)).map((n) => n.kind).sort(), ['payment_action_required', 'payment_succeeded']);
    });
  });

  test('a renewal still pending after the timeout is canceled at the gateway and counts as a failed attempt; dunning goes on', async () => {
    const { subscriptionId, activation } = await subscribe(VISA);
    await changePaymentMethod(harness.env.client, subscriptionId, NEEDS_AUTHENTICATION);
    await advanceTo(activation.subscription.nextBillingDate!);
    const pending = await waitForState(subscriptionId, (s) => s.pendingPayment !== null);
    assert.equal(pending.status, 'active');

    const cancelsBefore = gatewayCalls.cancel;
    await advanceTo(pending.pendingPayment!.expiresAt);
    const pastDue = await waitForState(subscriptionId, (s) => s.status === 'past_due');
    assert.equal(gatewayCalls.cancel - cancelsBefore, 1);
    assert.equal(pastDue.dunning?.lastFailureCode, 'payment_pending_timeout');
    assert.equal(pastDue.dunning?.lastDecline, 'soft');
    const renewalPayment = (await paymentsOf(subscriptionId)).find((p) => p.cycle === 2)!;
    assert.deepEqual([renewalPayment.status, renewalPayment.failureCode], ['failed', 'payment_pending_timeout']);

    // The first retry charges again, on the day the timeline says.
    await advanceTo(pastDue.dunning.nextRetryAt!);
    const retried = await waitForState(subscriptionId, (s) => s.pendingPayment?.attempt === 2);
    assert.equal(days(pastDue.dunning.failedAt, retried.pendingPayment!.since), 1);
  });

  test('a renewal that succeeded before its timeout could cancel it renews the subscription', async () => {
    const { subscriptionId, activation } = await subscribe(VISA);
    await changePaymentMethod(harness.env.client, subscriptionId, NEEDS_AUTHENTICATION);
    await advanceTo(activation.subscription.nextBillingDate!);
    const pending = await waitForState(subscriptionId, (s) => s.pendingPayment !== null);
    const [, renewal] = await paymentsOf(subscriptionId);
    authenticatedLate.add(renewal.gatewayPaymentId!);

    await advanceTo(pending.pendingPayment!.expiresAt);
    const renewed = await waitForState(subscriptionId, (s) => s.cycle === 2);
    assert.deepEqual([renewed.status, renewed.dunning, renewed.pendingPayment], ['active', null, null]);
    assert.equal(renewed.nextBillingDate, addPeriods(new Date(activation.subscription.anchorDate), 'P1M', 2).toISOString());
    assert.deepEqual([(await paymentsOf(subscriptionId))[1].status, (await paymentsOf(subscriptionId)).length], ['succeeded', 2]);
  });

  test('a first charge still pending after the timeout is canceled and the subscription never starts', async () => {
    const { subscriptionId, activation, handle } = await subscribe(NEEDS_AUTHENTICATION);
    assert.equal(activation.outcome, 'pending');
    const pending = await waitForState(subscriptionId, (s) => s.pendingPayment !== null);

    await advanceTo(pending.pendingPayment!.expiresAt);
    await closed(subscriptionId);
    const final = await handle.result();
    assert.deepEqual([final.status, final.cycle, final.lastPayment?.status], ['incomplete', 0, 'failed']);
    const [payment] = await paymentsOf(subscriptionId);
    assert.deepEqual([payment.status, payment.failureCode], ['failed', 'payment_pending_timeout']);
  });

  test('a first charge that succeeded before its timeout could cancel it activates the subscription', async () => {
    const { subscriptionId, activation } = await subscribe(NEEDS_AUTHENTICATION);
    const pending = await waitForState(subscriptionId, (s) => s.pendingPayment !== null);
    authenticatedLate.add((await paymentsOf(subscriptionId))[0].gatewayPaymentId!);

    await advanceTo(pending.pendingPayment!.expiresAt);
    const active = await waitForState(subscriptionId, (s) => s.status === 'active');
    assert.equal(active.cycle, 1);
    assert.equal(active.currentPeriodStart, activation.subscription.anchorDate);
    assert.equal((await paymentsOf(subscriptionId))[0].status, 'succeeded');
  });

  test('a cancel while the first charge awaits authentication cancels that charge at the gateway', async () => {
    const { subscriptionId, activation } = await subscribe(NEEDS_AUTHENTICATION);
    assert.equal(activation.outcome, 'pending');
    await waitForState(subscriptionId, (s) => s.pendingPayment !== null);

    const cancelsBefore = gatewayCalls.cancel;
    const answer = await cancelSubscription(harness.env.client, subscriptionId, false);
    assert.equal(answer.status, 'canceled');
    assert.equal(gatewayCalls.cancel - cancelsBefore, 1);
    const charges = await paymentsOf(subscriptionId);
    assert.deepEqual(
      charges.map((p) => [p.kind, p.status]),
      [['subscription', 'failed']],
      'nothing left pending, nothing refunded',
    );
  });

  test('a charge that went through as the customer canceled is refunded once, with a notice', async () => {
    const { subscriptionId } = await subscribe(NEEDS_AUTHENTICATION);
    await waitForState(subscriptionId, (s) => s.pendingPayment !== null);
    const [charge] = await paymentsOf(subscriptionId);
    authenticatedLate.add(charge.gatewayPaymentId!);

    const refundsBefore = gatewayCalls.refund;
    assert.equal((await cancelSubscription(harness.env.client, subscriptionId, false)).status, 'canceled');
    await closed(subscriptionId);
    const rows = await paymentsOf(subscriptionId);
    assert.deepEqual(
      rows.map((p) => [p.kind, p.status, p.amount, p.refundOf]),
      [
        ['subscription', 'refunded', charge.amount, null],
        ['refund', 'succeeded', charge.amount, charge.id],
      ],
    );
    assert.equal(gatewayCalls.refund - refundsBefore, 1);
    assert.ok((await notificationsOf(subscriptionId)).some((n) => n.kind === 'payment_refunded'));
  });

  test('a renewal the webhook reports as failed starts dunning with its decline code', async () => {
    const { subscriptionId, activation, handle } = await subscribe(VISA);
    await changePaymentMethod(harness.env.client, subscriptionId, NEEDS_AUTHENTICATION);
    await advanceTo(activation.subscription.nextBillingDate!);
    const pending = await waitForState(subscriptionId, (s) => s.pendingPayment !== null);

    const { paymentId } = pending.pendingPayment!;
    await handle.signal(paymentSettledSignal, { paymentId, gatewayPaymentId: 'pi_sandbox_x', status: 'failed', failureCode: 'fraudulent' });

    const pastDue = await waitForState(subscriptionId, (s) => s.status === 'past_due');
    assert.deepEqual(
      [pastDue.dunning?.lastFailureCode, pastDue.dunning?.lastDecline, pastDue.dunning?.automaticRetriesStopped],
      ['fraudulent', 'hard', true],
    );
  });
});

describe('continue-as-new', () => {
  test('a signal and an update arriving as the workflow continues as new are not lost', async () => {
    const { subscriptionId, activation, handle } = await subscribe(VISA);
    const firstRunId = (await handle.describe()).runId;
    let cancel: Promise<WorkflowUpdateHandle<SubscriptionSnapshot>> | undefined;
    // The renewal receipt is the last activity before the hop: the signal is in the history and
    // the update's handler is running by the time the workflow sees the receipt delivered.
    onNotified(async (input) => {
      if (input.kind !== 'payment_succeeded' || !input.dedupeKey.endsWith('/notify/2:paid')) return;
      await handle.signal(paymentMethodUpdatedSignal, { paymentMethod: 'pm_card_mastercard' });
      cancel = handle.startUpdate(cancelSubscriptionUpdate, { args: [{ atPeriodEnd: true }], waitForStage: 'ACCEPTED' });
      await cancel;
    });

    await advanceTo(activation.subscription.nextBillingDate!);
    const renewed = await waitForState(subscriptionId, (s) => s.cycle === 2 && s.cancelAtPeriodEnd);
    const answer = await (await cancel!).result();

    assert.equal(answer.cancelAtPeriodEnd, true);
    assert.equal(renewed.paymentMethod, 'pm_card_mastercard');
    assert.notEqual((await handle.describe()).runId, firstRunId, 'continued as new');
    const row = await rowOf(subscriptionId);
    assert.deepEqual([row.paymentMethod, row.cancelAtPeriodEnd, row.cycle], ['pm_card_mastercard', true, 2]);

    // To the period end on the clock, then waited for in real time (see `closed`): `result()` on
    // the running workflow would let the test server skip time as it cancels, which can wedge it.
    await advanceTo(renewed.currentPeriodEnd!);
    await closed(subscriptionId);
    const final = await handle.result();
    assert.equal(final.status, 'canceled');
    assert.equal(final.endedAt, renewed.currentPeriodEnd);
    assert.equal((await paymentsOf(subscriptionId)).length, 2, 'no charge after the cancel');
  });
});
