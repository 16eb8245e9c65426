/**
 * The subscription and plan routes over HTTP: validation, authentication, ownership, the answers
 * of subscribe (201, 402, 202) and of the changes, and dependency outages. Plans here renew
 * monthly, so nothing renews while a test runs; test/subscription-e2e.test.ts walks lifecycles.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import express from 'express';
import { createApp, type AppDeps } from '../api/app';
import { problemHandler } from '../api/problem';
import { requestLogger } from '../api/request-context';
import { subscriptionRoutes } from '../api/subscription';
import { connectDatabase } from '../db/client';
import { DEFAULT_DUNNING_POLICY } from '../domain/dunning';
import { subscriptionWorkflowId } from '../domain/subscription';
import { createTestUser, listen, requestJson, type TestUser } from './support/api';
import { closedLoopbackPort } from './support/payment-fixtures';
import {
  createPlan,
  getSubscription,
  requestCancel,
  requestPaymentMethodChange,
  secondsPlanBody,
  startSubscriptionStack,
  subscribe,
  type SubscriptionStack,
  waitFor,
} from './support/subscription-stack';
import { uniqueTaskQueue } from './support/temporal';

let stack: SubscriptionStack;
let customer: TestUser;
let monthlyPlanId: string;

before(async () => {
  stack = await startSubscriptionStack();
  customer = await createTestUser(stack.deps);
  monthlyPlanId = await createPlan(stack, { interval: 'P1M', dunning: undefined });
});

after(() => stack?.close());

function createPlanAs(user: TestUser | null, body: unknown) {
  return requestJson(`${stack.url}/api/v1/admin/plans`, { body, headers: user?.headers ?? {} });
}

function invalidNames(body: { invalidParams?: { name: string }[] }): string[] {
  return (body.invalidParams ?? []).map((p) => p.name).sort();
}

/** A monthly subscription of a new customer, paid with a good card. */
async function activeSubscription(owner?: TestUser) {
  const user = owner ?? (await createTestUser(stack.deps));
  const res = await subscribe(stack, user, { planId: monthlyPlanId, paymentMethod: 'pm_card_visa' });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return { user, subscription: res.body.subscription };
}

describe('plans', () => {
  test('staff create a plan: 201 with its terms; the default dunning policy when none is given', async () => {
    const body = secondsPlanBody({ currency: 'EUR', interval: 'P1M', trialPeriod: 'P14D', dunning: undefined });
    const res = await createPlanAs(stack.staff, body);
    assert.equal(res.status, 201);
    const { plan } = res.body;
    assert.deepEqual(
      { code: plan.code, amount: plan.amount, currency: plan.currency, interval: plan.interval, trialPeriod: plan.trialPeriod },
      { code: body.code, amount: 500, currency: 'eur', interval: 'P1M', trialPeriod: 'P14D' },
    );
    assert.deepEqual(plan.dunning, DEFAULT_DUNNING_POLICY);
    assert.equal(plan.active, true);
    assert.equal(plan.price, '€5.00');
  });

  test('anyone lists the plans on sale, without a token', async () => {
    const res = await requestJson(`${stack.url}/api/v1/subscriptions/plans`);
    assert.equal(res.status, 200);
    const listed = res.body.plans.find((p: { id: string }) => p.id === monthlyPlanId);
    assert.equal(listed.interval, 'P1M');
  });

  test('needs a token (401) and the staff role (403)', async () => {
    assert.equal((await createPlanAs(null, secondsPlanBody())).status, 401);
    const res = await createPlanAs(customer, secondsPlanBody());
    assert.equal(res.status, 403);
  });

  test('terms the domain rejects are a 400 naming each field', async () => {
    const res = await createPlanAs(
      stack.staff,
      secondsPlanBody({
        amount: 12.5,
        currency: 'euro',
        interval: 'monthly',
        trialPeriod: 'PT0S',
        dunning: { retryOffsets: ['PT4S', 'PT2S'], reminderOffsets: ['PT9S'], gracePeriod: 'PT6S' },
      }),
    );
    assert.equal(res.status, 400);
    assert.deepEqual(invalidNames(res.body), [
      'amount',
      'currency',
      'dunning.reminderOffsets.0',
      'dunning.retryOffsets.1',
      'interval',
      'trialPeriod',
    ]);
  });

  test('a malformed body is a 400 naming each field', async () => {
    const res = await createPlanAs(stack.staff, { code: 'Not A Code', amount: '500', surprise: true });
    assert.equal(res.status, 400);
    assert.deepEqual(invalidNames(res.body), ['amount', 'code', 'currency', 'interval', 'name', 'surprise']);
  });

  test('a code already used is a 409', async () => {
    const body = secondsPlanBody();
    assert.equal((await createPlanAs(stack.staff, body)).status, 201);
    const again = await createPlanAs(stack.staff, { ...body, name: 'Other' });
    assert.equal(again.status, 409);
    assert.deepEqual(invalidNames(again.body), ['code']);
  });
});

describe('POST /api/v1/subscriptions/subscribe', () => {
  test('a good card: 201, active, one paid period from now', async () => {
    const { user, subscription } = await activeSubscription();
    assert.equal(subscription.status, 'active');
    assert.equal(subscription.userId, user.user.id);
    assert.equal(subscription.planId, monthlyPlanId);
    assert.equal(subscription.workflowId, subscriptionWorkflowId(subscription.id));
    assert.equal(subscription.cancelAtPeriodEnd, false);
    assert.equal(subscription.nextBillingDate, subscription.currentPeriodEnd);
    const start = new Date(subscription.currentPeriodStart);
    const end = new Date(subscription.currentPeriodEnd);
    assert.equal(end.getUTCMonth(), (start.getUTCMonth() + 1) % 12);
  });

  test('a plan with a trial: 201, trialing, nothing charged', async () => {
    const planId = await createPlan(stack, { interval: 'P1M', trialPeriod: 'P14D' });
    const user = await createTestUser(stack.deps);
    const res = await subscribe(stack, user, { planId, paymentMethod: 'pm_card_visa' });
    assert.equal(res.status, 201);
    assert.equal(res.body.subscription.status, 'trialing');
    assert.equal(res.body.subscription.nextBillingDate, res.body.subscription.trialEnd);
    assert.equal(res.body.payment, null);
    assert.deepEqual((await getSubscription(stack, user, res.body.subscription.id)).body.payments, []);
  });

  test('a declined card: 402, status incomplete, and the workflow has ended', async () => {
    const user = await createTestUser(stack.deps);
    const res = await subscribe(stack, user, { planId: monthlyPlanId, paymentMethod: 'pm_card_chargeDeclinedInsufficientFunds' });
    assert.equal(res.status, 402);
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
    assert.equal(res.body.failureCode, 'insufficient_funds');
    assert.equal(res.body.decline, 'soft');
    assert.equal(res.body.subscription.status, 'incomplete');
    assert.equal(res.body.payment.status, 'failed');

    const workflow = stack.deps.temporal.workflow.getHandle(res.body.subscription.workflowId);
    await workflow.result();
    assert.equal((await workflow.describe()).status.name, 'COMPLETED');
    const read = await getSubscription(stack, user, res.body.subscription.id);
    assert.equal(read.body.subscription.status, 'incomplete');
    assert.deepEqual(
      read.body.payments.map((p: { status: string }) => p.status),
      ['failed'],
    );
  });

  test('bad input is a 400 (an unknown plan a 422) naming each field and creates nothing', async () => {
    const user = await createTestUser(stack.deps);
    const malformed = await subscribe(stack, user, { planId: 'basic', paymentMethod: '4242 4242 4242 4242', coupon: 'X' });
    assert.equal(malformed.status, 400);
    assert.deepEqual(invalidNames(malformed.body), ['coupon', 'paymentMethod', 'planId']);

    const unknownPlan = await subscribe(stack, user, { planId: randomUUID(), paymentMethod: 'pm_card_visa' });
    assert.equal(unknownPlan.status, 422);
    assert.deepEqual(invalidNames(unknownPlan.body), ['planId']);

    const listed = await requestJson(`${stack.url}/api/v1/subscriptions/status`, { headers: user.headers });
    assert.deepEqual(listed.body, { subscriptions: [] });
  });

  test('needs a bearer token', async () => {
    const body = { planId: monthlyPlanId, paymentMethod: 'pm_card_visa' };
    const res = await requestJson(`${stack.url}/api/v1/subscriptions/subscribe`, { body });
    assert.equal(res.status, 401);
  });
});

describe('reading subscriptions', () => {
  test('GET /status lists only the caller’s subscriptions, newest first', async () => {
    const user = await createTestUser(stack.deps);
    const first = await activeSubscription(user);
    const second = await activeSubscription(user);
    await activeSubscription();
    const res = await requestJson(`${stack.url}/api/v1/subscriptions/status`, { headers: user.headers });
    assert.equal(res.status, 200);
    assert.deepEqual(
      res.body.subscriptions.map((s: { id: string }) => s.id),
      [second.subscription.id, first.subscription.id],
    );
    assert.deepEqual(res.body.subscriptions[1], first.subscription);
  });

  test('GET /:id: the owner and staff see it with its payments and notifications; anyone else gets 404', async () => {
    const { user, subscription } = await activeSubscription();
    // The workflow sends its receipt without holding up the subscribe answer.
    const own = await waitFor(
      () => getSubscription(stack, user, subscription.id),
      (answer) => answer.body.notifications?.[0]?.sentAt != null,
      { what: 'the receipt' },
    );
    assert.equal(own.status, 200);
    assert.deepEqual(own.body.subscription, subscription);
    assert.equal(own.body.payments.length, 1);
    assert.deepEqual(
      { kind: own.body.payments[0].kind, status: own.body.payments[0].status, subscriptionId: own.body.payments[0].subscriptionId },
      { kind: 'subscription', status: 'succeeded', subscriptionId: subscription.id },
    );
    assert.deepEqual(
      own.body.notifications.map((n: { kind: string }) => n.kind),
      ['payment_succeeded'],
    );
    assert.ok(own.body.notifications[0].sentAt);

    const staffView = await getSubscription(stack, stack.staff, subscription.id);
    assert.equal(staffView.status, 200);
    assert.deepEqual(staffView.body, own.body);

    const stranger = await createTestUser(stack.deps);
    assert.equal((await getSubscription(stack, stranger, subscription.id)).status, 404);
    assert.equal((await getSubscription(stack, user, randomUUID())).status, 404);
    assert.equal((await getSubscription(stack, user, 'not-a-uuid')).status, 404);
    assert.equal((await requestJson(`${stack.url}/api/v1/subscriptions/${subscription.id}`)).status, 401);
  });
});

describe('changing a subscription', () => {
  test('cancel at period end by default, then now; the answer matches a later GET; then 409', async () => {
    const { user, subscription } = await activeSubscription();
    const atEnd = await requestCancel(stack, user, { subscriptionId: subscription.id });
    assert.equal(atEnd.status, 200);
    assert.equal(atEnd.body.subscription.status, 'active');
    assert.equal(atEnd.body.subscription.cancelAtPeriodEnd, true);
    assert.equal(atEnd.body.subscription.nextBillingDate, null);
    assert.equal(atEnd.body.subscription.currentPeriodEnd, subscription.currentPeriodEnd);
    assert.deepEqual((await getSubscription(stack, user, subscription.id)).body.subscription, atEnd.body.subscription);

    const now = await requestCancel(stack, user, { subscriptionId: subscription.id, atPeriodEnd: false });
    assert.equal(now.status, 200);
    assert.equal(now.body.subscription.status, 'canceled');
    assert.ok(now.body.subscription.canceledAt);
    assert.deepEqual((await getSubscription(stack, user, subscription.id)).body.subscription, now.body.subscription);

    assert.equal((await requestCancel(stack, user, { subscriptionId: subscription.id })).status, 409);
    assert.equal((await requestPaymentMethodChange(stack, user, subscription.id, 'pm_card_mastercard')).status, 409);
  });

  test('a subscription whose first charge was declined cannot be changed: 409', async () => {
    const user = await createTestUser(stack.deps);
    const declined = await subscribe(stack, user, { planId: monthlyPlanId, paymentMethod: 'pm_card_chargeDeclined' });
    assert.equal(declined.status, 402);
    const { id } = declined.body.subscription;
    assert.equal((await requestCancel(stack, user, { subscriptionId: id, atPeriodEnd: false })).status, 409);
    assert.equal((await requestPaymentMethodChange(stack, user, id, 'pm_card_visa')).status, 409);
  });

  test('a new payment method while active: 200, nothing charged', async () => {
    const { user, subscription } = await activeSubscription();
    const res = await requestPaymentMethodChange(stack, user, subscription.id, 'pm_card_mastercard');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.subscription, subscription);
    assert.equal((await getSubscription(stack, user, subscription.id)).body.payments.length, 1);
  });

  test('only the owner changes it (404 for others, staff included); bad input is a 400 naming the field', async () => {
    const { user, subscription } = await activeSubscription();
    const stranger = await createTestUser(stack.deps);
    for (const other of [stranger, stack.staff]) {
      assert.equal((await requestCancel(stack, other, { subscriptionId: subscription.id })).status, 404);
      assert.equal((await requestPaymentMethodChange(stack, other, subscription.id, 'pm_card_visa')).status, 404);
    }
    assert.equal((await requestPaymentMethodChange(stack, user, 'nope', 'pm_card_visa')).status, 404);

    const badCancel = await requestCancel(stack, user, { subscriptionId: 'nope', atPeriodEnd: 'yes' });
    assert.equal(badCancel.status, 400);
    assert.deepEqual(invalidNames(badCancel.body), ['atPeriodEnd', 'subscriptionId']);
    const badMethod = await requestPaymentMethodChange(stack, user, subscription.id, 'card 4242');
    assert.equal(badMethod.status, 400);
    assert.deepEqual(invalidNames(badMethod.body), ['paymentMethod']);

    assert.deepEqual((await getSubscription(stack, user, subscription.id)).body.subscription, subscription);
  });
});

describe('when a dependency is down or slow', () => {
  /** The subscription routes alone, answering within `answerWithinMs`. */
  function quickRoutes(deps: AppDeps, answerWithinMs: number) {
    return express()
      .use(requestLogger(deps.logger))
      .use(express.json())
      .use(subscriptionRoutes(deps, { answerWithinMs }))
      .use(problemHandler(deps.logger));
  }

  test('Temporal unreachable: subscribe is a 503 and nothing is subscribed', async () => {
    const unreachable = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${await closedLoopbackPort()}` }) });
    const server = await listen(quickRoutes({ ...stack.deps, temporal: unreachable }, 1_000));
    try {
      const user = await createTestUser(stack.deps);
      const res = await requestJson(`${server.url}/api/v1/subscriptions/subscribe`, {
        body: { planId: monthlyPlanId, paymentMethod: 'pm_card_visa' },
        headers: user.headers,
      });
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('retry-after'), '5');
      const listed = await requestJson(`${stack.url}/api/v1/subscriptions/status`, { headers: user.headers });
      assert.deepEqual(listed.body.subscriptions, []);
    } finally {
      await server.close();
      await unreachable.connection.close();
    }
  });

  test('PostgreSQL unreachable: reads and subscribe are 503s', async () => {
    const database = connectDatabase(`postgres://postgres@127.0.0.1:${await closedLoopbackPort()}/none`, { max: 1 });
    const server = await listen(createApp({ ...stack.deps, db: database.db, sql: database.sql }));
    try {
      const status = await requestJson(`${server.url}/api/v1/subscriptions/status`, { headers: customer.headers });
      assert.equal(status.status, 503);
      const subscribed = await requestJson(`${server.url}/api/v1/subscriptions/subscribe`, {
        body: { planId: monthlyPlanId, paymentMethod: 'pm_card_visa' },
        headers: customer.headers,
      });
      assert.equal(subscribed.status, 503);
      assert.equal((await requestJson(`${server.url}/api/v1/subscriptions/plans`)).status, 503);
    } finally {
      await server.close();
      await database.close();
    }
  });

  test('no worker answers in time: 202 with the subscription incomplete, its workflow still under way', async () => {
    const idleQueue = uniqueTaskQueue('billing-idle');
    const server = await listen(
      quickRoutes({ ...stack.deps, taskQueues: { billing: idleQueue, bookings: idleQueue, payments: idleQueue, renewals: idleQueue } }, 1_000),
    );
    try {
      const user = await createTestUser(stack.deps);
      const res = await requestJson(`${server.url}/api/v1/subscriptions/subscribe`, {
        body: { planId: monthlyPlanId, paymentMethod: 'pm_card_visa' },
        headers: user.headers,
      });
      assert.equal(res.status, 202);
      assert.equal(res.body.subscription.status, 'incomplete');
      const workflow = stack.deps.temporal.workflow.getHandle(res.body.subscription.workflowId);
      assert.equal((await workflow.describe()).status.name, 'RUNNING');
      await workflow.terminate('test over: no worker polls this queue');
    } finally {
      await server.close();
    }
  });
});
