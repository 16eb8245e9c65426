/**
 * Saved cards over HTTP against the stateful sandbox gateway: the customer is created on first
 * need, test tokens become saved `pm_…` ids, the default card is what charges use when none is
 * named, and a detached card is never charged again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eq } from 'drizzle-orm';
import { sandboxIntents, sandboxPaymentMethods, subscriptions, users } from '../db/schema';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { createPlan, startSubscriptionStack, subscribe, waitFor, type SubscriptionStack } from './support/subscription-stack';

let stack: SubscriptionStack;
let planId: string;

before(async () => {
  stack = await startSubscriptionStack();
  // A month: no renewal happens while these tests run.
  planId = await createPlan(stack, { interval: 'P1M' });
});

after(() => stack?.close());

function cards(user: TestUser) {
  return requestJson(`${stack.url}/api/v1/payment-methods`, { headers: user.headers });
}

function saveCard(user: TestUser, paymentMethod: unknown) {
  return requestJson(`${stack.url}/api/v1/payment-methods`, { body: { paymentMethod }, headers: user.headers });
}

function makeDefault(user: TestUser, id: string) {
  return requestJson(`${stack.url}/api/v1/payment-methods/${id}/default`, { method: 'POST', headers: user.headers });
}

function removeCard(user: TestUser, id: string) {
  return requestJson(`${stack.url}/api/v1/payment-methods/${id}`, { method: 'DELETE', headers: user.headers });
}

async function intentsOf(paymentMethodId: string) {
  return stack.deps.db.select().from(sandboxIntents).where(eq(sandboxIntents.paymentMethodId, paymentMethodId));
}

describe('saved cards', () => {
  test('a test token is saved as a card of its own on a customer created for the user; saving it again is a 200', async () => {
    const user = await createTestUser(stack.deps);
    const saved = await saveCard(user, 'pm_card_visa');
    assert.equal(saved.status, 201, JSON.stringify(saved.body));
    const card = saved.body.paymentMethod;
    assert.match(card.id, /^pm_sandbox_/);
    assert.deepEqual({ brand: card.brand, last4: card.last4, isDefault: card.isDefault }, { brand: 'visa', last4: '4242', isDefault: true });

    const [row] = await stack.deps.db.select({ customerId: users.gatewayCustomerId }).from(users).where(eq(users.id, user.user.id));
    assert.match(row.customerId ?? '', /^cus_sandbox_/);
    const [atGateway] = await stack.deps.db.select().from(sandboxPaymentMethods).where(eq(sandboxPaymentMethods.id, card.id));
    assert.equal(atGateway.customerId, row.customerId);

    const again = await saveCard(user, card.id);
    assert.equal(again.status, 200);
    assert.deepEqual(again.body.paymentMethod, card);
    assert.deepEqual((await cards(user)).body.paymentMethods, [card]);
  });

  test("another customer's card cannot be listed, saved, made default or removed", async () => {
    const owner = await createTestUser(stack.deps);
    const other = await createTestUser(stack.deps);
    const card = (await saveCard(owner, 'pm_card_mastercard')).body.paymentMethod;
    assert.deepEqual((await cards(other)).body.paymentMethods, []);
    const stolen = await saveCard(other, card.id);
    assert.equal(stolen.status, 422);
    assert.equal(stolen.body.invalidParams[0].name, 'paymentMethod');
    assert.equal((await makeDefault(other, card.id)).status, 404);
    assert.equal((await removeCard(other, card.id)).status, 404);
    assert.equal((await cards(owner)).body.paymentMethods.length, 1);
  });

  test('a SetupIntent is created for the client app to confirm with Stripe.js', async () => {
    const user = await createTestUser(stack.deps);
    const res = await requestJson(`${stack.url}/api/v1/payment-methods/setup-intents`, { method: 'POST', headers: user.headers });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.match(res.body.setupIntent.id, /^seti_sandbox_/);
    assert.match(res.body.setupIntent.clientSecret, /_secret_/);
    assert.equal(res.body.setupIntent.status, 'requires_payment_method');
  });
});

describe('the default card', () => {
  test('subscribing without a card and without a default is a 422 naming paymentMethod, and creates nothing', async () => {
    const user = await createTestUser(stack.deps);
    const res = await subscribe(stack, user, { planId });
    assert.equal(res.status, 422);
    assert.equal(res.body.invalidParams[0].name, 'paymentMethod');
    const rows = await stack.deps.db.select().from(subscriptions).where(eq(subscriptions.userId, user.user.id));
    assert.equal(rows.length, 0);
  });

  test('charges without a card use the default, with the customer, and a new default moves live subscriptions', async () => {
    const user = await createTestUser(stack.deps);
    const visa = (await saveCard(user, 'pm_card_visa')).body.paymentMethod;
    const subscribed = await subscribe(stack, user, { planId });
    assert.equal(subscribed.status, 201, JSON.stringify(subscribed.body));
    const [charge] = await intentsOf(visa.id);
    assert.equal(charge.amount, 500);
    const [customer] = await stack.deps.db.select({ id: users.gatewayCustomerId }).from(users).where(eq(users.id, user.user.id));
    assert.equal(charge.customerId, customer.id);

    const mastercard = (await saveCard(user, 'pm_card_mastercard')).body.paymentMethod;
    assert.equal(mastercard.isDefault, false);
    const made = await makeDefault(user, mastercard.id);
    assert.equal(made.status, 200);
    assert.equal(made.body.paymentMethod.isDefault, true);
    const listed = (await cards(user)).body.paymentMethods;
    assert.deepEqual(
      listed.map((c: { id: string; isDefault: boolean }) => [c.id, c.isDefault]),
      [
        [mastercard.id, true],
        [visa.id, false],
      ],
    );
    const subscriptionId = subscribed.body.subscription.id;
    await waitFor(
      async () => (await stack.deps.db.select().from(subscriptions).where(eq(subscriptions.id, subscriptionId)))[0].paymentMethod,
      (method) => method === mastercard.id,
      { what: 'the subscription to charge the new default' },
    );
  });

  test('the only card of a live subscription cannot be removed; another can, and is detached at the gateway', async () => {
    const user = await createTestUser(stack.deps);
    const visa = (await saveCard(user, 'pm_card_visa')).body.paymentMethod;
    assert.equal((await subscribe(stack, user, { planId })).status, 201);
    const refused = await removeCard(user, visa.id);
    assert.equal(refused.status, 409);

    const amex = (await saveCard(user, 'pm_card_amex')).body.paymentMethod;
    const removed = await removeCard(user, amex.id);
    assert.equal(removed.status, 204);
    assert.deepEqual(
      (await cards(user)).body.paymentMethods.map((c: { id: string }) => c.id),
      [visa.id],
    );
    const [atGateway] = await stack.deps.db.select().from(sandboxPaymentMethods).where(eq(sandboxPaymentMethods.id, amex.id));
    assert.notEqual(atGateway.detachedAt, null);
    // A detached card is not one of the user's any more: naming it is refused.
    const res = await requestJson(`${stack.url}/api/v1/payments/process`, {
      body: { amount: 100, currency: 'usd', paymentMethod: amex.id, description: 'After removal' },
      headers: user.headers,
    });
    assert.equal(res.status, 422);
  });

  test('removing the default card makes the newest card left the default, and its subscriptions follow', async () => {
    const user = await createTestUser(stack.deps);
    const first = (await saveCard(user, 'pm_card_visa')).body.paymentMethod;
    const subscribed = await subscribe(stack, user, { planId });
    assert.equal(subscribed.status, 201);
    const second = (await saveCard(user, 'pm_card_mastercard')).body.paymentMethod;
    assert.equal((await removeCard(user, first.id)).status, 204);
    const listed = (await cards(user)).body.paymentMethods;
    assert.deepEqual(
      listed.map((c: { id: string; isDefault: boolean }) => [c.id, c.isDefault]),
      [[second.id, true]],
    );
    await waitFor(
      async () => (await stack.deps.db.select().from(subscriptions).where(eq(subscriptions.id, subscribed.body.subscription.id)))[0].paymentMethod,
      (method) => method === second.id,
      { what: 'the subscription to move off the removed card' },
    );
  });
});
