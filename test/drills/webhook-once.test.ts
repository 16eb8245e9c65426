/**
 * Drill (fast, on the test runner's servers): the same payment webhook delivered 10 times at once
 * makes one state change. Checked in PostgreSQL (one event row, one payment settled, one receipt)
 * and in the workflow's history (one settlement signal).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eq } from 'drizzle-orm';
import { notifications, payments, webhookEvents } from '../../db/schema';
import { subscriptionWorkflowId } from '../../domain/subscription';
import { paymentSettledSignal } from '../../workflows/payment';
import { createTestUser } from '../support/api';
import { assertBooksBalance } from '../support/reconciliation';
import {
  createPlan,
  deliverWebhook,
  getSubscription,
  startSubscriptionStack,
  stripeEvent,
  subscribe,
  waitFor,
  type SubscriptionStack,
} from '../support/subscription-stack';

const DELIVERIES = 10;

let stack: SubscriptionStack;

before(async () => {
  stack = await startSubscriptionStack();
});

after(() => stack?.close());

test(`the same webhook ${DELIVERIES} times at once: one state change`, async () => {
  const customer = await createTestUser(stack.deps);
  const planId = await createPlan(stack, { interval: 'P1M' });
  const subscribed = await subscribe(stack, customer, { planId, paymentMethod: 'pm_card_authenticationRequired' });
  assert.equal(subscribed.status, 202, JSON.stringify(subscribed.body));
  const { subscription, payment } = subscribed.body;

  const event = stripeEvent('payment_intent.succeeded', {
    id: payment.gatewayPaymentId,
    object: 'payment_intent',
    amount: payment.amount,
    currency: payment.currency,
    metadata: { payment_id: payment.id },
    last_payment_error: null,
  });
  const deliveries = await Promise.all(Array.from({ length: DELIVERIES }, () => deliverWebhook(stack, event)));
  assert.deepEqual(
    deliveries.map((d) => d.status),
    Array(DELIVERIES).fill(200),
  );
  assert.equal(deliveries.filter((d) => d.body.duplicate === false).length, 1, 'exactly one delivery acted');

  await waitFor(
    () => getSubscription(stack, customer, subscription.id),
    (res) => res.body.subscription?.status === 'active',
    {
      what: 'the subscription activated by the webhook',
    },
  );
  const { db, temporal } = stack.deps;
  const receipts = await waitFor(
    () => db.select().from(notifications).where(eq(notifications.subscriptionId, subscription.id)),
    (rows) => rows.some((n) => n.kind === 'payment_succeeded' && n.sentAt !== null),
    { what: 'the receipt' },
  );
  assert.equal((await db.select().from(webhookEvents).where(eq(webhookEvents.id, event.id))).length, 1, 'one event row');
  const charges = await db.select().from(payments).where(eq(payments.subscriptionId, subscription.id));
  assert.deepEqual(
    charges.map((c) => [c.id, c.status]),
    [[payment.id, 'succeeded']],
    'one charge, settled once',
  );
  assert.equal(receipts.filter((n) => n.kind === 'payment_succeeded').length, 1, 'one receipt');

  const history = await temporal.workflow.getHandle(subscriptionWorkflowId(subscription.id)).fetchHistory();
  const settlements = (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === paymentSettledSignal.name);
  assert.equal(settlements.length, 1, 'the workflow was signalled once');
  await assertBooksBalance(db, { customers: [customer.user.id] });
});
