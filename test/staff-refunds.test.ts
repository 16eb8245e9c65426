/**
 * Staff refunds of subscription and one-time payments over HTTP on the dev server
 * (POST /api/v1/admin/payments/{id}/refund): each is a payment of kind `refund` in the customer's
 * history and a row of the audit log, never more than is left of the charge (ten racing
 * requests included), once per Idempotency-Key; bad requests and refusals change nothing.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { and, asc, eq } from 'drizzle-orm';
import express from 'express';
import { adminPaymentRoutes } from '../api/admin-payments';
import { problemHandler } from '../api/problem';
import { requestLogger } from '../api/request-context';
import { auditLog, idempotencyRecords, notifications, payments } from '../db/schema';
import { subscriptionWorkflowId } from '../domain/subscription';
import { createTestUser, listen, requestJson, type TestUser } from './support/api';
import { activeSubscription, createMonthlyPlan } from './support/staff-fixtures';
import { startSubscriptionStack, type SubscriptionStack } from './support/subscription-stack';
import { uniqueTaskQueue } from './support/temporal';

let stack: SubscriptionStack;
let monthlyPlan: { id: string };

before(async () => {
  stack = await startSubscriptionStack();
  monthlyPlan = await createMonthlyPlan(stack);
});

after(() => stack?.close());

function refund(paymentId: string, body: unknown, user: TestUser = stack.staff, headers: Record<string, string> = {}) {
  return requestJson(`${stack.url}/api/v1/admin/payments/${paymentId}/refund`, { body, headers: { ...user.headers, ...headers } });
}

/** A one-time payment of `amount` by `user` with a good card; answers its JSON. */
async function paid(user: TestUser, amount: number): Promise<Record<string, any>> {
  const res = await requestJson(`${stack.url}/api/v1/payments/process`, {
    body: { amount, currency: 'usd', paymentMethod: 'pm_card_visa', description: 'Workshop ticket' },
    headers: user.headers,
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.payment;
}

function refundRows(paymentId: string) {
  return stack.deps.db.select().from(payments).where(eq(payments.refundOf, paymentId)).orderBy(asc(payments.createdAt), asc(payments.id));
}

async function chargeRow(paymentId: string) {
  const [row] = await stack.deps.db.select().from(payments).where(eq(payments.id, paymentId));
  return row;
}

function auditRows(paymentId: string) {
  return stack.deps.db
    .select()
    .from(auditLog)
    .where(and(eq(auditLog.targetType, 'payment'), eq(auditLog.targetId, paymentId)))
    .orderBy(asc(auditLog.id));
}

function invalidNames(body: { invalidParams?: { name: string }[] }): string[] {
  return [...new Set((body.invalidParams ?? []).map((p) => p.name))].sort();
}

/** The `gatewayRefundRecorded` signals the subscription's workflow received, in order. */
async function refundSignals(subscriptionId: string): Promise<unknown[]> {
  const history = await stack.deps.temporal.workflow.getHandle(subscriptionWorkflowId(subscriptionId)).fetchHistory();
  return (history.events ?? [])
    .map((event) => event.workflowExecutionSignaledEventAttributes)
    .filter((signal) => signal?.signalName === 'gatewayRefundRecorded')
    .map((signal) => JSON.parse(Buffer.from(signal!.input!.payloads![0].data!).toString('utf8')));
}

describe('staff refunds of payments', () => {
  test('a one-time payment refunded in full: in the history, the audit log and a notice; then nothing is left', async () => {
    const user = await createTestUser(stack.deps);
    const charge = await paid(user, 1250);

    const res = await refund(charge.id, { reason: 'customer cannot attend' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const { payment, refund: made, audit } = res.body;
    assert.deepEqual([payment.id, payment.status, payment.refundedAmount], [charge.id, 'refunded', 1250]);
    assert.deepEqual([made.kind, made.amount, made.currency, made.status, made.refundOf], ['refund', 1250, 'usd', 'succeeded', charge.id]);
    assert.match(made.gatewayPaymentId, /^re_sandbox_/);

    const history = await requestJson(`${stack.url}/api/v1/payments/history`, { headers: user.headers });
    assert.equal(history.status, 200);
    assert.deepEqual(
      history.body.payments.find((p: { id: string }) => p.id === made.id),
      made,
    );

    const [row] = await auditRows(charge.id);
    assert.equal(row.id, audit.id);
    assert.deepEqual([row.action, row.actorId, row.reason], ['payment.refund', stack.staff.user.id, 'customer cannot attend']);
    const details = row.details as Record<string, unknown>;
    assert.match(String(details.workflowId), new RegExp(`^payment-refund-${charge.id}-`));
    assert.deepEqual(
      { ...details, workflowId: undefined },
      {
        workflowId: undefined,
        paymentId: charge.id,
        refundPaymentId: made.id,
        customerId: user.user.id,
        requestedAmount: null,
        amount: 1250,
        currency: 'usd',
        refundedTotal: 1250,
        answered: true,
      },
    );
    const notices = await stack.deps.db
      .select()
      .from(notifications)
      .where(and(eq(notifications.userId, user.user.id), eq(notifications.kind, 'payment_refunded')));
    assert.equal(notices.length, 1);
    assert.equal(notices[0].dedupeKey, `${String(details.workflowId)}/notify/refunded`);
    assert.match(notices[0].body, /refunded \$12\.50/);

    const again = await refund(charge.id, { reason: 'twice' });
    assert.equal(again.status, 409, JSON.stringify(again.body));
    assert.equal(again.body.title, 'Nothing left to refund');
    assert.equal((await refundRows(charge.id)).length, 1);
    assert.equal((await auditRows(charge.id)).length, 1, 'a refused refund is not audited');
  });

  test('a subscription payment: part, more than is left (422), then the rest; its workflow is told each total', async () => {
    const user = await createTestUser(stack.deps);
    const subscription = await activeSubscription(stack, user, monthlyPlan.id);
    const [charge] = await stack.deps.db
      .select()
      .from(payments)
      .where(and(eq(payments.subscriptionId, subscription.id), eq(payments.kind, 'subscription')));
    assert.equal(charge.amount, 500);

    const part = await refund(charge.id, { amount: 200, reason: 'outage on the 3rd' });
    assert.equal(part.status, 200, JSON.stringify(part.body));
    assert.deepEqual([part.body.payment.status, part.body.payment.refundedAmount], ['succeeded', 200]);
    assert.deepEqual([part.body.refund.amount, part.body.refund.subscriptionId], [200, subscription.id]);

    const over = await refund(charge.id, { amount: 301, reason: 'too much' });
    assert.equal(over.status, 422, JSON.stringify(over.body));
    assert.deepEqual(invalidNames(over.body), ['amount']);
    assert.equal(over.body.refundable, 300);

    const rest = await refund(charge.id, { reason: 'customer left' });
    assert.equal(rest.status, 200, JSON.stringify(rest.body));
    assert.deepEqual([rest.body.payment.status, rest.body.payment.refundedAmount, rest.body.refund.amount], ['refunded', 500, 300]);
    assert.deepEqual(
      (await refundRows(charge.id)).map((r) => [r.kind, r.amount, r.status]),
      [
        ['refund', 200, 'succeeded'],
        ['refund', 300, 'succeeded'],
      ],
    );
    assert.deepEqual(
      (await auditRows(charge.id)).map((a) => [a.reason, (a.details as { amount: number }).amount]),
      [
        ['outage on the 3rd', 200],
        ['customer left', 300],
      ],
    );
    assert.deepEqual(await refundSignals(subscription.id), [
      { paymentId: charge.id, refundedTotal: 200 },
      { paymentId: charge.id, refundedTotal: 500 },
    ]);
    const status = await requestJson(`${stack.url}/api/v1/subscriptions/${subscription.id}`, { headers: user.headers });
    assert.equal(status.body.subscription.status, 'active', 'a refund does not change the subscription');
  });

  test('ten refunds of 30 % at once: exactly three are made, never more than was paid', async () => {
    const user = await createTestUser(stack.deps);
    const charge = await paid(user, 1000);
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => refund(charge.id, { amount: 300, reason: `race ${i}` }, stack.staff, { 'idempotency-key': randomUUID() })),
    );
    const statuses = answers.map((a) => a.status).sort();
    assert.equal(statuses.filter((s) => s === 200).length, 3, JSON.stringify(statuses));
    assert.ok(
      statuses.every((s) => s === 200 || s === 409 || s === 422),
      JSON.stringify(answers.map((a) => a.body)),
    );
    const row = await chargeRow(charge.id);
    assert.equal(row.refundedAmount, 900);
    assert.ok(row.refundedAmount <= row.amount);
    const made = await refundRows(charge.id);
    assert.deepEqual(
      made.map((r) => [r.amount, r.status]),
      [
        [300, 'succeeded'],
        [300, 'succeeded'],
        [300, 'succeeded'],
      ],
    );
    assert.equal((await auditRows(charge.id)).length, 3);
  });

  test('the same Idempotency-Key twice is one refund; a repeat that runs again reaches the same workflow', async () => {
    const user = await createTestUser(stack.deps);
    const charge = await paid(user, 800);
    const key = randomUUID();
    const first = await refund(charge.id, { amount: 100, reason: 'goodwill' }, stack.staff, { 'idempotency-key': key });
    const again = await refund(charge.id, { amount: 100, reason: 'goodwill' }, stack.staff, { 'idempotency-key': key });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(again.body, first.body);

    // The stored answer lost: the handler runs again and reaches the first request's (closed) workflow.
    await stack.deps.db.delete(idempotencyRecords).where(and(eq(idempotencyRecords.userId, stack.staff.user.id), eq(idempotencyRecords.key, key)));
    const rerun = await refund(charge.id, { amount: 100, reason: 'goodwill' }, stack.staff, { 'idempotency-key': key });
    assert.equal(rerun.status, 200, JSON.stringify(rerun.body));
    assert.equal(rerun.body.refund.id, first.body.refund.id);
    assert.equal((await refundRows(charge.id)).length, 1);
    assert.equal((await chargeRow(charge.id)).refundedAmount, 100);
  });

  test('bad amounts and reasons are 400s naming the field, and change nothing', async () => {
    const user = await createTestUser(stack.deps);
    const charge = await paid(user, 600);
    for (const amount of [0, -1, 1.5, '10', null]) {
      const res = await refund(charge.id, { amount, reason: 'why' });
      assert.equal(res.status, 400, `${JSON.stringify(amount)}: ${JSON.stringify(res.body)}`);
      assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
      assert.deepEqual(invalidNames(res.body), ['amount'], JSON.stringify(amount));
    }
    for (const body of [{ amount: 100 }, { amount: 100, reason: '   ' }, { reason: '' }]) {
      const res = await refund(charge.id, body);
      assert.equal(res.status, 400);
      assert.deepEqual(invalidNames(res.body), ['reason'], JSON.stringify(body));
    }
    const notUuid = await refund('not-a-uuid', { reason: 'why' });
    assert.equal(notUuid.status, 400);
    assert.deepEqual(invalidNames(notUuid.body), ['id']);
    assert.equal((await refund(randomUUID(), { reason: 'who' })).status, 404);

    assert.equal((await chargeRow(charge.id)).refundedAmount, 0);
    assert.deepEqual(await refundRows(charge.id), []);
    assert.deepEqual(await auditRows(charge.id), []);
  });

  test('409 for a booking payment, a refund and a payment that did not succeed; 403 for a customer', async () => {
    const user = await createTestUser(stack.deps);
    const [booking] = await stack.deps.db
      .insert(payments)
      .values({
        kind: 'booking',
        userId: user.user.id,
        amount: 2500,
        currency: 'usd',
        status: 'succeeded',
        idempotencyKey: `test-booking-${randomUUID()}`,
        gatewayPaymentId: `pi_test_${randomUUID()}`,
      })
      .returning();
    const bookingAnswer = await refund(booking.id, { reason: 'why' });
    assert.equal(bookingAnswer.status, 409);
    assert.match(bookingAnswer.body.detail, /\/api\/v1\/admin\/bookings\/\{id\}\/refund/);

    const declined = await requestJson(`${stack.url}/api/v1/payments/process`, {
      body: { amount: 700, currency: 'usd', paymentMethod: 'pm_card_chargeDeclined', description: 'Declined' },
      headers: user.headers,
    });
    assert.equal(declined.status, 402);
    const failed = await refund(declined.body.payment.id, { reason: 'why' });
    assert.equal(failed.status, 409);
    assert.equal(failed.body.title, 'Payment not refundable');

    const charge = await paid(user, 900);
    assert.equal((await refund(charge.id, { reason: 'me please' }, user)).status, 403);
    assert.equal((await requestJson(`${stack.url}/api/v1/admin/payments/${charge.id}/refund`, { body: { reason: 'x' } })).status, 401);
    const part = await refund(charge.id, { amount: 100, reason: 'part' });
    assert.equal(part.status, 200);
    const ofRefund = await refund(part.body.refund.id, { reason: 'a refund of a refund' });
    assert.equal(ofRefund.status, 409);
    assert.equal(ofRefund.body.title, 'Payment is a refund');

    assert.deepEqual(await refundRows(booking.id), []);
    assert.deepEqual(await refundRows(declined.body.payment.id), []);
    assert.equal((await refundRows(charge.id)).length, 1);
    assert.equal((await auditRows(charge.id)).length, 1);
  });
});

describe('staff refunds when no worker answers in time', () => {
  test('answers 202 with the payment as it stands; the workflow keeps the refund under way', async () => {
    const user = await createTestUser(stack.deps);
    const charge = await paid(user, 400);
    const idleQueue = uniqueTaskQueue('billing-idle');
    const deps = { ...stack.deps, taskQueues: { billing: idleQueue, bookings: idleQueue, payments: idleQueue, renewals: idleQueue } };
    const app = express()
      .use(requestLogger(deps.logger))
      .use(express.json())
      .use(adminPaymentRoutes(deps, { answerWithinMs: 1_000 }))
      .use(problemHandler(deps.logger));
    const server = await listen(app);
    try {
      const res = await requestJson(`${server.url}/api/v1/admin/payments/${charge.id}/refund`, {
        body: { amount: 150, reason: 'slow gateway' },
        headers: stack.staff.headers,
      });
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.equal(res.body.payment.id, charge.id);
      assert.equal(res.body.refund, null);
      const [audit] = await auditRows(charge.id);
      const details = audit.details as { workflowId: string; answered: boolean; amount: number };
      assert.deepEqual([details.answered, details.amount], [false, 150]);
      const workflow = stack.deps.temporal.workflow.getHandle(details.workflowId);
      assert.equal((await workflow.describe()).status.name, 'RUNNING');
      await workflow.terminate('test over: no worker polls this queue');
    } finally {
      await server.close();
    }
  });
});
