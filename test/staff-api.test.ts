/**
 * The staff API over HTTP on the dev server: each action reaches the workflow (a signal or an
 * update) and leaves an audit row; customers are refused, unknown ids are 404s, and the search
 * pages through subscriptions without gaps or repeats.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { and, asc, eq } from 'drizzle-orm';
import { auditLog, payments } from '../db/schema';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { createBooking, createOffering, placeHold, startBookingStack, type BookingStack } from './support/booking-stack';
import { activeSubscription, createDunningPlan, createMonthlyPlan, pastDueSubscription } from './support/staff-fixtures';
import { getSubscription, startSubscriptionStack, waitFor, type SubscriptionStack } from './support/subscription-stack';

type Stack = SubscriptionStack;

function post(stack: Stack, path: string, user: TestUser, body: unknown) {
  return requestJson(`${stack.url}/api/v1/admin${path}`, { body, headers: user.headers });
}

function get(stack: Stack, path: string, user: TestUser) {
  return requestJson(`${stack.url}/api/v1/admin${path}`, { headers: user.headers });
}

async function auditRows(stack: Stack, targetId: string) {
  return stack.deps.db.select().from(auditLog).where(eq(auditLog.targetId, targetId)).orderBy(asc(auditLog.id));
}

/** The fields a 400 names, each once. */
/** A body each subscription action accepts. */
const ACTION_BODIES: Record<string, Record<string, unknown>> = {
  'retry-payment': { reason: 'try' },
  'extend-grace': { period: 'P1D', reason: 'try' },
  cancel: { reason: 'try' },
};

function invalidNames(body: { invalidParams?: { name: string }[] }): string[] {
  return [...new Set((body.invalidParams ?? []).map((p) => p.name))].sort();
}

describe('staff API: subscriptions', () => {
  let stack: SubscriptionStack;
  let dunningPlan: { id: string; code: string };
  let monthlyPlan: { id: string; code: string };

  before(async () => {
    stack = await startSubscriptionStack();
    [dunningPlan, monthlyPlan] = await Promise.all([createDunningPlan(stack), createMonthlyPlan(stack)]);
  });

  after(() => stack?.close());

  test('retry-payment charges the unpaid period at once and is audited', async () => {
    const user = await createTestUser(stack.deps);
    const pastDue = await pastDueSubscription(stack, user, dunningPlan.id);
    assert.equal(pastDue.attemptCount, 1);

    const res = await post(stack, `/subscriptions/${pastDue.id}/retry-payment`, stack.staff, { reason: 'customer says the card works now' });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.subscription.id, pastDue.id);
    assert.equal(res.body.audit.action, 'subscription.retry_payment');

    // The retry runs now, long before the plan's own retry at +50 s.
    const retried = await waitFor(
      () => getSubscription(stack, user, pastDue.id),
      (r) => r.body.subscription.attemptCount === 2,
      {
        what: 'a second attempt',
      },
    );
    assert.equal(retried.body.subscription.status, 'past_due');
    assert.deepEqual(
      retried.body.payments.map((p: { status: string; attempt: number }) => [p.status, p.attempt]),
      [
        ['succeeded', 1],
        ['failed', 1],
        ['failed', 2],
      ],
    );
    const [audit] = await auditRows(stack, pastDue.id);
    assert.equal(audit.id, res.body.audit.id);
    assert.equal(audit.actorId, stack.staff.user.id);
    assert.equal(audit.action, 'subscription.retry_payment');
    assert.equal(audit.targetType, 'subscription');
    assert.equal(audit.reason, 'customer says the card works now');
    assert.deepEqual(audit.details, { workflowId: pastDue.workflowId });
  });

  test('extend-grace moves the expiry by the period and is audited', async () => {
    const user = await createTestUser(stack.deps);
    const pastDue = await pastDueSubscription(stack, user, dunningPlan.id);

    const res = await post(stack, `/subscriptions/${pastDue.id}/extend-grace`, stack.staff, { period: 'PT1H', reason: 'hospital stay' });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const extendedTo = new Date(new Date(pastDue.graceEndsAt).getTime() + 60 * 60 * 1000).toISOString();
    await waitFor(
      () => getSubscription(stack, user, pastDue.id),
      (r) => r.body.subscription.graceEndsAt === extendedTo,
      {
        what: `grace extended to ${extendedTo}`,
      },
    );
    const state = await stack.deps.temporal.workflow.getHandle(pastDue.workflowId).query<{ dunning: { log: { kind: string }[] } }>('state');
    assert.ok(state.dunning.log.some((entry) => entry.kind === 'grace_extended'));
    const [audit] = await auditRows(stack, pastDue.id);
    assert.equal(audit.action, 'subscription.extend_grace');
    assert.equal(audit.reason, 'hospital stay');
    assert.deepEqual(audit.details, { workflowId: pastDue.workflowId, period: 'PT1H', graceEndsAt: pastDue.graceEndsAt });
  });

  test('cancel goes through the workflow’s cancel update: at the period end by default, or now', async () => {
    const user = await createTestUser(stack.deps);
    const [later, now] = await Promise.all([activeSubscription(stack, user, monthlyPlan.id), activeSubscription(stack, user, monthlyPlan.id)]);

    const atPeriodEnd = await post(stack, `/subscriptions/${later.id}/cancel`, stack.staff, { reason: 'asked by phone' });
    assert.equal(atPeriodEnd.status, 200, JSON.stringify(atPeriodEnd.body));
    assert.equal(atPeriodEnd.body.subscription.status, 'active');
    assert.equal(atPeriodEnd.body.subscription.cancelAtPeriodEnd, true);

    const immediately = await post(stack, `/subscriptions/${now.id}/cancel`, stack.staff, { atPeriodEnd: false, reason: 'fraud' });
    assert.equal(immediately.status, 200, JSON.stringify(immediately.body));
    assert.equal(immediately.body.subscription.status, 'canceled');
    // The workflow ends once its cancellation notice is delivered, just after the update answers.
    const handle = stack.deps.temporal.workflow.getHandle(now.workflowId);
    await waitFor(
      () => handle.describe(),
      (d) => d.status.name === 'COMPLETED',
      { what: 'the workflow to complete' },
    );

    assert.deepEqual(
      (await auditRows(stack, now.id)).map((row) => [row.action, row.reason, row.details]),
      [['subscription.cancel', 'fraud', { workflowId: now.workflowId, atPeriodEnd: false }]],
    );
    const again = await post(stack, `/subscriptions/${now.id}/cancel`, stack.staff, { reason: 'twice' });
    assert.equal(again.status, 409);
    assert.equal((await auditRows(stack, now.id)).length, 1, 'a refused action is not audited');
  });

  test('actions need a reason, a past-due subscription for retries and grace, and a known id', async () => {
    const user = await createTestUser(stack.deps);
    const subscription = await activeSubscription(stack, user, monthlyPlan.id);

    const noReason = await post(stack, `/subscriptions/${subscription.id}/retry-payment`, stack.staff, {});
    assert.equal(noReason.status, 400);
    assert.deepEqual(invalidNames(noReason.body), ['reason']);
    const blank = await post(stack, `/subscriptions/${subscription.id}/extend-grace`, stack.staff, { period: 'P-1D', reason: '   ' });
    assert.equal(blank.status, 400);
    assert.deepEqual(invalidNames(blank.body), ['period', 'reason']);

    const notPastDue = await post(stack, `/subscriptions/${subscription.id}/retry-payment`, stack.staff, { reason: 'try' });
    assert.equal(notPastDue.status, 409);
    assert.equal((await post(stack, `/subscriptions/${subscription.id}/extend-grace`, stack.staff, { period: 'P1D', reason: 'try' })).status, 409);
    for (const [action, body] of Object.entries(ACTION_BODIES)) {
      const unknown = await post(stack, `/subscriptions/${randomUUID()}/${action}`, stack.staff, body);
      assert.equal(unknown.status, 404, action);
    }
    assert.equal((await auditRows(stack, subscription.id)).length, 0);
  });

  test('customers are refused every staff route; no token is a 401', async () => {
    const user = await createTestUser(stack.deps);
    const subscription = await activeSubscription(stack, user, monthlyPlan.id);
    assert.equal((await get(stack, '/subscriptions', user)).status, 403);
    for (const [action, body] of Object.entries(ACTION_BODIES)) {
      const res = await post(stack, `/subscriptions/${subscription.id}/${action}`, user, body);
      assert.equal(res.status, 403, action);
    }
    assert.equal((await requestJson(`${stack.url}/api/v1/admin/subscriptions`)).status, 401);
    const unchanged = await getSubscription(stack, user, subscription.id);
    assert.equal(unchanged.body.subscription.status, 'active');
    assert.equal(unchanged.body.subscription.cancelAtPeriodEnd, false);
  });

  test('search by status and email, newest first, a page at a time without gaps or repeats', async () => {
    const user = await createTestUser(stack.deps);
    const created: string[] = [];
    for (let i = 0; i < 5; i++) created.push((await activeSubscription(stack, user, monthlyPlan.id)).id);
    const pastDue = await pastDueSubscription(stack, user, dunningPlan.id);
    const email = encodeURIComponent(user.user.email.toUpperCase());

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { status: number; body: any } = await get(
        stack,
        `/subscriptions?status=active&email=${email}&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        stack.staff,
      );
      assert.equal(page.status, 200, JSON.stringify(page.body));
      assert.ok(page.body.items.length <= 2);
      for (const item of page.body.items) {
        assert.deepEqual(item.customer, { id: user.user.id, email: user.user.email });
        assert.equal(item.subscription.status, 'active');
        seen.push(item.subscription.id);
      }
      cursor = page.body.nextCursor;
      pages += 1;
    } while (cursor);
    assert.equal(pages, 3);
    assert.deepEqual(seen, [...created].reverse());

    const pastDuePage = await get(stack, `/subscriptions?status=past_due&email=${email}`, stack.staff);
    assert.deepEqual(
      pastDuePage.body.items.map((item: { subscription: { id: string } }) => item.subscription.id),
      [pastDue.id],
    );
    assert.equal(pastDuePage.body.nextCursor, null);
    assert.equal(pastDuePage.body.items[0].subscription.temporalUiUrl, pastDue.temporalUiUrl);

    const bad = await get(stack, '/subscriptions?status=lapsed&limit=0&cursor=nonsense', stack.staff);
    assert.equal(bad.status, 400);
    assert.deepEqual(invalidNames(bad.body), ['cursor', 'limit', 'status']);
    const stale = await get(stack, `/subscriptions?cursor=${Buffer.from(randomUUID()).toString('base64url')}`, stack.staff);
    assert.equal(stale.status, 400);
  });

  test('an email filter with a NUL character is a 400 naming the field, not a 500 from PostgreSQL', async () => {
    const res = await get(stack, '/subscriptions?status=canceled&email=ada%00%40example.com', stack.staff);
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.deepEqual(invalidNames(res.body), ['email']);
  });
});

describe('staff API: booking refunds', () => {
  let stack: BookingStack;

  before(async () => {
    stack = await startBookingStack();
  });

  after(() => stack?.close());

  async function confirmedBooking(user: TestUser) {
    const offering = await createOffering(stack);
    const held = await placeHold(stack, user, offering.id, offering.unitIds.slice(0, 2));
    assert.equal(held.status, 201, JSON.stringify(held.body));
    const booked = await createBooking(stack, user, held.body.hold.id);
    assert.equal(booked.status, 201, JSON.stringify(booked.body));
    return booked.body.booking as { id: string; workflowId: string; amount: number };
  }

  async function bookingPayments(bookingId: string) {
    return stack.deps.db.select().from(payments).where(eq(payments.bookingId, bookingId)).orderBy(asc(payments.createdAt), asc(payments.id));
  }

  test('part, then the rest: refunded through the workflow within what was charged, each audited', async () => {
    const user = await createTestUser(stack.deps);
    const booking = await confirmedBooking(user);
    assert.equal(booking.amount, 5000);

    const part = await post(stack, `/bookings/${booking.id}/refund`, stack.staff, { amount: 1000, reason: 'seat was broken' });
    assert.equal(part.status, 200, JSON.stringify(part.body));
    assert.deepEqual(part.body.refund, { amount: 1000, totalRefunded: 1000 });
    assert.equal(part.body.booking.status, 'confirmed');
    const [charge, refund] = part.body.payments;
    assert.equal(charge.refundedAmount, 1000);
    assert.deepEqual([refund.kind, refund.amount, refund.refundOf, refund.status], ['refund', 1000, charge.id, 'succeeded']);

    const tooMuch = await post(stack, `/bookings/${booking.id}/refund`, stack.staff, { amount: 4001, reason: 'more' });
    assert.equal(tooMuch.status, 422, JSON.stringify(tooMuch.body));

    const rest = await post(stack, `/bookings/${booking.id}/refund`, stack.staff, { reason: 'show canceled by the venue' });
    assert.equal(rest.status, 200, JSON.stringify(rest.body));
    assert.deepEqual(rest.body.refund, { amount: 4000, totalRefunded: 5000 });
    const rows = await bookingPayments(booking.id);
    assert.deepEqual(
      rows.map((p) => [p.kind, p.amount, p.refundedAmount]),
      [
        ['booking', 5000, 5000],
        ['refund', 1000, 0],
        ['refund', 4000, 0],
      ],
    );
    assert.equal((await post(stack, `/bookings/${booking.id}/refund`, stack.staff, { reason: 'again' })).status, 422);

    const audits = await auditRows(stack, booking.id);
    assert.deepEqual(
      audits.map((a) => [a.action, a.targetType, a.actorId, a.reason, a.details]),
      [
        [
          'booking.refund',
          'booking',
          stack.staff.user.id,
          'seat was broken',
          { workflowId: booking.workflowId, requestedAmount: 1000, refundedAmount: 1000, answered: true },
        ],
        [
          'booking.refund',
          'booking',
          stack.staff.user.id,
          'show canceled by the venue',
          { workflowId: booking.workflowId, requestedAmount: null, refundedAmount: 4000, answered: true },
        ],
      ],
    );
  });

  test('a customer cancel after a staff refund refunds only what is left', async () => {
    const user = await createTestUser(stack.deps);
    const booking = await confirmedBooking(user);
    assert.equal((await post(stack, `/bookings/${booking.id}/refund`, stack.staff, { amount: 1500, reason: 'late start' })).status, 200);
    const canceled = await requestJson(`${stack.url}/api/v1/bookings/cancel`, { body: { bookingId: booking.id }, headers: user.headers });
    assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
    const rows = await bookingPayments(booking.id);
    assert.deepEqual(
      rows.map((p) => [p.kind, p.amount]),
      [
        ['booking', 5000],
        ['refund', 1500],
        ['refund', 3500],
      ],
    );
  });

  test('a reason is required, the booking must be confirmed and known, and customers are refused', async () => {
    const user = await createTestUser(stack.deps);
    const booking = await confirmedBooking(user);
    const noReason = await post(stack, `/bookings/${booking.id}/refund`, stack.staff, { amount: 0 });
    assert.equal(noReason.status, 400);
    assert.deepEqual(invalidNames(noReason.body), ['amount', 'reason']);
    assert.equal((await post(stack, `/bookings/${randomUUID()}/refund`, stack.staff, { reason: 'who' })).status, 404);
    assert.equal((await post(stack, `/bookings/${booking.id}/refund`, user, { reason: 'please' })).status, 403);

    const canceled = await requestJson(`${stack.url}/api/v1/bookings/cancel`, { body: { bookingId: booking.id }, headers: user.headers });
    assert.equal(canceled.status, 200);
    assert.equal((await post(stack, `/bookings/${booking.id}/refund`, stack.staff, { reason: 'after cancel' })).status, 409);
    assert.deepEqual(await auditRows(stack, booking.id), []);
    const refunds = await stack.deps.db
      .select()
      .from(payments)
      .where(and(eq(payments.bookingId, booking.id), eq(payments.kind, 'refund')));
    assert.equal(refunds.length, 1, 'only the cancel refunded');
  });
});
