import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { and, eq } from 'drizzle-orm';
import { createApp } from '../api/app';
import { auditLog, notifications, paymentMethods, payments, users, webhookEvents } from '../db/schema';
import type { PaymentGateway, SavedCard } from '../domain/payment';
import { createTestUser, listen, requestJson, type TestServer, type TestUser } from './support/api';
import { startPaymentStack, type PaymentStack } from './support/payment-fixtures';
import { deliverWebhook, stripeEvent, waitFor } from './support/subscription-stack';

let stack: PaymentStack;
let server: TestServer;
/** The cards the gateway knows, by id: what `retrievePaymentMethod` answers. */
const gatewayCards = new Map<string, SavedCard>();

function unused(): never {
  throw new Error('not used by the webhook');
}

/** Only what the webhook asks of the gateway: the card behind a SetupIntent. */
const gateway: PaymentGateway = {
  name: 'sandbox',
  createCustomer: unused,
  createSetupIntent: unused,
  attachPaymentMethod: unused,
  detachPaymentMethod: unused,
  charge: unused,
  refund: unused,
  cancel: unused,
  retrievePaymentMethod: (id) => {
    const card = gatewayCards.get(id);
    return card ? Promise.resolve(card) : Promise.reject(new Error(`no card ${id}`));
  },
};

before(async () => {
  stack = await startPaymentStack();
  server = await listen(createApp({ ...stack.deps, gateway }));
});

after(async () => {
  await server?.close();
  await stack?.close();
});

// To this file's app, whose gateway answers the cards below.
function deliver(event: object) {
  return deliverWebhook({ ...stack, url: server.url }, event);
}

async function eventOutcome(eventId: string) {
  const [row] = await stack.deps.db.select().from(webhookEvents).where(eq(webhookEvents.id, eventId));
  return { outcome: row.outcome, reason: row.reason };
}

/** A customer whose gateway customer is `cus_…`. */
async function customerWithGatewayId(): Promise<{ user: TestUser; customerId: string }> {
  const user = await createTestUser(stack.deps);
  const customerId = `cus_${randomUUID().replaceAll('-', '')}`;
  await stack.deps.db.update(users).set({ gatewayCustomerId: customerId }).where(eq(users.id, user.user.id));
  return { user, customerId };
}

function gatewayCard(customerId: string): SavedCard {
  const card = { id: `pm_${randomUUID().replaceAll('-', '')}`, brand: 'visa', last4: '4242', expMonth: 12, expYear: 2040, customerId };
  gatewayCards.set(card.id, card);
  return card;
}

function setupSucceeded(customerId: string, paymentMethod: string) {
  return stripeEvent('setup_intent.succeeded', {
    id: `seti_${randomUUID().replaceAll('-', '')}`,
    object: 'setup_intent',
    customer: customerId,
    payment_method: paymentMethod,
    status: 'succeeded',
  });
}

async function cardsOf(userId: string) {
  const rows = await stack.deps.db.select().from(paymentMethods).where(eq(paymentMethods.userId, userId));
  return Object.fromEntries(rows.map((r) => [r.id, { isDefault: r.isDefault, detached: r.detachedAt !== null }]));
}

describe('card events', () => {
  test('setup_intent.succeeded saves the card from the gateway; the first becomes the default', async () => {
    const { user, customerId } = await customerWithGatewayId();
    const first = gatewayCard(customerId);
    const second = gatewayCard(customerId);
    const event = setupSucceeded(customerId, first.id);
    assert.deepEqual((await deliver(event)).body, { received: true, duplicate: false });
    assert.deepEqual((await deliver(setupSucceeded(customerId, second.id))).status, 200);
    assert.deepEqual(await eventOutcome(event.id), { outcome: 'processed', reason: null });
    assert.deepEqual(await cardsOf(user.user.id), {
      [first.id]: { isDefault: true, detached: false },
      [second.id]: { isDefault: false, detached: false },
    });
  });

  test('setup_intent.succeeded for a customer we do not know is ignored', async () => {
    const stranger = `cus_unknown_${randomUUID().replaceAll('-', '')}`;
    const event = setupSucceeded(stranger, gatewayCard(stranger).id);
    assert.equal((await deliver(event)).status, 200);
    assert.deepEqual(await eventOutcome(event.id), { outcome: 'ignored', reason: 'unknown_customer' });
  });

  test('payment_method.detached marks the card detached and the newest card left becomes the default', async () => {
    const { user, customerId } = await customerWithGatewayId();
    const first = gatewayCard(customerId);
    const second = gatewayCard(customerId);
    for (const card of [first, second]) assert.equal((await deliver(setupSucceeded(customerId, card.id))).status, 200);

    const detached = stripeEvent('payment_method.detached', { id: first.id, object: 'payment_method', customer: null });
    assert.deepEqual((await deliver(detached)).body, { received: true, duplicate: false });
    assert.deepEqual(await eventOutcome(detached.id), { outcome: 'processed', reason: null });
    assert.deepEqual(await cardsOf(user.user.id), {
      [first.id]: { isDefault: false, detached: true },
      [second.id]: { isDefault: true, detached: false },
    });

    // Stripe's retry of the same news (a new event id) changes nothing more.
    const again = stripeEvent('payment_method.detached', { id: first.id, object: 'payment_method', customer: null });
    assert.equal((await deliver(again)).status, 200);
    assert.equal((await cardsOf(user.user.id))[second.id].isDefault, true);
  });
});

describe('charge.dispute.created', () => {
  test('marks the payment disputed, writes an audit row and a notification per staff user, once', async () => {
    const customer = await createTestUser(stack.deps);
    const paid = await requestJson(`${stack.url}/api/v1/payments/process`, {
      body: { amount: 1200, currency: 'usd', paymentMethod: 'pm_card_visa', description: 'to be disputed' },
      headers: customer.headers,
    });
    assert.equal(paid.status, 201);
    const { id: paymentId, gatewayPaymentId } = paid.body.payment;
    const disputeId = `dp_${randomUUID().replaceAll('-', '')}`;
    const dispute = () =>
      stripeEvent('charge.dispute.created', {
        id: disputeId,
        object: 'dispute',
        payment_intent: gatewayPaymentId,
        amount: 1200,
        currency: 'usd',
        reason: 'fraudulent',
      });

    const event = dispute();
    assert.deepEqual((await deliver(event)).body, { received: true, duplicate: false });
    assert.deepEqual(await eventOutcome(event.id), { outcome: 'processed', reason: null });
    const [payment] = await stack.deps.db.select().from(payments).where(eq(payments.id, paymentId));
    assert.equal(payment.status, 'disputed');
    const audits = await stack.deps.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.targetId, paymentId), eq(auditLog.action, 'payment.disputed')));
    assert.deepEqual(
      audits.map((a) => [a.actorId, a.targetType, a.reason, a.details]),
      [[null, 'payment', 'fraudulent', { disputeId, amount: 1200, currency: 'usd' }]],
    );
    const told = await stack.deps.db
      .select()
      .from(notifications)
      .where(eq(notifications.dedupeKey, `dispute/${disputeId}/${stack.staff.user.id}`));
    assert.deepEqual(
      told.map((n) => [n.kind, n.recipient]),
      [['payment_disputed', stack.staff.user.email]],
    );

    // Delivered by the staff alert workflow, once.
    const sent = await waitFor(
      async () => (await stack.deps.db.select().from(notifications).where(eq(notifications.dedupeKey, told[0].dedupeKey)))[0],
      (row) => row.sentAt !== null,
      { what: 'the staff notice to be sent' },
    );
    assert.equal(sent.attempts, 1);

    // The same dispute in another event: nothing new.
    assert.equal((await deliver(dispute())).status, 200);
    const auditsAfter = await stack.deps.db.select().from(auditLog).where(eq(auditLog.targetId, paymentId));
    assert.equal(auditsAfter.length, 1);
    const [again] = await stack.deps.db.select().from(notifications).where(eq(notifications.dedupeKey, told[0].dedupeKey));
    assert.equal(again.attempts, 1, 'no second email');
  });

  test('a dispute of an intent we never recorded is ignored', async () => {
    const event = stripeEvent('charge.dispute.created', {
      id: `dp_${randomUUID().replaceAll('-', '')}`,
      object: 'dispute',
      payment_intent: `pi_foreign_${randomUUID()}`,
      amount: 500,
      currency: 'usd',
      reason: 'general',
    });
    assert.equal((await deliver(event)).status, 200);
    assert.deepEqual(await eventOutcome(event.id), { outcome: 'ignored', reason: 'foreign_intent' });
  });
});
