import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import express from 'express';
import { paymentRoutes } from '../api/payment';
import { problemHandler } from '../api/problem';
import { requestLogger } from '../api/request-context';
import { oneTimePaymentWorkflowId } from '../domain/payment';
import { createTestUser, listen, requestJson, type TestUser } from './support/api';
import { startPaymentStack, type PaymentStack } from './support/payment-fixtures';
import { uniqueTaskQueue } from './support/temporal';

let stack: PaymentStack;
let customer: TestUser;

before(async () => {
  stack = await startPaymentStack();
  customer = await createTestUser(stack.deps);
});

after(() => stack?.close());

function pay(body: unknown, headers: Record<string, string> = customer.headers) {
  return requestJson(`${stack.url}/api/v1/payments/process`, { body, headers });
}

function history(user: TestUser = customer) {
  return requestJson(`${stack.url}/api/v1/payments/history`, { headers: user.headers });
}

const ticket = { amount: 1250, currency: 'EUR', paymentMethod: 'pm_card_visa', description: 'Concert ticket' };

describe('POST /api/v1/payments/process', () => {
  test('a good card is charged: 201 with the payment', async () => {
    const res = await pay(ticket);
    assert.equal(res.status, 201);
    const { payment } = res.body;
    assert.equal(payment.kind, 'one_time');
    assert.equal(payment.amount, 1250);
    assert.equal(payment.currency, 'eur');
    assert.equal(payment.status, 'succeeded');
    assert.equal(payment.attempt, 1);
    assert.match(payment.gatewayPaymentId, /^pi_sandbox_/);
    assert.equal(payment.failureCode, null);
    assert.equal(new Date(payment.createdAt).toISOString(), payment.createdAt);
    assert.equal(payment.subscriptionId, undefined);

    const listed = await history();
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.body.payments.find((p: { id: string }) => p.id === payment.id),
      payment,
    );
  });

  test('a declined card is a 402 problem carrying the failed payment', async () => {
    const res = await pay({ ...ticket, paymentMethod: 'pm_card_chargeDeclinedStolenCard' });
    assert.equal(res.status, 402);
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
    assert.equal(res.body.failureCode, 'stolen_card');
    assert.equal(res.body.decline, 'hard');
    assert.equal(res.body.payment.status, 'failed');
    assert.equal(res.body.payment.failureCode, 'stolen_card');
  });

  test('a payment needing authentication is a 202 carrying what the client app must do', async () => {
    const res = await pay({ ...ticket, paymentMethod: 'pm_card_authenticationRequired' });
    assert.equal(res.status, 202);
    assert.equal(res.body.payment.status, 'pending');
    assert.match(res.body.payment.gatewayPaymentId, /^pi_sandbox_/);
    assert.equal(res.body.payment.nextAction.type, 'use_stripe_sdk');
    assert.match(res.body.payment.nextAction.clientSecret, /^pi_sandbox_\w+_secret_/);
  });

  test('the same Idempotency-Key replays the first answer and charges once', async () => {
    const headers = { ...customer.headers, 'idempotency-key': randomUUID() };
    const first = await pay(ticket, headers);
    const again = await pay(ticket, headers);
    assert.equal(first.status, 201);
    assert.equal(again.status, 201);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(again.body, first.body);
    const listed = await history();
    assert.equal(listed.body.payments.filter((p: { id: string }) => p.id === first.body.payment.id).length, 1);
  });

  test('a malformed body is a 400 naming each bad field', async () => {
    const res = await pay({ amount: 12.5, currency: 'euro', paymentMethod: '', extra: true });
    assert.equal(res.status, 400);
    const names = res.body.invalidParams.map((p: { name: string }) => p.name).sort();
    assert.deepEqual(names, ['amount', 'currency', 'description', 'extra', 'paymentMethod']);
  });

  test('needs a bearer token', async () => {
    assert.equal((await pay(ticket, {})).status, 401);
    assert.equal((await requestJson(`${stack.url}/api/v1/payments/history`)).status, 401);
  });
});

describe('GET /api/v1/payments/history', () => {
  test("lists only the caller's payments, newest first", async () => {
    const other = await createTestUser(stack.deps);
    assert.deepEqual((await history(other)).body, { payments: [] });

    const first = (await pay(ticket, other.headers)).body.payment;
    const second = (await pay({ ...ticket, amount: 99 }, other.headers)).body.payment;
    const { payments } = (await history(other)).body;
    assert.deepEqual(
      payments.map((p: { id: string }) => p.id),
      [second.id, first.id],
    );
  });
});

describe('POST /process when no worker answers in time', () => {
  test('answers 202 with the payment pending; the workflow keeps it under way', async () => {
    const idleQueue = uniqueTaskQueue('billing-idle');
    const deps = { ...stack.deps, taskQueues: { billing: idleQueue, bookings: idleQueue, payments: idleQueue, renewals: idleQueue } };
    const app = express()
      .use(requestLogger(deps.logger))
      .use(express.json())
      .use(paymentRoutes(deps, { answerWithinMs: 1_000 }))
      .use(problemHandler(deps.logger));
    const server = await listen(app);
    try {
      const res = await requestJson(`${server.url}/api/v1/payments/process`, { body: ticket, headers: customer.headers });
      assert.equal(res.status, 202);
      assert.equal(res.body.payment.status, 'pending');
      const workflow = stack.deps.temporal.workflow.getHandle(oneTimePaymentWorkflowId(res.body.payment.id));
      assert.equal((await workflow.describe()).status.name, 'RUNNING');
      await workflow.terminate('test over: no worker polls this queue');
    } finally {
      await server.close();
    }
  });
});
