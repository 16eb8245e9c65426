/**
 * The whole subscription path for HTTP tests (test/support/stack.ts serving the billing queue)
 * and its fixtures. Real time: use plans with intervals in seconds.
 */
import { randomUUID } from 'node:crypto';
import assert from 'node:assert/strict';
import Stripe from 'stripe';
import { requestJson, type TestUser } from './api';
import { startTestStack, type TestStack } from './stack';

export type SubscriptionStack = TestStack;

export function startSubscriptionStack(): Promise<SubscriptionStack> {
  return startTestStack({ serves: ['billing'] });
}

/**
 * A plan in seconds that the domain accepts: renews every 4 s; after a failed renewal retries at
 * +2 s and +4 s, reminds at +1 s and +3 s, and expires at +6 s.
 */
export function secondsPlanBody(overrides: Record<string, unknown> = {}) {
  return {
    code: `e2e-${randomUUID()}`,
    name: 'Quick',
    amount: 500,
    currency: 'usd',
    interval: 'PT4S',
    dunning: { retryOffsets: ['PT2S', 'PT4S'], reminderOffsets: ['PT1S', 'PT3S'], gracePeriod: 'PT6S' },
    ...overrides,
  };
}

/** Creates a plan over HTTP as staff; answers its id. */
export async function createPlan(stack: SubscriptionStack, overrides: Record<string, unknown> = {}): Promise<string> {
  const res = await requestJson(`${stack.url}/api/v1/admin/plans`, { body: secondsPlanBody(overrides), headers: stack.staff.headers });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.plan.id;
}

export function subscribe(stack: SubscriptionStack, user: TestUser, body: unknown, headers: Record<string, string> = {}) {
  return requestJson(`${stack.url}/api/v1/subscriptions/subscribe`, { body, headers: { ...user.headers, ...headers } });
}

export function getSubscription(stack: SubscriptionStack, user: TestUser, id: string) {
  return requestJson(`${stack.url}/api/v1/subscriptions/${id}`, { headers: user.headers });
}

/** A subscription with its payments and notifications, as its owner reads it (200 asserted). */
export async function subscriptionDetail(stack: SubscriptionStack, user: TestUser, id: string) {
  const res = await getSubscription(stack, user, id);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body as { subscription: Record<string, any>; payments: Record<string, any>[]; notifications: Record<string, any>[] };
}

/** An invoice as its owner reads it (200 asserted). */
export async function readInvoice(stack: SubscriptionStack, user: TestUser, id: string): Promise<Record<string, any>> {
  const res = await requestJson(`${stack.url}/api/v1/invoices/${id}`, { headers: user.headers });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.invoice;
}

export function requestPaymentMethodChange(stack: SubscriptionStack, user: TestUser, id: string, paymentMethod: unknown) {
  return requestJson(`${stack.url}/api/v1/subscriptions/${id}/payment-method`, { body: { paymentMethod }, headers: user.headers });
}

export function requestCancel(stack: SubscriptionStack, user: TestUser, body: unknown) {
  return requestJson(`${stack.url}/api/v1/subscriptions/cancel`, { body, headers: user.headers });
}

/**
 * Polls `read` until `ready` holds, and answers that value; fails naming the last value seen
 * once `timeoutMs` has passed. For state that real timers change.
 */
export async function waitFor<T>(
  read: () => Promise<T>,
  ready: (value: T) => boolean,
  { timeoutMs = 15_000, intervalMs = 150, what = 'the expected state' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ready(value)) return value;
    if (Date.now() > deadline) {
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${JSON.stringify(value)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A Stripe event of `type` about `object`, with a fresh event id. */
export function stripeEvent(type: string, object: Record<string, unknown>) {
  return {
    id: `evt_test_${randomUUID().replaceAll('-', '')}`,
    object: 'event',
    api_version: Stripe.API_VERSION,
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
    data: { object },
  };
}

/** POSTs `event` to the webhook, signed with `secret` the way Stripe signs it. */
export async function deliverWebhook(stack: SubscriptionStack, event: object, secret = stack.deps.config.STRIPE_WEBHOOK_SECRET) {
  const payload = JSON.stringify(event);
  const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret });
  const response = await fetch(`${stack.url}/api/v1/webhooks/stripe`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': signature },
    body: payload,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
