/**
 * Subscriptions end to end over HTTP in real time: the API, a worker with the real activities on
 * the shared dev server, PostgreSQL, Redis and the sandbox gateway. The plan renews every 4 s;
 * a failed renewal is retried at +2 s and +4 s, reminded at +1 s and +3 s, and expires at +6 s.
 * Card changes at chosen moments make each path deterministic: the sandbox answers by card.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { addPeriods } from '../domain/period';
import { createTestUser, requestJson, type TestUser } from './support/api';
import {
  createPlan,
  deliverWebhook,
  getSubscription,
  requestCancel,
  requestPaymentMethodChange,
  startSubscriptionStack,
  stripeEvent,
  subscribe,
  waitFor,
  type SubscriptionStack,
} from './support/subscription-stack';

const INTERVAL = 'PT4S';
const VISA = 'pm_card_visa';
const DECLINED = 'pm_card_chargeDeclined';
const NEEDS_AUTHENTICATION = 'pm_card_authenticationRequired';

let stack: SubscriptionStack;
let planId: string;

before(async () => {
  stack = await startSubscriptionStack();
  planId = await createPlan(stack, { interval: INTERVAL });
});

after(() => stack?.close());

interface Detail {
  subscription: Record<string, any>;
  payments: Record<string, any>[];
  notifications: { kind: string; sentAt: string | null }[];
}

async function detail(user: TestUser, id: string): Promise<Detail> {
  const res = await getSubscription(stack, user, id);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

function waitForDetail(user: TestUser, id: string, ready: (d: Detail) => boolean, what: string, timeoutMs?: number) {
  return waitFor(() => detail(user, id), ready, { what, timeoutMs });
}

function kinds(d: Detail): string[] {
  return d.notifications.map((n) => n.kind);
}

/** The billing date `n` intervals after the anchor, as the API writes it. */
function anchored(anchor: string, n: number): string {
  return addPeriods(new Date(anchor), INTERVAL, n).toISOString();
}

/** A new customer's subscription paid with a good card; answers it with its anchor. */
async function activeSubscription() {
  const user = await createTestUser(stack.deps);
  const res = await subscribe(stack, user, { planId, paymentMethod: VISA });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  const { subscription } = res.body;
  assert.equal(subscription.status, 'active');
  return { user, id: subscription.id as string, anchor: subscription.currentPeriodStart as string, subscription };
}

async function cancelNow(user: TestUser, id: string) {
  const res = await requestCancel(stack, user, { subscriptionId: id, atPeriodEnd: false });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.subscription.status, 'canceled');
}

describe('subscriptions end to end', () => {
  test('subscribe: active at once; renews when the period ends, the next date counted from the anchor', async () => {
    const { user, id, anchor, subscription } = await activeSubscription();
    assert.equal(subscription.nextBillingDate, anchored(anchor, 1));
    const listed = await requestJson(`${stack.url}/api/v1/subscriptions/status`, { headers: user.headers });
    assert.deepEqual(listed.body.subscriptions, [subscription]);

    const renewed = await waitForDetail(
      user,
      id,
      (d) => d.subscription.nextBillingDate === anchored(anchor, 2) && kinds(d).length === 2,
      'the renewal and its receipt',
    );
    assert.equal(renewed.subscription.status, 'active');
    assert.equal(renewed.subscription.currentPeriodStart, anchored(anchor, 1));
    assert.deepEqual(
      renewed.payments.map((p) => [p.status, p.attempt, p.amount]),
      [
        ['succeeded', 1, 500],
        ['succeeded', 1, 500],
      ],
    );
    assert.deepEqual(kinds(renewed), ['payment_succeeded', 'payment_succeeded']);
    await cancelNow(user, id);
  });

  test('a declined renewal: past due with reminders; a new card is charged at once and keeps the anchor', async () => {
    const { user, id, anchor } = await activeSubscription();
    const switched = await requestPaymentMethodChange(stack, user, id, DECLINED);
    assert.equal(switched.status, 200);
    assert.equal(switched.body.subscription.status, 'active');

    const reminded = await waitForDetail(user, id, (d) => kinds(d).includes('grace_reminder'), 'a grace reminder');
    assert.equal(reminded.subscription.status, 'past_due');
    assert.equal(reminded.subscription.currentPeriodStart, anchored(anchor, 1));
    assert.equal(reminded.subscription.nextBillingDate, null);
    assert.ok(reminded.subscription.graceEndsAt > anchored(anchor, 1));
    assert.ok(reminded.subscription.attemptCount >= 1);
    assert.deepEqual(kinds(reminded).slice(0, 3), ['payment_succeeded', 'payment_failed', 'grace_reminder']);
    assert.equal(reminded.payments[1].status, 'failed');
    assert.equal(reminded.payments[1].failureCode, 'generic_decline');

    const recovered = await requestPaymentMethodChange(stack, user, id, VISA);
    assert.equal(recovered.status, 200);
    const { subscription } = recovered.body;
    assert.equal(subscription.status, 'active');
    assert.equal(subscription.currentPeriodStart, anchored(anchor, 1));
    assert.equal(subscription.nextBillingDate, anchored(anchor, 2));
    assert.equal(subscription.graceEndsAt, null);

    const paid = await detail(user, id);
    assert.ok(paid.payments.some((p) => p.status === 'succeeded' && p.attempt > 1));
    assert.ok(kinds(paid).lastIndexOf('payment_succeeded') > kinds(paid).indexOf('payment_failed'));
    await cancelNow(user, id);
  });

  test('declines until the grace period ends: expired, a final notice, the workflow over', async () => {
    const { user, id } = await activeSubscription();
    assert.equal((await requestPaymentMethodChange(stack, user, id, DECLINED)).status, 200);

    // The row says expired a moment before the final notice is written and sent.
    const expired = await waitForDetail(
      user,
      id,
      (d) => d.notifications.some((n) => n.kind === 'subscription_expired' && n.sentAt !== null),
      'the final notice',
      25_000,
    );
    assert.equal(expired.subscription.status, 'expired');
    assert.deepEqual(
      expired.payments.map((p) => [p.status, p.attempt]),
      [
        ['succeeded', 1],
        ['failed', 1],
        ['failed', 2],
        ['failed', 3],
      ],
    );
    assert.deepEqual(kinds(expired), ['payment_succeeded', 'payment_failed', 'grace_reminder', 'grace_reminder', 'subscription_expired']);
    assert.ok(expired.notifications.every((n) => n.sentAt !== null));
    assert.equal(expired.subscription.nextBillingDate, null);

    const workflow = stack.deps.temporal.workflow.getHandle(expired.subscription.workflowId);
    assert.equal((await workflow.result()).status, 'expired');
    assert.equal((await requestPaymentMethodChange(stack, user, id, VISA)).status, 409);
  });

  test('a charge needing authentication waits for the webhook: bad signature changes nothing, a duplicate is a no-op', async () => {
    const user = await createTestUser(stack.deps);
    const res = await subscribe(stack, user, { planId, paymentMethod: NEEDS_AUTHENTICATION });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const { subscription, payment } = res.body;
    assert.equal(subscription.status, 'incomplete');
    assert.equal(payment.status, 'pending');
    const pending = await waitForDetail(
      user,
      subscription.id,
      (d) => d.notifications.some((n) => n.kind === 'payment_action_required' && n.sentAt !== null),
      'the action notice',
    );

    const event = stripeEvent('payment_intent.succeeded', {
      id: payment.gatewayPaymentId,
      object: 'payment_intent',
      amount: payment.amount,
      currency: payment.currency,
      metadata: {},
      last_payment_error: null,
    });
    const forged = await deliverWebhook(stack, event, 'whsec_not_the_real_secret');
    assert.equal(forged.status, 400);
    assert.deepEqual(await detail(user, subscription.id), pending);

    // Stripe may deliver an event twice, even at once: exactly one delivery acts on it.
    const deliveries = await Promise.all([deliverWebhook(stack, event), deliverWebhook(stack, event)]);
    assert.deepEqual(
      deliveries.map((d) => d.status),
      [200, 200],
    );
    assert.deepEqual(deliveries.map((d) => d.body.duplicate).sort(), [false, true]);

    const active = await waitForDetail(user, subscription.id, (d) => d.subscription.status === 'active', 'activation by the webhook');
    // No renewal may add a payment while the checks below run.
    assert.equal((await requestCancel(stack, user, { subscriptionId: subscription.id })).status, 200);
    assert.deepEqual(
      active.payments.map((p) => [p.id, p.status]),
      [[payment.id, 'succeeded']],
    );
    await waitForDetail(user, subscription.id, (d) => kinds(d).includes('payment_succeeded'), 'the receipt');

    const again = await deliverWebhook(stack, event);
    assert.deepEqual([again.status, again.body.duplicate], [200, true]);
    const settled = await detail(user, subscription.id);
    assert.equal(settled.payments.length, 1);
    assert.equal(kinds(settled).filter((k) => k === 'payment_succeeded').length, 1);
  });

  test('the same Idempotency-Key twice: one subscription, one payment, the first answer replayed', async () => {
    const user = await createTestUser(stack.deps);
    const headers = { 'idempotency-key': randomUUID() };
    const first = await subscribe(stack, user, { planId, paymentMethod: VISA }, headers);
    const again = await subscribe(stack, user, { planId, paymentMethod: VISA }, headers);
    assert.equal(first.status, 201);
    assert.equal(again.status, 201);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(again.body, first.body);

    const listed = await requestJson(`${stack.url}/api/v1/subscriptions/status`, { headers: user.headers });
    assert.deepEqual(
      listed.body.subscriptions.map((s: { id: string }) => s.id),
      [first.body.subscription.id],
    );
    assert.equal((await detail(user, first.body.subscription.id)).payments.length, 1);
    await cancelNow(user, first.body.subscription.id);
  });
});
