/**
 * Coupons on subscriptions over HTTP on the real stack (API, a worker with the real activities on
 * the shared dev server, PostgreSQL, Redis, the sandbox gateway): a coupon at subscribe prices the
 * first charges (seats × plan, less the coupon, plus the plan's exclusive tax) and its invoices,
 * counts its cycles down and then leaves the full price; a 100 % coupon makes a free first period
 * that never reaches the gateway; refusals create nothing; a declined first charge gives the
 * coupon's place back; a coupon applied to a live subscription prices its next renewal. The
 * receipts name their invoices. Plans renew every 5 s, so renewals are awaited in real time.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { asc, eq } from 'drizzle-orm';
import { coupons, idempotencyRecords, notifications, paymentMethods, payments, subscriptions } from '../db/schema';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { DECLINED, VISA } from './support/staff-fixtures';
import {
  createPlan,
  readInvoice,
  requestCancel,
  startSubscriptionStack,
  subscriptionDetail,
  subscribe,
  waitFor,
  type SubscriptionStack,
} from './support/subscription-stack';

const PERIOD = 'PT5S';
// Nothing declines here: dunning never starts.
const DUNNING = { retryOffsets: ['PT50S'], reminderOffsets: ['PT40S'], gracePeriod: 'PT60S' };

let stack: SubscriptionStack;
/** 10.00 USD a seat every 5 s, plus 20 % tax. */
let taxedPlanId: string;
/** 10.00 USD every 30 s, untaxed: nothing renews under a test. */
let slowPlanId: string;

before(async () => {
  stack = await startSubscriptionStack();
  taxedPlanId = await createPlan(stack, { amount: 1000, taxRate: 2000, interval: PERIOD, dunning: DUNNING });
  slowPlanId = await createPlan(stack, { amount: 1000, interval: 'PT30S', dunning: DUNNING });
});

after(() => stack?.close());

const api = (path: string) => `${stack.url}/api/v1${path}`;
const uniqueCode = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

async function createCoupon(terms: Record<string, unknown>): Promise<{ id: string; code: string }> {
  const res = await requestJson(api('/admin/coupons'), { body: { code: uniqueCode('C'), ...terms }, headers: stack.staff.headers });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.coupon;
}

const detail = (user: TestUser, id: string) => subscriptionDetail(stack, user, id);

const invoice = (user: TestUser, id: string) => readInvoice(stack, user, id);

function paymentRows(subscriptionId: string) {
  return stack.deps.db.select().from(payments).where(eq(payments.subscriptionId, subscriptionId)).orderBy(asc(payments.createdAt));
}

/** The subscription's payments once period `cycle` has been paid. */
function paidThrough(subscriptionId: string, cycle: number) {
  return waitFor(
    () => paymentRows(subscriptionId),
    (rows) => rows.some((r) => r.cycle === cycle && r.status === 'succeeded'),
    { timeoutMs: 45_000, intervalMs: 250, what: `period ${cycle} of ${subscriptionId} paid` },
  );
}

async function redemptionCount(couponId: string): Promise<number> {
  const [row] = await stack.deps.db.select({ count: coupons.redemptionCount }).from(coupons).where(eq(coupons.id, couponId));
  return row.count;
}

function validate(user: TestUser, code: string) {
  return requestJson(api(`/coupons/validate?code=${encodeURIComponent(code)}`), { headers: user.headers });
}

const invalidNames = (body: { invalidParams?: { name: string }[] }) => (body.invalidParams ?? []).map((p) => p.name);

/** What a line of the plan's invoice shows, for comparing. */
const lineOf = (l: Record<string, any>) => [l.kind, l.quantity, l.unitAmount, l.amount, l.discount, l.taxRate, l.tax, l.total];

async function cancelNow(user: TestUser, id: string): Promise<void> {
  const res = await requestCancel(stack, user, { subscriptionId: id, atPeriodEnd: false });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}

describe('a coupon at subscribe', () => {
  test('25 % for 2 cycles on 2 taxed seats: 2 periods discounted then full price, each invoiced and named in its receipt', async () => {
    const coupon = await createCoupon({ percentOff: 25, duration: 'repeating', durationInCycles: 2 });
    const user = await createTestUser(stack.deps);
    const res = await subscribe(stack, user, { planId: taxedPlanId, quantity: 2, paymentMethod: VISA, couponCode: coupon.code.toLowerCase() });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const { subscription, payment } = res.body;
    // (2 × 1000 − 25 %) = 1500, + 20 % tax = 300.
    assert.deepEqual([payment.status, payment.amount, payment.currency], ['succeeded', 1800, 'usd']);
    assert.deepEqual(subscription.discount, {
      couponCode: coupon.code,
      percentOff: 25,
      amountOff: null,
      currency: null,
      duration: 'repeating',
      remainingCycles: 1,
    });
    const first = await invoice(user, payment.invoiceId);
    assert.deepEqual(
      [first.status, first.subtotal, first.discount, first.tax, first.total, first.amountPaid, first.paymentId],
      ['paid', 2000, 500, 300, 1800, 1800, payment.id],
    );
    assert.deepEqual(first.lines.map(lineOf), [['plan', 2, 1000, 2000, 500, 2000, 300, 1800]]);
    assert.equal(await redemptionCount(coupon.id), 1);

    const rows = await paidThrough(subscription.id, 3);
    assert.deepEqual(
      rows.map((r) => [r.cycle, r.status, r.amount]),
      [
        [1, 'succeeded', 1800],
        [2, 'succeeded', 1800],
        [3, 'succeeded', 2400],
      ],
    );
    const third = await invoice(user, rows[2].invoiceId!);
    assert.deepEqual([third.subtotal, third.discount, third.tax, third.total], [2000, 0, 400, 2400]);
    assert.equal((await detail(user, subscription.id)).subscription.discount, null, 'used up: no longer shown');

    // Each receipt names its period's invoice, in the subject and on a line of the body.
    const numbers = await Promise.all(rows.map(async (r) => (await invoice(user, r.invoiceId!)).number as string));
    const receipts = await waitFor(
      () => stack.deps.db.select().from(notifications).where(eq(notifications.subscriptionId, subscription.id)).orderBy(asc(notifications.createdAt)),
      (found) => found.filter((n) => n.kind === 'payment_succeeded').length >= 3,
      { what: 'three receipts' },
    );
    const paidNotices = receipts.filter((n) => n.kind === 'payment_succeeded').slice(0, 3);
    assert.deepEqual(
      paidNotices.map((n, i) => n.subject.endsWith(` (${numbers[i]})`)),
      [true, true, true],
      JSON.stringify(paidNotices.map((n) => n.subject)),
    );
    for (const [i, n] of paidNotices.entries()) assert.match(n.body, new RegExp(`^Invoice: ${numbers[i]}$`, 'm'));
    const listed = (await detail(user, subscription.id)).notifications.filter((n) => n.kind === 'payment_succeeded');
    assert.ok(listed[0].subject.includes(numbers[0]), 'the read route shows the subject with its number');
    await cancelNow(user, subscription.id);
  });

  test('100 % once: a free first period paid without the gateway, invoiced at 0; the next period in full', async () => {
    const coupon = await createCoupon({ percentOff: 100, duration: 'once' });
    const user = await createTestUser(stack.deps);
    const res = await subscribe(stack, user, { planId: taxedPlanId, paymentMethod: VISA, couponCode: coupon.code });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const { subscription, payment } = res.body;
    assert.equal(subscription.status, 'active');
    assert.deepEqual([payment.status, payment.amount, payment.gatewayPaymentId], ['succeeded', 0, null]);
    assert.equal(subscription.discount, null, 'a once coupon is used up by the first period');
    const free = await invoice(user, payment.invoiceId);
    assert.deepEqual([free.status, free.subtotal, free.discount, free.tax, free.total, free.amountPaid], ['paid', 1000, 1000, 0, 0, 0]);

    const rows = await paidThrough(subscription.id, 2);
    const renewal = rows.find((r) => r.cycle === 2)!;
    assert.equal(renewal.amount, 1200, 'the plan with its tax, no discount');
    assert.ok(renewal.gatewayPaymentId, 'charged at the gateway');
    const receipt = await waitFor(
      async () => (await detail(user, subscription.id)).notifications.find((n) => n.kind === 'payment_succeeded'),
      (n) => n !== undefined,
      { what: 'the first receipt' },
    );
    assert.ok(receipt!.subject.endsWith(` (${free.number})`), receipt!.subject);
    await cancelNow(user, subscription.id);
  });
});

describe('coupons refused at subscribe', () => {
  test('an unknown code is a 422 naming couponCode (a malformed one a 400); an exhausted one a 409; none creates a subscription, a payment or a saved card', async () => {
    const user = await createTestUser(stack.deps);
    const unknown = await subscribe(stack, user, { planId: slowPlanId, paymentMethod: VISA, couponCode: uniqueCode('NOPE') });
    assert.equal(unknown.status, 422, JSON.stringify(unknown.body));
    assert.deepEqual(invalidNames(unknown.body), ['couponCode']);
    const malformed = await subscribe(stack, user, { planId: slowPlanId, paymentMethod: VISA, couponCode: 'no spaces' });
    assert.equal(malformed.status, 400);
    assert.deepEqual(invalidNames(malformed.body), ['couponCode']);

    const coupon = await createCoupon({ percentOff: 10, duration: 'once', maxRedemptions: 1 });
    const first = await createTestUser(stack.deps);
    const taken = await subscribe(stack, first, { planId: slowPlanId, paymentMethod: VISA, couponCode: coupon.code });
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    assert.equal(taken.body.payment.amount, 900);
    const exhausted = await subscribe(stack, user, { planId: slowPlanId, paymentMethod: VISA, couponCode: coupon.code });
    assert.equal(exhausted.status, 409, JSON.stringify(exhausted.body));
    assert.equal(exhausted.body.reason, 'exhausted');
    assert.deepEqual(invalidNames(exhausted.body), ['couponCode']);
    const again = await subscribe(stack, first, { planId: slowPlanId, paymentMethod: VISA, couponCode: coupon.code });
    assert.deepEqual([again.status, again.body.reason], [409, 'already_redeemed']);
    const elsewhere = await createCoupon({ percentOff: 10, duration: 'once', appliesToPlans: [taxedPlanId] });
    const notApplicable = await subscribe(stack, user, { planId: slowPlanId, paymentMethod: VISA, couponCode: elsewhere.code });
    assert.deepEqual([notApplicable.status, notApplicable.body.reason], [409, 'not_applicable']);

    assert.deepEqual(await stack.deps.db.select().from(subscriptions).where(eq(subscriptions.userId, user.user.id)), []);
    assert.deepEqual(await stack.deps.db.select().from(payments).where(eq(payments.userId, user.user.id)), []);
    assert.deepEqual(await stack.deps.db.select().from(paymentMethods).where(eq(paymentMethods.userId, user.user.id)), [], 'no card saved');
    assert.equal((await stack.deps.db.select().from(payments).where(eq(payments.userId, first.user.id))).length, 1);
    assert.equal(await redemptionCount(coupon.id), 1);
    await cancelNow(first, taken.body.subscription.id);
  });

  test('a declined first charge gives the place back; a retry with the same key is still a 402 and takes none', async () => {
    const coupon = await createCoupon({ percentOff: 50, duration: 'once', maxRedemptions: 1 });
    const user = await createTestUser(stack.deps);
    const body = { planId: slowPlanId, paymentMethod: DECLINED, couponCode: coupon.code };
    const headers = { 'idempotency-key': randomUUID() };
    const declined = await subscribe(stack, user, body, headers);
    assert.equal(declined.status, 402, JSON.stringify(declined.body));
    assert.equal(declined.body.payment.amount, 500, 'priced with the coupon');
    assert.equal(await redemptionCount(coupon.id), 0);
    const other = await createTestUser(stack.deps);
    assert.equal((await validate(other, coupon.code)).body.valid, true);

    const retry = await subscribe(stack, user, body, headers);
    assert.equal(retry.status, 402, JSON.stringify(retry.body));
    assert.equal(retry.body.subscription.id, declined.body.subscription.id);
    assert.equal(await redemptionCount(coupon.id), 0);
    // With the stored answer gone (retention sweeps it), the handler itself reaches the closed
    // workflow and its released redemption: still the 402, and still no place taken.
    await stack.deps.db.delete(idempotencyRecords).where(eq(idempotencyRecords.userId, user.user.id));
    const rerun = await subscribe(stack, user, body, headers);
    assert.equal(rerun.status, 402, JSON.stringify(rerun.body));
    assert.equal(rerun.headers.get('idempotent-replayed'), null, 'answered by the handler, not replayed');
    assert.deepEqual([rerun.body.subscription.id, rerun.body.payment.id], [declined.body.subscription.id, declined.body.payment.id]);
    assert.equal(await redemptionCount(coupon.id), 0);
    assert.equal((await paymentRows(declined.body.subscription.id)).length, 1, 'charged once');
    assert.equal((await validate(other, coupon.code)).body.valid, true);

    // The place is free for whoever comes next, the declined customer too (with a good card).
    const paid = await subscribe(stack, user, { ...body, paymentMethod: VISA });
    assert.equal(paid.status, 201, JSON.stringify(paid.body));
    assert.equal(paid.body.payment.amount, 500);
    assert.equal(await redemptionCount(coupon.id), 1);
    await cancelNow(user, paid.body.subscription.id);
  });
});

describe('POST /api/v1/subscriptions/{id}/coupon', () => {
  const applyCoupon = (user: TestUser, id: string, couponCode: string) =>
    requestJson(api(`/subscriptions/${id}/coupon`), { body: { couponCode }, headers: user.headers });

  test('applies from the next renewal; an unknown code is a 422, another customer’s subscription a 404', async () => {
    const coupon = await createCoupon({ amountOff: 300, currency: 'usd', duration: 'forever' });
    const user = await createTestUser(stack.deps);
    const subscribed = await subscribe(stack, user, { planId: taxedPlanId, paymentMethod: VISA });
    assert.equal(subscribed.status, 201, JSON.stringify(subscribed.body));
    const { id } = subscribed.body.subscription;
    assert.equal(subscribed.body.payment.amount, 1200);
    assert.equal(subscribed.body.subscription.discount, null);

    const applied = await applyCoupon(user, id, coupon.code);
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const discount = { couponCode: coupon.code, percentOff: null, amountOff: 300, currency: 'usd', duration: 'forever', remainingCycles: null };
    assert.deepEqual(applied.body.subscription.discount, discount);
    assert.deepEqual((await detail(user, id)).subscription.discount, discount);
    assert.equal((await paymentRows(id)).length, 1, 'nothing charged now');

    const unknown = await applyCoupon(user, id, uniqueCode('NOPE'));
    assert.equal(unknown.status, 422);
    assert.deepEqual(invalidNames(unknown.body), ['couponCode']);
    const stranger = await createTestUser(stack.deps);
    const other = await createCoupon({ percentOff: 50, duration: 'once' });
    assert.equal((await applyCoupon(stranger, id, other.code)).status, 404);
    assert.equal(await redemptionCount(other.id), 0, 'the refused request took no place');
    assert.deepEqual((await detail(user, id)).subscription.discount, discount);

    // (1000 − 300) + 20 % = 840, on the renewal and every one after.
    const rows = await paidThrough(id, 2);
    const renewal = rows.find((r) => r.cycle === 2)!;
    assert.equal(renewal.amount, 840);
    const renewed = await invoice(user, renewal.invoiceId!);
    assert.deepEqual([renewed.subtotal, renewed.discount, renewed.tax, renewed.total], [1000, 300, 140, 840]);
    await cancelNow(user, id);
  });
});
