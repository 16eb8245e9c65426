/**
 * The 3-D Secure walk over HTTP against the sandbox gateway: a charge that needs the customer
 * answers 202 with `nextAction.clientSecret`, the sandbox's authenticate route plays the customer,
 * and the event it makes reaches the owning workflow through the webhook's own handling.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { and, eq } from 'drizzle-orm';
import { notifications } from '../db/schema';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { createPlan, getSubscription, startSubscriptionStack, subscribe, waitFor, type SubscriptionStack } from './support/subscription-stack';

let stack: SubscriptionStack;

before(async () => {
  stack = await startSubscriptionStack();
});

after(() => stack?.close());

function authenticate(user: TestUser, paymentId: string, outcome: 'succeeded' | 'failed') {
  return requestJson(`${stack.url}/api/v1/sandbox/payments/${paymentId}/authenticate`, { body: { outcome }, headers: user.headers });
}

function readPayment(user: TestUser, paymentId: string) {
  return requestJson(`${stack.url}/api/v1/payments/${paymentId}`, { headers: user.headers });
}

async function subscriptionStatus(user: TestUser, id: string): Promise<string> {
  return (await getSubscription(stack, user, id)).body.subscription.status;
}

describe('3-D Secure on subscribe', () => {
  test('202 with the client secret; the customer authenticates; the subscription is active', async () => {
    const planId = await createPlan(stack, { interval: 'P1M' });
    const user = await createTestUser(stack.deps);
    const res = await subscribe(stack, user, { planId, paymentMethod: 'pm_card_authenticationRequired' });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const { payment, subscription } = res.body;
    assert.equal(subscription.status, 'incomplete');
    assert.equal(payment.status, 'pending');
    assert.equal(payment.nextAction.type, 'use_stripe_sdk');
    assert.match(payment.nextAction.clientSecret, /_secret_/);

    const read = await readPayment(user, payment.id);
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.payment.nextAction, payment.nextAction);
    const stranger = await createTestUser(stack.deps);
    assert.equal((await readPayment(stranger, payment.id)).status, 404);
    assert.equal((await authenticate(stranger, payment.id, 'succeeded')).status, 404);

    const done = await authenticate(user, payment.id, 'succeeded');
    assert.equal(done.status, 200, JSON.stringify(done.body));
    await waitFor(
      () => subscriptionStatus(user, subscription.id),
      (status) => status === 'active',
      { what: 'the subscription to activate' },
    );
    const settled = (await readPayment(user, payment.id)).body.payment;
    assert.equal(settled.status, 'succeeded');
    assert.equal(settled.nextAction, null);
    // Nothing awaits the customer any more.
    assert.equal((await authenticate(user, payment.id, 'succeeded')).status, 409);
  });

  test('a failed challenge declines the first payment: the subscription does not start', async () => {
    const planId = await createPlan(stack, { interval: 'P1M' });
    const user = await createTestUser(stack.deps);
    const res = await subscribe(stack, user, { planId, paymentMethod: 'pm_card_threeDSecure2Required' });
    assert.equal(res.status, 202);
    assert.equal((await authenticate(user, res.body.payment.id, 'failed')).status, 200);
    await waitFor(
      async () => (await readPayment(user, res.body.payment.id)).body.payment.status,
      (status) => status === 'failed',
      { what: 'the payment to fail' },
    );
    assert.equal(await subscriptionStatus(user, res.body.subscription.id), 'incomplete');
  });
});

describe('3-D Secure on a renewal', () => {
  test('the renewal waits for the customer, who is sent a link; authenticating pays the period', async () => {
    const planId = await createPlan(stack);
    const user = await createTestUser(stack.deps);
    const subscribed = await subscribe(stack, user, { planId, paymentMethod: 'pm_card_visa' });
    assert.equal(subscribed.status, 201, JSON.stringify(subscribed.body));
    const subscriptionId = subscribed.body.subscription.id;
    // The customer's new default card needs authentication on every charge, off-session too.
    const card = await requestJson(`${stack.url}/api/v1/payment-methods`, {
      body: { paymentMethod: 'pm_card_authenticationRequired' },
      headers: user.headers,
    });
    assert.equal(card.status, 201);
    const made = await requestJson(`${stack.url}/api/v1/payment-methods/${card.body.paymentMethod.id}/default`, {
      method: 'POST',
      headers: user.headers,
    });
    assert.equal(made.status, 200);

    const renewal = await waitFor(
      async () =>
        (await getSubscription(stack, user, subscriptionId)).body.payments.find(
          (p: { status: string; gatewayPaymentId: string | null }) => p.status === 'pending' && p.gatewayPaymentId !== null,
        ),
      // Answered by the gateway, not only claimed.
      (pending) => pending !== undefined,
      { what: 'the renewal to await the customer', timeoutMs: 20_000 },
    );
    assert.equal(renewal.nextAction.type, 'use_stripe_sdk');
    const notice = await waitFor(
      async () =>
        (
          await stack.deps.db
            .select()
            .from(notifications)
            .where(and(eq(notifications.subscriptionId, subscriptionId), eq(notifications.kind, 'payment_action_required')))
        )[0],
      (row) => row !== undefined,
      { what: 'the payment_action_required notice' },
    );
    assert.ok(notice.body.includes(`/pay/${renewal.id}`), notice.body);

    assert.equal((await authenticate(user, renewal.id, 'succeeded')).status, 200);
    await waitFor(
      async () => (await readPayment(user, renewal.id)).body.payment.status,
      (status) => status === 'succeeded',
      { what: 'the renewal to succeed' },
    );
    assert.equal(await subscriptionStatus(user, subscriptionId), 'active');
  });
});
