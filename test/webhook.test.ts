import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import Stripe from 'stripe';
import { createApp } from '../api/app';
import { notifications, payments, webhookEvents } from '../db/schema';
import { oneTimePaymentWorkflowId, orphanedPaymentRefundWorkflowId, PAYMENT_ID_METADATA_KEY, PAYMENT_TIMEOUT_FAILURE_CODE } from '../domain/payment';
import { oneTimePaymentWorkflow, type refundOrphanedPaymentWorkflow } from '../workflows/payment';
import { createTestUser, listen, requestJson, type TestUser } from './support/api';
import { closedLoopbackPort, startPaymentStack, type PaymentStack } from './support/payment-fixtures';
import { stripeEvent } from './support/subscription-stack';

let stack: PaymentStack;
let customer: TestUser;
let webhookSecret: string;

before(async () => {
  stack = await startPaymentStack();
  customer = await createTestUser(stack.deps);
  webhookSecret = stack.deps.config.STRIPE_WEBHOOK_SECRET;
});

after(() => stack?.close());

/** A PaymentIntent event; its amount and currency are those of `pendingPayment()` unless `fields` say otherwise. */
function intentEvent(type: 'payment_intent.succeeded' | 'payment_intent.payment_failed', intentId: string, fields: Record<string, unknown> = {}) {
  return stripeEvent(type, {
    id: intentId,
    object: 'payment_intent',
    amount: 3000,
    currency: 'usd',
    metadata: {},
    last_payment_error: null,
    ...fields,
  });
}

async function deliver(event: object, options: { secret?: string; baseUrl?: string; timestamp?: number } = {}) {
  const payload = JSON.stringify(event);
  const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret: options.secret ?? webhookSecret, timestamp: options.timestamp });
  const response = await fetch(`${options.baseUrl ?? stack.url}/api/v1/webhooks/stripe`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': signature },
    body: payload,
  });
  return { status: response.status, contentType: response.headers.get('content-type'), body: (await response.json()) as Record<string, unknown> };
}

async function isRecorded(eventId: string): Promise<boolean> {
  const rows = await stack.deps.db.select().from(webhookEvents).where(eq(webhookEvents.id, eventId));
  return rows.length === 1;
}

/** The event's row: its outcome, the reason it was ignored, and whether it was marked done. */
async function eventOutcome(eventId: string) {
  const [row] = await stack.deps.db.select().from(webhookEvents).where(eq(webhookEvents.id, eventId));
  return row && { outcome: row.outcome, reason: row.reason, processed: row.processedAt !== null };
}

/** `webhook_mismatches_total{reason}` as the app's /metrics shows it. */
async function mismatches(reason: string): Promise<number> {
  const text = await (await fetch(`${stack.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`webhook_mismatches_total{reason="${reason}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function paymentRow(id: string) {
  const [row] = await stack.deps.db.select().from(payments).where(eq(payments.id, id));
  return row;
}

/** A one-time payment over HTTP that the sandbox leaves pending, and its workflow. */
async function pendingPayment() {
  const res = await requestJson(`${stack.url}/api/v1/payments/process`, {
    body: { amount: 3000, currency: 'usd', paymentMethod: 'pm_card_authenticationRequired', description: '3DS' },
    headers: customer.headers,
  });
  assert.equal(res.status, 202);
  assert.equal(res.body.payment.status, 'pending');
  const payment: { id: string; gatewayPaymentId: string } = res.body.payment;
  const workflow = stack.deps.temporal.workflow.getHandle<typeof oneTimePaymentWorkflow>(oneTimePaymentWorkflowId(payment.id));
  return { payment, workflow };
}

describe('POST /api/v1/webhooks/stripe', () => {
  test('a wrong signature is a 400 problem and records nothing', async () => {
    const event = intentEvent('payment_intent.succeeded', 'pi_whatever');
    const res = await deliver(event, { secret: 'whsec_not_ours' });
    assert.equal(res.status, 400);
    assert.match(res.contentType ?? '', /application\/problem\+json/);
    assert.equal(res.body.title, 'Invalid webhook signature');
    assert.equal(await isRecorded(event.id), false);

    const unsigned = await fetch(`${stack.url}/api/v1/webhooks/stripe`, { method: 'POST', body: JSON.stringify(event) });
    assert.equal(unsigned.status, 400);
    assert.equal(await isRecorded(event.id), false);
  });

  test('payment_intent.succeeded settles the pending payment through its workflow; a duplicate is a no-op', async () => {
    const { payment, workflow } = await pendingPayment();
    const event = intentEvent('payment_intent.succeeded', payment.gatewayPaymentId);

    const first = await deliver(event);
    assert.equal(first.status, 200);
    assert.deepEqual(first.body, { received: true, duplicate: false });
    const result = await workflow.result();
    assert.equal(result.status, 'succeeded');
    assert.equal((await paymentRow(payment.id)).status, 'succeeded');
    assert.deepEqual(await eventOutcome(event.id), { outcome: 'processed', reason: null, processed: true });

    const again = await deliver(event);
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { received: true, duplicate: true });

    // A new event for a payment whose workflow has ended: nothing waits for it any more.
    const late = intentEvent('payment_intent.payment_failed', payment.gatewayPaymentId);
    assert.deepEqual((await deliver(late)).body, { received: true, duplicate: false });
    assert.equal((await paymentRow(payment.id)).status, 'succeeded');
  });

  test('payment_intent.payment_failed fails the pending payment with the decline code', async () => {
    const { payment, workflow } = await pendingPayment();
    const event = intentEvent('payment_intent.payment_failed', payment.gatewayPaymentId, {
      last_payment_error: { type: 'card_error', code: 'card_declined', decline_code: 'insufficient_funds' },
    });
    assert.equal((await deliver(event)).status, 200);
    const result = await workflow.result();
    assert.deepEqual({ status: result.status, failureCode: result.failureCode }, { status: 'failed', failureCode: 'insufficient_funds' });
    const row = await paymentRow(payment.id);
    assert.equal(row.status, 'failed');
    assert.equal(row.failureCode, 'insufficient_funds');
  });

  test('an intent matched only through its metadata is foreign: ignored, counted, and the payment untouched', async () => {
    const { payment, workflow } = await pendingPayment();
    const before = await mismatches('foreign_intent');
    const event = intentEvent('payment_intent.succeeded', `pi_foreign_${randomUUID()}`, {
      metadata: { [PAYMENT_ID_METADATA_KEY]: payment.id },
    });
    assert.deepEqual((await deliver(event)).body, { received: true, duplicate: false });
    assert.deepEqual(await eventOutcome(event.id), { outcome: 'ignored', reason: 'foreign_intent', processed: true });
    assert.equal(await mismatches('foreign_intent'), before + 1);
    assert.equal((await paymentRow(payment.id)).status, 'pending');
    assert.deepEqual((await deliver(event)).body, { received: true, duplicate: true }, 'Stripe stops retrying');

    // The real intent still settles it.
    assert.equal((await deliver(intentEvent('payment_intent.succeeded', payment.gatewayPaymentId))).status, 200);
    assert.equal((await workflow.result()).status, 'succeeded');
  });

  test('a wrong amount or currency is ignored; the currency is compared without case', async () => {
    const { payment, workflow } = await pendingPayment();
    const cases = [
      { fields: { amount: 1 }, reason: 'amount_mismatch' },
      { fields: { currency: 'eur' }, reason: 'currency_mismatch' },
    ];
    for (const { fields, reason } of cases) {
      const before = await mismatches(reason);
      const event = intentEvent('payment_intent.succeeded', payment.gatewayPaymentId, fields);
      assert.equal((await deliver(event)).status, 200);
      assert.deepEqual(await eventOutcome(event.id), { outcome: 'ignored', reason, processed: true });
      assert.equal(await mismatches(reason), before + 1);
      assert.equal((await paymentRow(payment.id)).status, 'pending');
    }
    assert.equal((await deliver(intentEvent('payment_intent.succeeded', payment.gatewayPaymentId, { currency: 'USD' }))).status, 200);
    assert.equal((await workflow.result()).status, 'succeeded');
  });

  test('metadata naming a charge whose intent id is not recorded yet: 503 and left received, so Stripe retries', async () => {
    const paymentId = randomUUID();
    await stack.deps.db.insert(payments).values({
      id: paymentId,
      kind: 'one_time',
      userId: customer.user.id,
      amount: 3000,
      currency: 'usd',
      status: 'pending',
      idempotencyKey: `test/${paymentId}`,
    });
    const event = intentEvent('payment_intent.succeeded', `pi_outran_${randomUUID()}`, { metadata: { [PAYMENT_ID_METADATA_KEY]: paymentId } });
    assert.equal((await deliver(event)).status, 503);
    assert.deepEqual(await eventOutcome(event.id), { outcome: 'received', reason: 'attempt_failed', processed: false });
    assert.equal((await paymentRow(paymentId)).status, 'pending');
  });

  test('a stale timestamp is refused by the signature check and records nothing', async () => {
    const { payment } = await pendingPayment();
    const event = intentEvent('payment_intent.succeeded', payment.gatewayPaymentId);
    const res = await deliver(event, { timestamp: Math.floor(Date.now() / 1000) - 600 });
    assert.equal(res.status, 400);
    assert.equal(res.body.title, 'Invalid webhook signature');
    assert.equal(await isRecorded(event.id), false);
    assert.equal((await paymentRow(payment.id)).status, 'pending');
  });

  test('an event for an unknown PaymentIntent, or of another type, is recorded and answered 200', async () => {
    const unknown = intentEvent('payment_intent.succeeded', `pi_unknown_${randomUUID()}`);
    assert.equal((await deliver(unknown)).status, 200);
    assert.deepEqual(await eventOutcome(unknown.id), { outcome: 'ignored', reason: 'foreign_intent', processed: true });

    const other = stripeEvent('customer.created', { id: `cus_${randomUUID()}`, object: 'customer' });
    assert.equal((await deliver(other)).status, 200);
    assert.deepEqual(await eventOutcome(other.id), { outcome: 'ignored', reason: 'unhandled_type', processed: true });
  });

  test('charge.refunded records the refunded amount on the payment', async () => {
    const paid = await requestJson(`${stack.url}/api/v1/payments/process`, {
      body: { amount: 800, currency: 'usd', paymentMethod: 'pm_card_visa', description: 'to be refunded' },
      headers: customer.headers,
    });
    assert.equal(paid.status, 201);
    const { id, gatewayPaymentId } = paid.body.payment;

    const partial = stripeEvent('charge.refunded', {
      id: `ch_${randomUUID()}`,
      object: 'charge',
      payment_intent: gatewayPaymentId,
      amount: 800,
      currency: 'usd',
      amount_refunded: 300,
    });
    assert.equal((await deliver(partial)).status, 200);
    let row = await paymentRow(id);
    assert.deepEqual({ refundedAmount: row.refundedAmount, status: row.status }, { refundedAmount: 300, status: 'succeeded' });

    const full = stripeEvent('charge.refunded', {
      id: `ch_${randomUUID()}`,
      object: 'charge',
      payment_intent: gatewayPaymentId,
      amount: 800,
      currency: 'usd',
      amount_refunded: 800,
    });
    assert.equal((await deliver(full)).status, 200);
    row = await paymentRow(id);
    assert.deepEqual({ refundedAmount: row.refundedAmount, status: row.status }, { refundedAmount: 800, status: 'refunded' });
  });

  test('when Temporal is unreachable the answer is 503 and the event stays received, so the retry acts on it', async () => {
    const { payment, workflow } = await pendingPayment();
    const event = intentEvent('payment_intent.succeeded', payment.gatewayPaymentId);

    const unreachable = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${await closedLoopbackPort()}` }) });
    const server = await listen(createApp({ ...stack.deps, temporal: unreachable }));
    try {
      const res = await deliver(event, { baseUrl: server.url });
      assert.equal(res.status, 503);
      assert.deepEqual(await eventOutcome(event.id), { outcome: 'received', reason: 'attempt_failed', processed: false });
    } finally {
      await server.close();
      await unreachable.connection.close();
    }

    const retried = await deliver(event);
    assert.deepEqual(retried.body, { received: true, duplicate: false });
    assert.equal((await workflow.result()).status, 'succeeded');
    assert.deepEqual(await eventOutcome(event.id), { outcome: 'processed', reason: null, processed: true });
  });
});

describe('a payment that succeeds after it was given up', () => {
  /** Its refund workflow's result, and the refund rows of the charge. */
  async function refundOf(paymentId: string) {
    const handle = stack.deps.temporal.workflow.getHandle<typeof refundOrphanedPaymentWorkflow>(orphanedPaymentRefundWorkflowId(paymentId));
    const result = await handle.result();
    const refunds = await stack.deps.db.select().from(payments).where(eq(payments.refundOf, paymentId));
    return { handle, result, refunds };
  }

  test('after its pending timeout: refunded once, however often Stripe says so, and the customer told', async () => {
    const paymentId = randomUUID();
    const failed = await stack.deps.temporal.workflow.execute(oneTimePaymentWorkflow, {
      workflowId: oneTimePaymentWorkflowId(paymentId),
      taskQueue: stack.deps.taskQueues!.billing,
      args: [
        {
          paymentId,
          userId: customer.user.id,
          amount: 2600,
          currency: 'usd',
          paymentMethod: 'pm_card_authenticationRequired',
          description: 'late 3DS',
          pendingTimeout: 'PT1S',
          paymentsTaskQueue: stack.deps.taskQueues!.payments,
        },
      ],
    });
    assert.deepEqual([failed.status, failed.failureCode], ['failed', PAYMENT_TIMEOUT_FAILURE_CODE]);

    const late = intentEvent('payment_intent.succeeded', failed.gatewayPaymentId!, { amount: 2600 });
    assert.deepEqual((await deliver(late)).body, { received: true, duplicate: false });
    const { handle, result, refunds } = await refundOf(paymentId);
    assert.equal(result?.status, 'succeeded');
    assert.deepEqual(
      refunds.map((r) => [r.amount, r.status]),
      [[2600, 'succeeded']],
    );
    const charge = await paymentRow(paymentId);
    assert.deepEqual([charge.status, charge.refundedAmount], ['refunded', 2600]);
    const told = await stack.deps.db.select().from(notifications).where(eq(notifications.userId, customer.user.id));
    assert.equal(told.filter((n) => n.kind === 'payment_refunded').length, 1);

    // Stripe sends the news again under a new event id: nothing more is refunded.
    const firstRun = (await handle.describe()).runId;
    const again = intentEvent('payment_intent.succeeded', failed.gatewayPaymentId!, { amount: 2600 });
    assert.deepEqual((await deliver(again)).body, { received: true, duplicate: false });
    assert.equal((await handle.describe()).runId, firstRun);
    assert.equal((await refundOf(paymentId)).refunds.length, 1);
  });

  test('while still pending but its workflow has ended: refunded', async () => {
    const { payment, workflow } = await pendingPayment();
    await workflow.terminate('test: the waiting workflow is gone');

    assert.equal((await deliver(intentEvent('payment_intent.succeeded', payment.gatewayPaymentId))).status, 200);
    const { result, refunds } = await refundOf(payment.id);
    assert.equal(result?.status, 'succeeded');
    assert.deepEqual(
      refunds.map((r) => r.amount),
      [3000],
    );
    assert.equal((await paymentRow(payment.id)).status, 'refunded');
  });
});
