/**
 * The invoice of a failed renewal on the real stack (API, a worker with the real activities on the
 * shared dev server, PostgreSQL, the sandbox gateway): numbered `open` when dunning starts, so the
 * renewal-failed notice and the reminders name it; `void` once a new card pays the period (whose
 * own charge has a paid invoice) or the subscription is canceled; `uncollectible` when it expires.
 * Plans renew every 4 s; a card switched to a declining one makes the renewal fail.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { asc, eq } from 'drizzle-orm';
import { notifications } from '../db/schema';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { activeSubscription, DECLINED, pastDueSubscription, VISA } from './support/staff-fixtures';
import {
  createPlan,
  readInvoice,
  requestCancel,
  requestPaymentMethodChange,
  startSubscriptionStack,
  subscriptionDetail,
  waitFor,
  type SubscriptionStack,
} from './support/subscription-stack';

let stack: SubscriptionStack;
/** 10.00 USD + 10 % tax every 4 s; past due for a minute after a failed renewal (one retry at +50 s). */
let slowDunningPlanId: string;
/** 10.00 USD + 10 % tax every 4 s; a failed renewal is retried at +2 s and +4 s and expires at +6 s. */
let quickDunningPlanId: string;

before(async () => {
  stack = await startSubscriptionStack();
  slowDunningPlanId = await createPlan(stack, {
    amount: 1000,
    taxRate: 1000,
    dunning: { retryOffsets: ['PT50S'], reminderOffsets: ['PT40S'], gracePeriod: 'PT60S' },
  });
  quickDunningPlanId = await createPlan(stack, { amount: 1000, taxRate: 1000 });
});

after(() => stack?.close());

const api = (path: string) => `${stack.url}/api/v1${path}`;
const year = new Date().getUTCFullYear();

const detail = (user: TestUser, id: string) => subscriptionDetail(stack, user, id);

const invoice = (user: TestUser, id: string) => readInvoice(stack, user, id);

/** The failed renewal's charge (cycle 2, attempt 1) once its invoice is written. */
async function failedRenewal(user: TestUser, id: string): Promise<Record<string, any>> {
  const found = await waitFor(
    async () => (await detail(user, id)).payments.find((p) => p.status === 'failed' && p.attempt === 1),
    (p) => p?.invoiceId != null,
    { what: 'the failed renewal’s invoice' },
  );
  return found!;
}

/** The subscription's notices of `kind` (subject and body), once there are `count` of them. */
function noticesOf(subscriptionId: string, kind: string, count = 1) {
  return waitFor(
    () =>
      stack.deps.db
        .select()
        .from(notifications)
        .where(eq(notifications.subscriptionId, subscriptionId))
        .orderBy(asc(notifications.createdAt))
        .then((rows) => rows.filter((n) => n.kind === kind)),
    (rows) => rows.length >= count,
    { what: `${count} ${kind} notice(s) of ${subscriptionId}`, timeoutMs: 30_000 },
  );
}

function assertNames(notice: { subject: string; body: string }, number: string): void {
  assert.ok(notice.subject.endsWith(` (${number})`), notice.subject);
  assert.match(notice.body, new RegExp(`^Invoice: ${number}$`, 'm'));
}

async function booksBalance(user: TestUser): Promise<void> {
  const res = await requestJson(api(`/admin/reconciliation?userId=${user.user.id}`), { headers: stack.staff.headers });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body.differences, []);
}

describe('the invoice of a failed renewal', () => {
  test('open while past due and named by the renewal-failed notice; void once a new card pays the period', async () => {
    const user = await createTestUser(stack.deps);
    const { id } = await pastDueSubscription(stack, user, slowDunningPlanId);
    const failed = await failedRenewal(user, id);
    const open = await invoice(user, failed.invoiceId);
    assert.match(open.number, new RegExp(`^INV-${year}-\\d{6}$`));
    assert.deepEqual([open.status, open.paymentId, open.subtotal, open.tax, open.total, open.amountPaid], ['open', failed.id, 1000, 100, 1100, 0]);
    assert.equal(failed.amount, 1100);
    const [renewalFailed] = await noticesOf(id, 'payment_failed');
    assertNames(renewalFailed, open.number);

    const recovered = await requestPaymentMethodChange(stack, user, id, VISA);
    assert.equal(recovered.status, 200, JSON.stringify(recovered.body));
    assert.equal(recovered.body.subscription.status, 'active');
    const recoveredDetail = await detail(user, id);
    const retry = recoveredDetail.payments.find((p) => p.status === 'succeeded' && p.attempt > 1);
    assert.ok(retry, JSON.stringify(recoveredDetail.payments));
    const paid = await invoice(user, retry.invoiceId);
    assert.deepEqual([paid.status, paid.total, paid.amountPaid], ['paid', 1100, 1100]);
    assert.notEqual(paid.number, open.number);
    const voided = await invoice(user, failed.invoiceId);
    assert.deepEqual([voided.id, voided.number, voided.status, voided.amountPaid], [open.id, open.number, 'void', 0]);

    const receipts = await noticesOf(id, 'payment_succeeded', 2);
    assertNames(receipts[1], paid.number);
    await booksBalance(user);
    assert.equal((await requestCancel(stack, user, { subscriptionId: id, atPeriodEnd: false })).status, 200);
  });

  test('void when the subscription is canceled while past due', async () => {
    const user = await createTestUser(stack.deps);
    const { id } = await pastDueSubscription(stack, user, slowDunningPlanId);
    const failed = await failedRenewal(user, id);
    assert.equal((await invoice(user, failed.invoiceId)).status, 'open');
    const canceled = await requestCancel(stack, user, { subscriptionId: id, atPeriodEnd: false });
    assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
    assert.equal(canceled.body.subscription.status, 'canceled');
    const voided = await waitFor(
      () => invoice(user, failed.invoiceId),
      (i) => i.status !== 'open',
      { what: 'the open invoice closed' },
    );
    assert.equal(voided.status, 'void');
    await booksBalance(user);
  });

  test('uncollectible when the grace period ends; the reminders and the final notice name it', async () => {
    const user = await createTestUser(stack.deps);
    const { id } = await activeSubscription(stack, user, quickDunningPlanId);
    assert.equal((await requestPaymentMethodChange(stack, user, id, DECLINED)).status, 200);
    const [expired] = await noticesOf(id, 'subscription_expired');
    const final = await detail(user, id);
    assert.equal(final.subscription.status, 'expired');
    const failures = final.payments.filter((p) => p.status === 'failed');
    assert.deepEqual(
      failures.map((p) => p.attempt),
      [1, 2, 3],
    );
    // One invoice for the unpaid period: the first failure's; the retries add none.
    const lost = await invoice(user, failures[0].invoiceId);
    assert.deepEqual([lost.status, lost.total, lost.amountPaid], ['uncollectible', 1100, 0]);
    assert.deepEqual(
      failures.slice(1).map((p) => p.invoiceId),
      [null, null],
    );
    assertNames(expired, lost.number);
    for (const reminder of await noticesOf(id, 'grace_reminder', 2)) assertNames(reminder, lost.number);
    await booksBalance(user);
  });
});
