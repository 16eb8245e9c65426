/**
 * The subscription change routes over HTTP on the real stack (API, a worker with the real
 * activities on the shared dev server, PostgreSQL, the sandbox gateway): plan changes now
 * (prorated: an upgrade's net charged, a downgrade's credited to the balance and spent by the
 * next renewal), changes scheduled for the period end, pause and resume, reactivate, and what is
 * refused without a trace. Plans renew every 30 s and each change is made in the first seconds of
 * a period, so nothing renews under a test that does not wait for it on purpose.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { asc, eq } from 'drizzle-orm';
import { creditEntries, payments, sandboxIntents } from '../db/schema';
import { createTestUser, requestJson, type TestUser } from './support/api';
import {
  createPlan,
  getSubscription,
  requestCancel,
  requestPaymentMethodChange,
  startSubscriptionStack,
  subscribe,
  waitFor,
  type SubscriptionStack,
} from './support/subscription-stack';

const PERIOD = 'PT30S';
const DUNNING = { retryOffsets: ['PT10S', 'PT20S'], reminderOffsets: ['PT5S', 'PT15S'], gracePeriod: 'PT30S' };
const VISA = 'pm_card_visa';

let stack: SubscriptionStack;
/** 10.00 USD every 30 s. */
let basicPlanId: string;
/** 30.00 USD every 30 s. */
let proPlanId: string;
/** 30.00 EUR every 30 s. */
let euroPlanId: string;

before(async () => {
  stack = await startSubscriptionStack();
  basicPlanId = await createPlan(stack, { name: 'Basic', amount: 1000, interval: PERIOD, dunning: DUNNING });
  proPlanId = await createPlan(stack, { name: 'Pro', amount: 3000, interval: PERIOD, dunning: DUNNING });
  euroPlanId = await createPlan(stack, { name: 'Euro', amount: 3000, currency: 'eur', interval: PERIOD, dunning: DUNNING });
});

after(() => stack?.close());

const subscriptionsUrl = (id: string, tail = '') => `${stack.url}/api/v1/subscriptions/${id}${tail}`;

function requestChange(user: TestUser, id: string, body: unknown, headers: Record<string, string> = {}) {
  return requestJson(subscriptionsUrl(id, '/change'), { body, headers: { ...user.headers, ...headers } });
}

function requestPreview(user: TestUser, id: string, query: Record<string, string>) {
  return requestJson(`${subscriptionsUrl(id, '/change-preview')}?${new URLSearchParams(query).toString()}`, { headers: user.headers });
}

/** POST …/pause, …/resume or …/reactivate; a body only where given. */
function requestAction(user: TestUser, id: string, action: 'pause' | 'resume' | 'reactivate', body?: unknown) {
  return requestJson(subscriptionsUrl(id, `/${action}`), { method: 'POST', body, headers: user.headers });
}

function withdrawScheduledChange(user: TestUser, id: string) {
  return requestJson(subscriptionsUrl(id, '/scheduled-change'), { method: 'DELETE', headers: user.headers });
}

/** A new customer's subscription to `planId`, paid with a good card. */
async function activeSubscription(planId: string) {
  const user = await createTestUser(stack.deps);
  const res = await subscribe(stack, user, { planId, paymentMethod: VISA });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  assert.equal(res.body.subscription.status, 'active');
  return { user, id: res.body.subscription.id as string, subscription: res.body.subscription as Record<string, any> };
}

async function readSubscription(user: TestUser, id: string): Promise<Record<string, any>> {
  const res = await getSubscription(stack, user, id);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.subscription;
}

/** The subscription's payment rows, oldest first. */
function paymentRows(subscriptionId: string) {
  return stack.deps.db.select().from(payments).where(eq(payments.subscriptionId, subscriptionId)).orderBy(asc(payments.createdAt));
}

/** The customer's credit balance in `currency`, as GET /api/v1/billing/balance shows it. */
async function creditBalance(user: TestUser, currency = 'usd'): Promise<number> {
  const res = await requestJson(`${stack.url}/api/v1/billing/balance`, { headers: user.headers });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const balances = res.body.balances as { currency: string; amount: number }[];
  return balances.find((balance) => balance.currency === currency)?.amount ?? 0;
}

/** The workflow's accepted updates: a refusal by a validator leaves none. */
async function acceptedUpdates(workflowId: string): Promise<number> {
  const history = await stack.deps.temporal.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).filter((event) => event.workflowExecutionUpdateAcceptedEventAttributes).length;
}

function assertProration(proration: Record<string, any>, expected: { from: number; to: number; periodEnd: string }) {
  assert.equal(proration.currency, 'usd');
  assert.equal(proration.periodEnd, expected.periodEnd);
  assert.equal(proration.net, proration.charge - proration.credit);
  assert.ok(proration.credit > 0 && proration.credit <= expected.from, `credit ${proration.credit} of ${expected.from}`);
  assert.ok(proration.charge > 0 && proration.charge <= expected.to, `charge ${proration.charge} of ${expected.to}`);
  // The same unused share of the period on both sides (each rounded down, so within one minor unit).
  assert.ok(Math.abs(proration.charge * expected.from - proration.credit * expected.to) <= Math.max(expected.from, expected.to));
}

function invalidNames(body: { invalidParams?: { name: string }[] }): string[] {
  return (body.invalidParams ?? []).map((p) => p.name).sort();
}

describe('a plan change now', () => {
  test('an upgrade charges the prorated net; the preview before it answered the same kind of numbers and changed nothing', async () => {
    const { user, id, subscription } = await activeSubscription(basicPlanId);
    const periodEnd = subscription.currentPeriodEnd as string;

    const preview = await requestPreview(user, id, { planId: proPlanId });
    assert.equal(preview.status, 200, JSON.stringify(preview.body));
    assertProration(preview.body.proration, { from: 1000, to: 3000, periodEnd });
    assert.ok(preview.body.proration.net > 0);
    // No coupon, no tax: what is due is the net itself, and nothing is credited.
    assert.deepEqual([preview.body.amountDue, preview.body.credit], [preview.body.proration.net, 0]);
    assert.equal((await paymentRows(id)).length, 1, 'the preview charged nothing');
    assert.deepEqual(await readSubscription(user, id), subscription, 'the preview changed nothing');

    const res = await requestChange(user, id, { planId: proPlanId });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const { proration, payment } = res.body;
    assertProration(proration, { from: 1000, to: 3000, periodEnd });
    assert.ok(proration.net > 0);
    // Asked later than the preview: no more of the period is left unused.
    assert.ok(proration.credit <= preview.body.proration.credit && proration.charge <= preview.body.proration.charge);
    assert.deepEqual(
      { kind: payment.kind, status: payment.status, amount: payment.amount, currency: payment.currency, subscriptionId: payment.subscriptionId },
      { kind: 'subscription', status: 'succeeded', amount: proration.net, currency: 'usd', subscriptionId: id },
    );
    assert.ok(payment.gatewayPaymentId, 'charged at the gateway (the customer had no credit)');
    const changed = res.body.subscription;
    assert.deepEqual(
      [changed.planId, changed.status, changed.quantity, changed.currentPeriodStart, changed.currentPeriodEnd, changed.nextBillingDate],
      [proPlanId, 'active', 1, subscription.currentPeriodStart, periodEnd, periodEnd],
    );
    assert.deepEqual(await readSubscription(user, id), changed);

    const rows = await paymentRows(id);
    assert.equal(rows.length, 2);
    const row = rows.find((r) => r.id === payment.id);
    assert.deepEqual([row?.amount, row?.status, row?.creditApplied], [proration.net, 'succeeded', 0]);
  });

  test('a downgrade credits the balance, charges nothing, and the next renewal spends the credit first', async () => {
    const { user, id, subscription } = await activeSubscription(proPlanId);
    const res = await requestChange(user, id, { planId: basicPlanId, when: 'now' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const { proration } = res.body;
    assertProration(proration, { from: 3000, to: 1000, periodEnd: subscription.currentPeriodEnd });
    assert.ok(proration.net < 0);
    assert.equal(res.body.payment, null);
    assert.equal(res.body.subscription.planId, basicPlanId);
    assert.equal(res.body.subscription.currentPeriodEnd, subscription.currentPeriodEnd);
    assert.equal((await paymentRows(id)).length, 1, 'nothing charged');

    const credit = -proration.net;
    assert.equal(await creditBalance(user), credit);
    const entries = await stack.deps.db.select().from(creditEntries).where(eq(creditEntries.userId, user.user.id));
    assert.deepEqual(
      entries.map((e) => [e.kind, e.amount]),
      [['proration', credit]],
    );

    // The renewal at the period's end, on the new plan's price, from the balance first.
    const rows = await waitFor(
      () => paymentRows(id),
      (found) => found.some((r) => r.cycle === 2 && r.status !== 'pending'),
      { timeoutMs: 90_000, intervalMs: 500, what: 'the renewal' },
    );
    assert.equal(rows.length, 2, JSON.stringify(rows));
    const renewal = rows.find((r) => r.cycle === 2)!;
    const applied = Math.min(credit, 1000);
    assert.deepEqual([renewal.amount, renewal.status, renewal.creditApplied], [1000, 'succeeded', applied]);
    assert.equal(await creditBalance(user), credit - applied);
    const intents = await stack.deps.db.select().from(sandboxIntents).where(eq(sandboxIntents.idempotencyKey, renewal.idempotencyKey));
    if (applied === 1000) {
      assert.equal(renewal.gatewayPaymentId, null, 'covered by the credit: no gateway call');
      assert.deepEqual(intents, [], 'the sandbox gateway was never asked');
    } else {
      // Changed late in the period: the card paid what the credit left.
      assert.deepEqual(
        intents.map((i) => [i.id, i.amount]),
        [[renewal.gatewayPaymentId, 1000 - applied]],
      );
    }
    const renewed = await readSubscription(user, id);
    assert.deepEqual([renewed.planId, renewed.currentPeriodStart], [basicPlanId, subscription.currentPeriodEnd]);
  });

  test('the same Idempotency-Key twice is one change and one charge', async () => {
    const { user, id } = await activeSubscription(basicPlanId);
    const key = randomUUID();
    const first = await requestChange(user, id, { planId: proPlanId }, { 'idempotency-key': key });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const again = await requestChange(user, id, { planId: proPlanId }, { 'idempotency-key': key });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.payment.id, first.body.payment.id);
    assert.deepEqual(again.body.proration, first.body.proration);

    const rows = await paymentRows(id);
    assert.equal(rows.length, 2, 'the first period and one change');
    assert.equal(rows.filter((r) => r.idempotencyKey.endsWith('/change-1')).length, 1);
    assert.equal(rows.filter((r) => r.idempotencyKey.includes('/change-')).length, 1);
  });
});

describe('a plan change at the period end', () => {
  test('is shown on the subscription until withdrawn; withdrawing it twice is a 409', async () => {
    const { user, id, subscription } = await activeSubscription(basicPlanId);
    const res = await requestChange(user, id, { planId: proPlanId, quantity: 2, when: 'period_end' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual([res.body.proration, res.body.payment], [null, null]);
    const scheduled = { planId: proPlanId, quantity: 2, at: subscription.currentPeriodEnd };
    assert.deepEqual(res.body.subscription.scheduledChange, scheduled);
    assert.deepEqual([res.body.subscription.planId, res.body.subscription.quantity], [basicPlanId, 1], 'the terms in force stay');
    assert.deepEqual((await readSubscription(user, id)).scheduledChange, scheduled);
    assert.equal((await paymentRows(id)).length, 1);

    const withdrawn = await withdrawScheduledChange(user, id);
    assert.equal(withdrawn.status, 200, JSON.stringify(withdrawn.body));
    assert.equal(withdrawn.body.subscription.scheduledChange, null);
    assert.deepEqual(await readSubscription(user, id), subscription);

    const again = await withdrawScheduledChange(user, id);
    assert.equal(again.status, 409);
    assert.match(again.body.detail, /no plan change is scheduled/);
  });
});

describe('pause, resume and reactivate', () => {
  test('a pause with resumesAt shows it; resume withdraws the pause before it starts, charging nothing', async () => {
    const { user, id, subscription } = await activeSubscription(basicPlanId);
    const resumesAt = new Date(Date.parse(subscription.currentPeriodEnd) + 5 * 60_000).toISOString();
    const paused = await requestAction(user, id, 'pause', { resumesAt });
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    assert.equal(paused.body.subscription.resumesAt, resumesAt);
    assert.equal(paused.body.subscription.status, 'active', 'paused only once the paid period ends');
    assert.equal(paused.body.subscription.nextBillingDate, resumesAt);
    assert.equal(paused.body.subscription.pauseAt, subscription.currentPeriodEnd);
    assert.deepEqual(await readSubscription(user, id), paused.body.subscription);

    const again = await requestAction(user, id, 'pause', {});
    assert.equal(again.status, 409);
    assert.match(again.body.detail, /pause is already scheduled/);

    const resumed = await requestAction(user, id, 'resume');
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
    assert.equal(resumed.body.payment, null);
    assert.deepEqual(resumed.body.subscription, subscription);
    assert.equal((await paymentRows(id)).length, 1);

    const notPaused = await requestAction(user, id, 'resume');
    assert.equal(notPaused.status, 409);
    assert.match(notPaused.body.detail, /active, not paused/);
  });

  test('a resumesAt in the past, or within the paid period, is a 400 naming resumesAt and changes nothing', async () => {
    const { user, id, subscription } = await activeSubscription(basicPlanId);
    const updates = await acceptedUpdates(subscription.workflowId);
    const past = await requestAction(user, id, 'pause', { resumesAt: new Date(Date.now() - 60_000).toISOString() });
    assert.equal(past.status, 400);
    assert.deepEqual(invalidNames(past.body), ['resumesAt']);

    const early = new Date(Date.parse(subscription.currentPeriodEnd) - 1_000).toISOString();
    const withinPeriod = await requestAction(user, id, 'pause', { resumesAt: early });
    assert.equal(withinPeriod.status, 400, JSON.stringify(withinPeriod.body));
    assert.deepEqual(invalidNames(withinPeriod.body), ['resumesAt']);

    assert.deepEqual(await readSubscription(user, id), subscription);
    assert.equal(await acceptedUpdates(subscription.workflowId), updates, 'refused by the validator: not in the history');
  });

  test('reactivate withdraws a cancel at the period end; when not canceling it is a 409 naming the state', async () => {
    const { user, id, subscription } = await activeSubscription(basicPlanId);
    const notCanceling = await requestAction(user, id, 'reactivate');
    assert.equal(notCanceling.status, 409);
    assert.match(notCanceling.headers.get('content-type') ?? '', /application\/problem\+json/);
    assert.match(notCanceling.body.detail, /the subscription is active and not set to cancel/);

    const canceling = await requestCancel(stack, user, { subscriptionId: id, atPeriodEnd: true });
    assert.equal(canceling.status, 200);
    assert.equal(canceling.body.subscription.cancelAtPeriodEnd, true);
    const refused = await requestChange(user, id, { planId: proPlanId });
    assert.equal(refused.status, 409, 'no plan change while it cancels');
    assert.match(refused.body.detail, /reactivate it first/);

    const reactivated = await requestAction(user, id, 'reactivate');
    assert.equal(reactivated.status, 200, JSON.stringify(reactivated.body));
    assert.equal(reactivated.body.subscription.cancelAtPeriodEnd, false);
    assert.equal(reactivated.body.subscription.canceledAt, null);
    assert.equal(reactivated.body.subscription.nextBillingDate, subscription.currentPeriodEnd);
    assert.deepEqual(await readSubscription(user, id), reactivated.body.subscription);
  });
});

describe('refusals leave no trace', () => {
  test('bad input is a 400 naming the field; another currency a 409; another customer’s subscription a 404', async () => {
    const { user, id, subscription } = await activeSubscription(basicPlanId);
    const updates = await acceptedUpdates(subscription.workflowId);
    for (const quantity of [0, 10_001, 1.5]) {
      const res = await requestChange(user, id, { quantity });
      assert.equal(res.status, 400, `quantity ${quantity}`);
      assert.deepEqual(invalidNames(res.body), ['quantity']);
    }
    const unknownPlan = await requestChange(user, id, { planId: randomUUID() });
    assert.equal(unknownPlan.status, 400);
    assert.deepEqual(invalidNames(unknownPlan.body), ['planId']);
    const empty = await requestChange(user, id, { when: 'now' });
    assert.equal(empty.status, 400);
    assert.deepEqual(invalidNames(empty.body), ['planId']);
    const unknownField = await requestChange(user, id, { planId: proPlanId, coupon: 'X' });
    assert.equal(unknownField.status, 400);

    const euro = await requestChange(user, id, { planId: euroPlanId });
    assert.equal(euro.status, 409);
    assert.match(euro.body.detail, /eur.*usd/);
    const euroPreview = await requestPreview(user, id, { planId: euroPlanId });
    assert.equal(euroPreview.status, 409);
    const samePlan = await requestChange(user, id, { planId: basicPlanId });
    assert.equal(samePlan.status, 409);

    const stranger = await createTestUser(stack.deps);
    assert.equal((await requestChange(stranger, id, { planId: proPlanId })).status, 404);
    assert.equal((await requestPreview(stranger, id, { planId: proPlanId })).status, 404);
    assert.equal((await requestAction(stranger, id, 'pause', {})).status, 404);
    assert.equal((await withdrawScheduledChange(stranger, id)).status, 404);
    assert.equal((await requestChange(user, randomUUID(), { planId: proPlanId })).status, 404);

    assert.deepEqual(await readSubscription(user, id), subscription);
    assert.equal((await paymentRows(id)).length, 1);
    assert.equal(await acceptedUpdates(subscription.workflowId), updates, 'refused by the validator: not in the history');
  });

  test('a past-due subscription cannot change (409), nor a canceled one', async () => {
    // Renews every 3 s, so the declining card is charged soon; then past due for a minute.
    const quickPlanId = await createPlan(stack, {
      interval: 'PT3S',
      dunning: { retryOffsets: ['PT40S', 'PT50S'], reminderOffsets: ['PT20S', 'PT30S'], gracePeriod: 'PT60S' },
    });
    const pastDue = await activeSubscription(quickPlanId);
    assert.equal((await requestPaymentMethodChange(stack, pastDue.user, pastDue.id, 'pm_card_chargeDeclined')).status, 200);
    await waitFor(
      () => readSubscription(pastDue.user, pastDue.id),
      (s) => s.status === 'past_due',
      { timeoutMs: 30_000, what: 'past due' },
    );
    const refused = await requestChange(pastDue.user, pastDue.id, { quantity: 2 });
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.match(refused.body.detail, /past_due/);
    const pause = await requestAction(pastDue.user, pastDue.id, 'pause', {});
    assert.equal(pause.status, 409);
    const stillPastDue = await readSubscription(pastDue.user, pastDue.id);
    assert.deepEqual([stillPastDue.status, stillPastDue.quantity], ['past_due', 1]);

    const canceled = await activeSubscription(basicPlanId);
    const cancel = await requestCancel(stack, canceled.user, { subscriptionId: canceled.id, atPeriodEnd: false });
    assert.equal(cancel.body.subscription.status, 'canceled');
    const afterCancel = await requestChange(canceled.user, canceled.id, { planId: proPlanId });
    assert.equal(afterCancel.status, 409);
    assert.match(afterCancel.body.detail, /canceled/);
    assert.equal((await requestAction(canceled.user, canceled.id, 'resume')).status, 409);
    assert.equal((await paymentRows(canceled.id)).length, 1);
  });
});
