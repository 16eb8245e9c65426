/**
 * The credit balance on the real stack (PostgreSQL, Temporal, the sandbox gateway): staff grant
 * it, one-time payments and bookings spend it before the card, a charge it covers never reaches
 * the gateway, a failed charge gives it back once, and racing charges never overdraw it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { and, eq, sql } from 'drizzle-orm';
import { createCreditActivities } from '../activities/credits';
import { createPaymentActivities } from '../activities/payment';
import { balanceOf, grantCredit } from '../db/credits';
import { auditLog, creditBalances, creditEntries, payments, sandboxIntents } from '../db/schema';
import type { ChargeInput } from '../domain/payment';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { createBooking, createOffering, placeHold } from './support/booking-stack';
import { countingGateway, insertTestUser } from './support/payment-fixtures';
import { startTestStack, type TestStack } from './support/stack';

let stack: TestStack;

before(async () => {
  stack = await startTestStack({ serves: ['billing', 'bookings'] });
});

after(() => stack?.close());

const api = (path: string) => `${stack.url}/api/v1${path}`;

function grant(customerId: string, body: unknown, headers: Record<string, string> = stack.staff.headers) {
  return requestJson(api(`/admin/customers/${customerId}/credits`), { body, headers });
}

async function balances(user: TestUser): Promise<Array<{ currency: string; amount: number }>> {
  const res = await requestJson(api('/billing/balance'), { headers: user.headers });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.balances;
}

/** Credit for a user straight through the db function (as the activity adds it). */
async function credit(userId: string, amount: number, currency = 'usd'): Promise<void> {
  await grantCredit(stack.deps.db, { userId, currency, amount, kind: 'goodwill', idempotencyKey: `test/${randomUUID()}` });
}

function ledgerOf(userId: string) {
  return stack.deps.db.select().from(creditEntries).where(eq(creditEntries.userId, userId)).orderBy(creditEntries.createdAt);
}

async function paymentRow(id: string) {
  const [row] = await stack.deps.db.select().from(payments).where(eq(payments.id, id));
  return row;
}

async function intentsWithKey(idempotencyKey: string) {
  return stack.deps.db.select().from(sandboxIntents).where(eq(sandboxIntents.idempotencyKey, idempotencyKey));
}

/** The payment activities as the worker has them, on the stack's database and sandbox gateway, counting gateway calls. */
function paymentActivities() {
  const { gateway, calls } = countingGateway(stack.deps.gateway);
  return { activities: createPaymentActivities({ db: stack.deps.db, gateway, logger: stack.deps.logger }), calls };
}

function chargeInput(userId: string, fields: Partial<ChargeInput> = {}): ChargeInput {
  return {
    kind: 'one_time',
    userId,
    amount: 2000,
    currency: 'usd',
    paymentMethod: 'pm_card_visa',
    idempotencyKey: `test-credit-${randomUUID()}`,
    attempt: 1,
    description: 'credit test',
    applyCredit: true,
    ...fields,
  };
}

describe('staff grant credit: POST /api/v1/admin/customers/{id}/credits', () => {
  test('adds to the balance in the currency (any case), audited; the customer reads it', async () => {
    const customer = await createTestUser(stack.deps);
    const first = await grant(customer.user.id, { amount: 1500, currency: 'EUR', reason: 'Late delivery' });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.deepEqual(first.body, { balance: { currency: 'eur', amount: 1500 } });
    const second = await grant(customer.user.id, { amount: 500, currency: 'eur', reason: 'Sorry again' });
    assert.deepEqual(second.body, { balance: { currency: 'eur', amount: 2000 } });
    assert.deepEqual(await balances(customer), [{ currency: 'eur', amount: 2000 }]);

    const audit = await stack.deps.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.targetType, 'customer'), eq(auditLog.targetId, customer.user.id)))
      .orderBy(auditLog.id);
    assert.deepEqual(
      audit.map((row) => [row.action, row.actorId, row.reason]),
      [
        ['customer.credit', stack.staff.user.id, 'Late delivery'],
        ['customer.credit', stack.staff.user.id, 'Sorry again'],
      ],
    );
    const ledger = await ledgerOf(customer.user.id);
    assert.deepEqual(
      ledger.map((e) => [e.kind, e.amount, e.currency, e.actorId]),
      [
        ['goodwill', 1500, 'eur', stack.staff.user.id],
        ['goodwill', 500, 'eur', stack.staff.user.id],
      ],
    );
  });

  test('a customer with no credit has no balances', async () => {
    assert.deepEqual(await balances(await createTestUser(stack.deps)), []);
  });

  test('bad input is a 400 naming the field, and nothing is written', async () => {
    const customer = await createTestUser(stack.deps);
    const cases: Array<[unknown, string]> = [
      [{ amount: 0, currency: 'usd', reason: 'x' }, 'amount'],
      [{ amount: -5, currency: 'usd', reason: 'x' }, 'amount'],
      [{ amount: 12.5, currency: 'usd', reason: 'x' }, 'amount'],
      [{ amount: 100, currency: 'xx', reason: 'x' }, 'currency'],
      [{ amount: 100, currency: 'usd' }, 'reason'],
      [{ amount: 100, currency: 'usd', reason: '   ' }, 'reason'],
      [{ amount: 100, currency: 'usd', reason: 'x', extra: 1 }, 'extra'],
    ];
    for (const [body, field] of cases) {
      const res = await grant(customer.user.id, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
      assert.deepEqual(new Set(res.body.invalidParams.map((p: { name: string }) => p.name)), new Set([field]));
    }
    assert.equal((await grant('not-a-uuid', { amount: 100, currency: 'usd', reason: 'x' })).status, 400);
    assert.deepEqual(await balances(customer), []);
    assert.deepEqual(await ledgerOf(customer.user.id), []);
    const audit = await stack.deps.db.select().from(auditLog).where(eq(auditLog.targetId, customer.user.id));
    assert.deepEqual(audit, []);
  });

  test('customers may not grant (403), an unknown customer is a 404, no token a 401', async () => {
    const customer = await createTestUser(stack.deps);
    const body = { amount: 100, currency: 'usd', reason: 'Goodwill' };
    assert.equal((await grant(customer.user.id, body, customer.headers)).status, 403);
    const unknown = await grant(randomUUID(), body);
    assert.equal(unknown.status, 404);
    assert.match(unknown.headers.get('content-type') ?? '', /application\/problem\+json/);
    assert.equal((await grant(customer.user.id, body, {})).status, 401);
    assert.equal((await requestJson(api('/billing/balance'))).status, 401);
    assert.deepEqual(await balances(customer), []);
  });

  test('the same Idempotency-Key twice is one credit', async () => {
    const customer = await createTestUser(stack.deps);
    const headers = { ...stack.staff.headers, 'idempotency-key': randomUUID() };
    const body = { amount: 1000, currency: 'usd', reason: 'Outage' };
    const first = await grant(customer.user.id, body, headers);
    const again = await grant(customer.user.id, body, headers);
    assert.deepEqual([first.status, again.status], [201, 201]);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(again.body, first.body);
    assert.deepEqual(await balances(customer), [{ currency: 'usd', amount: 1000 }]);
    assert.equal((await ledgerOf(customer.user.id)).length, 1);
  });
});

describe('one-time payments use the balance first', () => {
  function pay(user: TestUser, amount: number, paymentMethod = 'pm_card_visa') {
    return requestJson(api('/payments/process'), { body: { amount, currency: 'usd', paymentMethod, description: 'Ticket' }, headers: user.headers });
  }

  test('a payment the credit covers succeeds and never reaches the gateway', async () => {
    const customer = await createTestUser(stack.deps);
    await credit(customer.user.id, 5000);
    const res = await pay(customer, 1250);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const { payment } = res.body;
    assert.deepEqual([payment.status, payment.creditApplied, payment.gatewayPaymentId], ['succeeded', 1250, null]);
    const row = await paymentRow(payment.id);
    assert.deepEqual([row.status, row.creditApplied, row.gatewayPaymentId], ['succeeded', 1250, null]);
    assert.deepEqual(await intentsWithKey(row.idempotencyKey), [], 'the sandbox gateway saw no charge');
    assert.deepEqual(await balances(customer), [{ currency: 'usd', amount: 3750 }]);
    const spent = (await ledgerOf(customer.user.id)).filter((e) => e.kind === 'spent');
    assert.deepEqual(
      spent.map((e) => [e.amount, e.paymentId, e.idempotencyKey]),
      [[-1250, payment.id, `spend/${payment.id}`]],
    );
  });

  test('a larger payment charges the card only for what the credit leaves', async () => {
    const customer = await createTestUser(stack.deps);
    await credit(customer.user.id, 1000);
    const res = await pay(customer, 2500);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.payment.creditApplied, 1000);
    assert.match(res.body.payment.gatewayPaymentId, /^pi_sandbox_/);
    const row = await paymentRow(res.body.payment.id);
    const [intent] = await intentsWithKey(row.idempotencyKey);
    assert.deepEqual([intent.amount, intent.status, intent.id], [1500, 'succeeded', row.gatewayPaymentId]);
    assert.deepEqual(await balances(customer), []);
  });

  test('a declined payment gives its credit back', async () => {
    const customer = await createTestUser(stack.deps);
    await credit(customer.user.id, 700);
    const res = await pay(customer, 2000, 'pm_card_chargeDeclined');
    assert.equal(res.status, 402);
    assert.equal(res.body.payment.creditApplied, 700);
    assert.deepEqual(await balances(customer), [{ currency: 'usd', amount: 700 }]);
    const ledger = await ledgerOf(customer.user.id);
    assert.deepEqual(
      ledger.map((e) => [e.kind, e.amount]),
      [
        ['goodwill', 700],
        ['spent', -700],
        ['restored', 700],
      ],
    );
  });
});

describe('the chargePayment activity with applyCredit', () => {
  test('a declined charge retried gives the credit back exactly once', async () => {
    const { id: userId } = await insertTestUser(stack.deps.db);
    await credit(userId, 800);
    const { activities, calls } = paymentActivities();
    const input = chargeInput(userId, { paymentMethod: 'pm_card_chargeDeclined' });
    const first = await activities.chargePayment(input);
    const again = await activities.chargePayment(input);
    assert.deepEqual(again, first);
    assert.deepEqual([first.status, first.creditApplied], ['failed', 800]);
    assert.equal(calls.charge, 1);
    assert.equal(await balanceOf(stack.deps.db, userId, 'usd'), 800);
    const ledger = await ledgerOf(userId);
    assert.deepEqual(
      ledger.map((e) => [e.kind, e.amount]),
      [
        ['goodwill', 800],
        ['spent', -800],
        ['restored', 800],
      ],
    );
  });

  test('a covered charge retried is one spend and no gateway call', async () => {
    const { id: userId } = await insertTestUser(stack.deps.db);
    await credit(userId, 3000);
    const { activities, calls } = paymentActivities();
    const input = chargeInput(userId, { amount: 1200 });
    const results = await Promise.all([activities.chargePayment(input), activities.chargePayment(input)]);
    assert.deepEqual(results[1], results[0]);
    assert.deepEqual([results[0].status, results[0].creditApplied, results[0].gatewayPaymentId], ['succeeded', 1200, null]);
    assert.equal(calls.charge, 0);
    assert.equal(await balanceOf(stack.deps.db, userId, 'usd'), 1800);
  });

  test('racing charges never overdraw: ten of 300 against 1000 spend exactly 1000', async () => {
    const { id: userId } = await insertTestUser(stack.deps.db);
    await credit(userId, 1000);
    const { activities } = paymentActivities();
    const results = await Promise.all(Array.from({ length: 10 }, () => activities.chargePayment(chargeInput(userId, { amount: 300 }))));
    assert.ok(results.every((r) => r.status === 'succeeded'));
    assert.equal(
      results.reduce((sum, r) => sum + r.creditApplied, 0),
      1000,
    );
    const rows = await stack.deps.db.select().from(payments).where(eq(payments.userId, userId));
    assert.equal(
      rows.reduce((sum, r) => sum + r.creditApplied, 0),
      1000,
    );
    assert.equal(await balanceOf(stack.deps.db, userId, 'usd'), 0);
    const [{ total }] = await stack.deps.db
      .select({ total: sql<string>`sum(${creditEntries.amount})` })
      .from(creditEntries)
      .where(eq(creditEntries.userId, userId));
    assert.equal(Number(total), 0, 'the ledger sums to the balance');
  });

  test('without applyCredit (runs from before the balance) the card pays it all', async () => {
    const { id: userId } = await insertTestUser(stack.deps.db);
    await credit(userId, 1000);
    const { activities } = paymentActivities();
    const result = await activities.chargePayment(chargeInput(userId, { applyCredit: undefined }));
    assert.deepEqual([result.status, result.creditApplied], ['succeeded', 0]);
    assert.equal(await balanceOf(stack.deps.db, userId, 'usd'), 1000);
  });

  test('a pending charge settled failed, or canceled at its timeout, gives its credit back once', async () => {
    const { id: userId } = await insertTestUser(stack.deps.db);
    await credit(userId, 900);
    const { activities } = paymentActivities();
    const settled = await activities.chargePayment(
      chargeInput(userId, { amount: 1000, paymentMethod: 'pm_card_authenticationRequired', session: 'on_session' }),
    );
    assert.deepEqual([settled.status, settled.creditApplied], ['pending', 900]);
    assert.equal(await balanceOf(stack.deps.db, userId, 'usd'), 0);
    const settlement = { paymentId: settled.paymentId, gatewayPaymentId: settled.gatewayPaymentId!, status: 'failed' as const, failureCode: 'x' };
    await activities.settlePayment(settlement);
    await activities.settlePayment(settlement);
    assert.equal(await balanceOf(stack.deps.db, userId, 'usd'), 900);

    const timedOut = await activities.chargePayment(
      chargeInput(userId, { amount: 1000, paymentMethod: 'pm_card_authenticationRequired', session: 'on_session' }),
    );
    assert.deepEqual([timedOut.status, timedOut.creditApplied], ['pending', 900]);
    assert.equal(await balanceOf(stack.deps.db, userId, 'usd'), 0);
    const canceled = await activities.cancelPendingPayment({ paymentId: timedOut.paymentId });
    await activities.cancelPendingPayment({ paymentId: timedOut.paymentId });
    assert.equal(canceled.status, 'failed');
    assert.equal(await balanceOf(stack.deps.db, userId, 'usd'), 900);
    const restored = (await ledgerOf(userId)).filter((e) => e.kind === 'restored');
    assert.deepEqual(
      restored.map((e) => [e.paymentId, e.amount]).sort(),
      [
        [settled.paymentId, 900],
        [timedOut.paymentId, 900],
      ].sort(),
    );
  });

  test('only what the card paid can be refunded to it; a charge the credit covered cannot be', async () => {
    const { id: userId } = await insertTestUser(stack.deps.db);
    await credit(userId, 1000);
    const { activities } = paymentActivities();
    const partly = await activities.chargePayment(chargeInput(userId, { amount: 2500 }));
    const refund = (paymentId: string, amount: number) =>
      activities.refundPayment({ paymentId, amount, idempotencyKey: `test-refund-${randomUUID()}`, reason: 'test' });
    await assert.rejects(refund(partly.paymentId, 1600), (err: unknown) => err instanceof ApplicationFailure && err.type === 'RefundExceedsPayment');
    assert.equal((await refund(partly.paymentId, 1500)).status, 'succeeded');
    assert.deepEqual(await paymentRow(partly.paymentId).then((r) => [r.status, r.refundedAmount]), ['refunded', 1500]);

    await credit(userId, 700);
    const covered = await activities.chargePayment(chargeInput(userId, { amount: 700 }));
    assert.equal(covered.gatewayPaymentId, null);
    await assert.rejects(refund(covered.paymentId, 1), (err: unknown) => err instanceof ApplicationFailure && err.type === 'PaymentNotRefundable');
  });
});

describe('bookings use the balance first', () => {
  test('the charge takes the credit; a cancel refunds the card its part and the balance the rest', async () => {
    const customer = await createTestUser(stack.deps);
    await credit(customer.user.id, 3000);
    const offering = await createOffering(stack, {}, 4);
    const held = await placeHold(stack, customer, offering.id, offering.unitIds.slice(0, 2));
    assert.equal(held.status, 201, JSON.stringify(held.body));
    const booked = await createBooking(stack, customer, held.body.hold.id);
    assert.equal(booked.status, 201, JSON.stringify(booked.body));
    const charge = (await stack.deps.db.select().from(payments).where(eq(payments.bookingId, booked.body.booking.id)))[0];
    assert.deepEqual([charge.amount, charge.creditApplied], [5000, 3000]);
    assert.equal((await intentsWithKey(charge.idempotencyKey))[0].amount, 2000);
    assert.deepEqual(await balances(customer), []);

    const canceled = await requestJson(api('/bookings/cancel'), { body: { bookingId: booked.body.booking.id }, headers: customer.headers });
    assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
    assert.deepEqual(canceled.body.refund, { tier: 'full', amount: 5000 });
    const refunds = await stack.deps.db.select().from(payments).where(eq(payments.refundOf, charge.id));
    assert.deepEqual(
      refunds.map((r) => [r.amount, r.status]),
      [[2000, 'succeeded']],
    );
    assert.deepEqual(await balances(customer), [{ currency: 'usd', amount: 3000 }]);
  });
});

describe('the credit activity and the database', () => {
  test('grantCredit adds once per key; a bad amount is not retried', async () => {
    const { id: userId } = await insertTestUser(stack.deps.db);
    const { grantCredit: grantActivity } = createCreditActivities({ db: stack.deps.db, logger: stack.deps.logger });
    const grant = { userId, currency: 'GBP', amount: 400, kind: 'proration' as const, idempotencyKey: `proration/test/${randomUUID()}` };
    assert.deepEqual(await grantActivity(grant), { currency: 'gbp', amount: 400 });
    assert.deepEqual(await grantActivity(grant), { currency: 'gbp', amount: 400 });
    await assert.rejects(
      grantActivity({ ...grant, amount: 0, idempotencyKey: randomUUID() }),
      (err: unknown) => err instanceof ApplicationFailure && err.nonRetryable && err.type === 'InvalidCredit',
    );
    assert.equal(await balanceOf(stack.deps.db, userId, 'gbp'), 400);
  });

  test('the CHECK makes a negative balance impossible', async () => {
    const { id: userId } = await insertTestUser(stack.deps.db);
    await credit(userId, 100);
    const checkViolation = (err: any) => err?.cause?.code === '23514' || err?.code === '23514';
    await assert.rejects(
      stack.deps.db
        .update(creditBalances)
        .set({ amount: sql`${creditBalances.amount} - 101` })
        .where(eq(creditBalances.userId, userId)),
      checkViolation,
    );
    await assert.rejects(stack.deps.db.insert(creditBalances).values({ userId, currency: 'eur', amount: -1 }), checkViolation);
    assert.equal(await balanceOf(stack.deps.db, userId, 'usd'), 100);
  });
});
