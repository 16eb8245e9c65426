/**
 * Invoices and credit notes on the real stack (PostgreSQL, Temporal, the sandbox gateway): every
 * charge that succeeds gets one invoice and every refund one credit note, numbered gap-free per
 * kind and year in the transaction that records the payment; a decline or a rolled-back
 * transaction takes no number, a retried activity writes nothing twice.
 *
 * Other test files run beside this one on the same database, so numbers taken by the charges
 * here need not be adjacent to each other; what holds whatever runs beside is that the numbers of
 * a year are exactly 1..N (counter = count = highest), which `assertGapFree` checks. Numbering
 * in a year of its own (far in the future) shows exact consecutive numbers.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { and, eq, sql } from 'drizzle-orm';
import { createInvoiceActivities } from '../activities/invoice';
import { createPaymentActivities } from '../activities/payment';
import { grantCredit } from '../db/credits';
import { invoiceOfPayment, issueInvoiceFor, takeInvoiceNumber } from '../db/invoices';
import { findPayment } from '../db/payments';
import { invoices, invoiceSequences, payments } from '../db/schema';
import { parseInvoiceNumber, type InvoiceKind } from '../domain/invoice';
import type { ChargeInput } from '../domain/payment';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { countingGateway } from './support/payment-fixtures';
import { startTestStack, type TestStack } from './support/stack';

let stack: TestStack;
let customer: TestUser;

before(async () => {
  stack = await startTestStack({ serves: ['billing'] });
  customer = await createTestUser(stack.deps, { name: 'Ada Lovelace' });
});

after(() => stack?.close());

const api = (path: string) => `${stack.url}/api/v1${path}`;
const year = new Date().getUTCFullYear();

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
    idempotencyKey: `test-invoice-${randomUUID()}`,
    attempt: 1,
    description: 'invoice test',
    ...fields,
  };
}

/** The numbers of a kind and year are exactly 1..N: the counter, the count and the highest agree. */
async function assertGapFree(kind: InvoiceKind, inYear: number = year): Promise<number> {
  // One statement, one snapshot: a number is committed with its invoice, never apart from it.
  const rows = await stack.deps.db.execute<{ last: number | null; count: number; highest: number | null }>(sql`
    select (select last_number from ${invoiceSequences} where kind = ${kind} and year = ${inYear}) as last,
           (select count(*)::int from ${invoices} where kind = ${kind} and year = ${inYear}) as count,
           (select max(sequence) from ${invoices} where kind = ${kind} and year = ${inYear}) as highest`);
  const { last, count, highest } = rows[0];
  assert.equal(Number(last ?? 0), count, `counter ${last} vs ${count} ${kind}s in ${inYear}`);
  assert.equal(Number(highest ?? 0), count, `highest ${highest} vs ${count} ${kind}s in ${inYear}`);
  return count;
}

describe('invoices of charges', () => {
  test('a one-time payment through the API is invoiced INV-<year>-NNNNNN; the next gets a later number', async () => {
    const pay = () =>
      requestJson(api('/payments/process'), {
        body: { amount: 1250, currency: 'EUR', paymentMethod: 'pm_card_visa', description: 'Concert ticket' },
        headers: customer.headers,
      });
    const first = await pay();
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const second = await pay();
    assert.equal(second.status, 201, JSON.stringify(second.body));
    assert.ok(first.body.payment.invoiceId, 'the payment names its invoice');

    const read = await requestJson(api(`/invoices/${first.body.payment.invoiceId}`), { headers: customer.headers });
    assert.equal(read.status, 200, JSON.stringify(read.body));
    const invoice = read.body.invoice;
    assert.match(invoice.number, new RegExp(`^INV-${year}-\\d{6}$`));
    assert.deepEqual(
      {
        kind: invoice.kind,
        status: invoice.status,
        currency: invoice.currency,
        subtotal: invoice.subtotal,
        tax: invoice.tax,
        total: invoice.total,
        amountPaid: invoice.amountPaid,
        paymentId: invoice.paymentId,
        billingDetails: invoice.billingDetails,
      },
      {
        kind: 'invoice',
        status: 'paid',
        currency: 'eur',
        subtotal: 1250,
        tax: 0,
        total: 1250,
        amountPaid: 1250,
        paymentId: first.body.payment.id,
        billingDetails: { name: 'Ada Lovelace', email: customer.user.email },
      },
    );
    assert.deepEqual(
      invoice.lines.map((l: { kind: string; description: string; quantity: number; total: number }) => [l.kind, l.description, l.quantity, l.total]),
      [['one_time', 'Concert ticket', 1, 1250]],
    );
    const secondInvoice = await invoiceOfPayment(stack.deps.db, second.body.payment.id);
    assert.ok(parseInvoiceNumber(secondInvoice!.number)!.sequence > parseInvoiceNumber(invoice.number)!.sequence);
    await assertGapFree('invoice');
  });

  test('100 concurrent charges get 100 distinct numbers, and the year stays gap-free', async () => {
    const { activities } = paymentActivities();
    const user = await createTestUser(stack.deps);
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => activities.chargePayment(chargeInput(user.user.id, { amount: 100 + i }))),
    );
    assert.ok(results.every((r) => r.status === 'succeeded'));
    const rows = await stack.deps.db.select().from(invoices).where(eq(invoices.userId, user.user.id));
    assert.equal(rows.length, 100);
    assert.equal(new Set(rows.map((r) => r.number)).size, 100);
    for (const row of rows) assert.equal(row.number, `INV-${year}-${String(row.sequence).padStart(6, '0')}`);
    await assertGapFree('invoice');
  });

  test('a declined charge takes no number and has no invoice', async () => {
    const { activities } = paymentActivities();
    const declined = await activities.chargePayment(chargeInput(customer.user.id, { paymentMethod: 'pm_card_chargeDeclinedStolenCard' }));
    assert.equal(declined.status, 'failed');
    assert.equal(await invoiceOfPayment(stack.deps.db, declined.paymentId), undefined);
    assert.equal((await findPayment(stack.deps.db, declined.paymentId))!.invoiceId, null);
    await assertGapFree('invoice');
  });

  test('a retried activity (the same key twice, or racing) writes one invoice', async () => {
    const { activities } = paymentActivities();
    const input = chargeInput(customer.user.id);
    const first = await activities.chargePayment(input);
    await activities.chargePayment(input);
    await Promise.all([activities.chargePayment(input), activities.chargePayment(input)]);
    const rows = await stack.deps.db.select().from(invoices).where(eq(invoices.paymentId, first.paymentId));
    assert.equal(rows.length, 1);
    assert.equal((await findPayment(stack.deps.db, first.paymentId))!.invoiceId, rows[0].id);
    await assertGapFree('invoice');
  });

  test('a charge the credit balance covers is invoiced at its claim, the credit shown', async () => {
    const { activities, calls } = paymentActivities();
    const user = await createTestUser(stack.deps);
    await grantCredit(stack.deps.db, {
      userId: user.user.id,
      currency: 'usd',
      amount: 5000,
      kind: 'goodwill',
      idempotencyKey: `test/${randomUUID()}`,
    });
    const result = await activities.chargePayment(chargeInput(user.user.id, { amount: 1500, applyCredit: true }));
    assert.equal(result.status, 'succeeded');
    assert.equal(calls.charge, 0);
    const invoice = (await invoiceOfPayment(stack.deps.db, result.paymentId))!;
    assert.deepEqual([invoice.total, invoice.creditApplied, invoice.amountPaid, invoice.status], [1500, 1500, 1500, 'paid']);
  });

  test('lines a workflow priced (with tax) are invoiced as given; lines that do not add up are refused', async () => {
    const { activities } = paymentActivities();
    const lines = [{ kind: 'plan' as const, description: 'Pro, 3 seats', quantity: 3, unitAmount: 1000, discount: 300, taxRate: 1950 }];
    // (3000 - 300) × 19.5 % = 526.5 → 526 (half-even): 3226 charged.
    const result = await activities.chargePayment(chargeInput(customer.user.id, { amount: 3226, invoiceLines: lines }));
    const invoice = (await invoiceOfPayment(stack.deps.db, result.paymentId))!;
    assert.deepEqual([invoice.subtotal, invoice.discount, invoice.tax, invoice.total], [3000, 300, 526, 3226]);
    await assert.rejects(activities.chargePayment(chargeInput(customer.user.id, { amount: 3000, invoiceLines: lines })), /InvalidInvoiceLines|total/);
  });
});

describe('credit notes of refunds', () => {
  test('a refund gets a CN-<year>- credit note naming the charge’s invoice', async () => {
    const { activities } = paymentActivities();
    const charge = await activities.chargePayment(chargeInput(customer.user.id, { amount: 4000 }));
    const refund = await activities.refundPayment({
      paymentId: charge.paymentId,
      amount: 1500,
      idempotencyKey: `test-refund-${randomUUID()}`,
      reason: 'Too loud',
    });
    assert.equal(refund.status, 'succeeded');
    const note = (await invoiceOfPayment(stack.deps.db, refund.refundPaymentId))!;
    const invoice = (await invoiceOfPayment(stack.deps.db, charge.paymentId))!;
    assert.match(note.number, new RegExp(`^CN-${year}-\\d{6}$`));
    assert.deepEqual([note.kind, note.total, note.amountPaid, note.creditNoteOf, note.status], ['credit_note', 1500, 1500, invoice.id, 'paid']);
    assert.equal((await findPayment(stack.deps.db, refund.refundPaymentId))!.invoiceId, note.id);
    await assertGapFree('credit_note');
  });
});

describe('credit notes of taxed invoices', () => {
  test('a refund gives the tax back with it, in proportion', async () => {
    const { activities } = paymentActivities();
    const invoiceLines = [{ kind: 'plan' as const, description: 'Pro', quantity: 1, unitAmount: 1000, taxRate: 2000 }];
    const charge = await activities.chargePayment(chargeInput(customer.user.id, { amount: 1200, invoiceLines }));
    const refund = async (amount: number) => {
      const result = await activities.refundPayment({
        paymentId: charge.paymentId,
        amount,
        idempotencyKey: `test-refund-${randomUUID()}`,
        reason: 'r',
      });
      return (await invoiceOfPayment(stack.deps.db, result.refundPaymentId))!;
    };
    const partial = await refund(600);
    assert.deepEqual([partial.subtotal, partial.tax, partial.total], [500, 100, 600]);
    const rest = await refund(600);
    assert.deepEqual([rest.subtotal, rest.tax, rest.total], [500, 100, 600]);
  });
});

describe('numbering', () => {
  // A year no other test touches, so the numbers are exact.
  const privateYear = 9000 + Math.floor(Math.random() * 999);

  test('a transaction that rolls back gives its number to the next; concurrent ones are consecutive', async () => {
    const { db } = stack.deps;
    await assert.rejects(
      db.transaction(async (tx) => {
        assert.equal(await takeInvoiceNumber(tx, 'invoice', privateYear), 1);
        throw new Error('the charge is rolled back');
      }),
      /rolled back/,
    );
    const taken = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        db
          .transaction(async (tx) => {
            const number = await takeInvoiceNumber(tx, 'invoice', privateYear);
            if (i % 7 === 0) throw new Error('declined');
            return number;
          })
          .catch(() => undefined),
      ),
    );
    const kept = taken.filter((n): n is number => n !== undefined).sort((a, b) => a - b);
    assert.equal(kept.length, 100 - Math.ceil(100 / 7));
    assert.deepEqual(
      kept,
      Array.from({ length: kept.length }, (_, i) => i + 1),
    );
  });

  test('issueInvoiceFor twice for one payment writes one invoice and takes one number', async () => {
    const { activities } = paymentActivities();
    const charge = await activities.chargePayment(chargeInput(customer.user.id));
    const payment = (await findPayment(stack.deps.db, charge.paymentId))!;
    const first = (await invoiceOfPayment(stack.deps.db, charge.paymentId))!;
    const again = await stack.deps.db.transaction((tx) => issueInvoiceFor(tx, payment, { issuedAt: new Date(`${privateYear + 1}-06-01T00:00:00Z`) }));
    assert.equal(again.id, first.id);
    const [sequence] = await stack.deps.db
      .select()
      .from(invoiceSequences)
      .where(and(eq(invoiceSequences.kind, 'invoice'), eq(invoiceSequences.year, privateYear + 1)));
    assert.equal(sequence, undefined);
  });
});

describe('GET /api/v1/invoices', () => {
  test('customers page through their own, newest first; staff may name a customer; others get 403/404', async () => {
    const { activities } = paymentActivities();
    const owner = await createTestUser(stack.deps);
    for (let i = 0; i < 5; i += 1) await activities.chargePayment(chargeInput(owner.user.id, { amount: 1000 + i }));

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?limit=2&cursor=${cursor}` : '?limit=2';
      const page = await requestJson(api(`/invoices${query}`), { headers: owner.headers });
      assert.equal(page.status, 200, JSON.stringify(page.body));
      assert.ok(page.body.invoices.length <= 2);
      seen.push(...page.body.invoices.map((i: { id: string }) => i.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    assert.equal(seen.length, 5);
    assert.equal(new Set(seen).size, 5);

    const staffView = await requestJson(api(`/invoices?userId=${owner.user.id}`), { headers: stack.staff.headers });
    assert.equal(staffView.status, 200);
    assert.deepEqual(
      staffView.body.invoices.map((i: { id: string }) => i.id),
      seen,
    );

    const stranger = await createTestUser(stack.deps);
    assert.equal((await requestJson(api(`/invoices?userId=${owner.user.id}`), { headers: stranger.headers })).status, 403);
    assert.equal((await requestJson(api(`/invoices/${seen[0]}`), { headers: stranger.headers })).status, 404);
    assert.deepEqual((await requestJson(api('/invoices'), { headers: stranger.headers })).body, { invoices: [], nextCursor: null });
    const badCursor = await requestJson(api('/invoices?cursor=nope'), { headers: owner.headers });
    assert.equal(badCursor.status, 400);
  });
});

describe('GET /api/v1/admin/reconciliation', () => {
  const reconciliation = (query: string, user: TestUser = stack.staff) =>
    requestJson(api(`/admin/reconciliation${query}`), { headers: user.headers });

  test('the books of a customer who paid, was refunded and declined balance', async () => {
    const { activities } = paymentActivities();
    const user = await createTestUser(stack.deps);
    await grantCredit(stack.deps.db, {
      userId: user.user.id,
      currency: 'usd',
      amount: 700,
      kind: 'goodwill',
      idempotencyKey: `test/${randomUUID()}`,
    });
    const charge = await activities.chargePayment(chargeInput(user.user.id, { amount: 3000, applyCredit: true }));
    await activities.refundPayment({ paymentId: charge.paymentId, amount: 1000, idempotencyKey: `test-refund-${randomUUID()}`, reason: 'Partly' });
    await activities.chargePayment(chargeInput(user.user.id, { paymentMethod: 'pm_card_chargeDeclinedInsufficientFunds' }));

    const res = await reconciliation(`?userId=${user.user.id}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.differences, []);
    assert.deepEqual(res.body.checked, { customers: 1, payments: 3, invoices: 2 });
    assert.equal((await reconciliation('', customer)).status, 403);
    assert.equal((await reconciliation('?from=2026-02-01T00:00:00.000Z&to=2026-01-01T00:00:00.000Z')).status, 400);
  });

  test('a charge recorded succeeded without its invoice is named', async () => {
    const user = await createTestUser(stack.deps);
    const [row] = await stack.deps.db
      .insert(payments)
      .values({
        kind: 'one_time',
        userId: user.user.id,
        amount: 900,
        currency: 'usd',
        status: 'succeeded',
        idempotencyKey: `test-orphan-${randomUUID()}`,
      })
      .returning();
    const res = await reconciliation(`?userId=${user.user.id}`);
    assert.deepEqual(
      res.body.differences.map((d: { kind: string; expected: number; objects: unknown }) => [d.kind, d.expected, d.objects]),
      [
        ['payment_without_invoice', 900, [{ type: 'payment', id: row.id }]],
        ['totals_mismatch', 900, [{ type: 'payment', id: row.id }]],
      ],
    );
  });
});

describe('a plan’s tax rate', () => {
  const createPlan = (body: Record<string, unknown>) =>
    requestJson(api('/admin/plans'), {
      body: { code: `taxed-${randomUUID().slice(0, 8)}`, name: 'Taxed', amount: 1000, currency: 'usd', interval: 'P1M', ...body },
      headers: stack.staff.headers,
    });

  test('staff may give a plan a tax rate in basis points; none is null', async () => {
    const taxed = await createPlan({ taxRate: 2000 });
    assert.equal(taxed.status, 201, JSON.stringify(taxed.body));
    assert.equal(taxed.body.plan.taxRate, 2000);
    const untaxed = await createPlan({});
    assert.equal(untaxed.body.plan.taxRate, null);
  });

  test('a rate outside 0–10000 or not whole is a 400 naming taxRate', async () => {
    for (const taxRate of [-1, 10_001, 12.5, '2000']) {
      const res = await createPlan({ taxRate });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.deepEqual(
        res.body.invalidParams.map((p: { name: string }) => p.name),
        ['taxRate'],
      );
    }
  });
});

describe('uncollectible invoices', () => {
  function invoiceActivities() {
    return createInvoiceActivities({ db: stack.deps.db, logger: stack.deps.logger });
  }

  test('a charge given up is invoiced uncollectible once, numbered then; a late success makes it paid', async () => {
    const { activities } = paymentActivities();
    const user = await createTestUser(stack.deps);
    const failed = await activities.chargePayment(chargeInput(user.user.id, { paymentMethod: 'pm_card_chargeDeclinedInsufficientFunds' }));
    assert.equal(failed.status, 'failed');
    const first = await invoiceActivities().recordUncollectibleInvoice({ paymentId: failed.paymentId });
    const again = await invoiceActivities().recordUncollectibleInvoice({ paymentId: failed.paymentId });
    assert.deepEqual(again, first);
    assert.match(first.number, new RegExp(`^INV-${year}-\\d{6}$`));
    const invoice = (await invoiceOfPayment(stack.deps.db, failed.paymentId))!;
    assert.deepEqual([invoice.status, invoice.total, invoice.amountPaid, invoice.creditApplied], ['uncollectible', 2000, 0, 0]);
    await assertGapFree('invoice');
    const books = await requestJson(api(`/admin/reconciliation?userId=${user.user.id}`), { headers: stack.staff.headers });
    assert.deepEqual(books.body.differences, []);

    await activities.recordLatePaymentSuccess({ paymentId: failed.paymentId, gatewayPaymentId: 'pi_late' });
    const paid = (await invoiceOfPayment(stack.deps.db, failed.paymentId))!;
    assert.deepEqual([paid.id, paid.number, paid.status, paid.amountPaid], [invoice.id, invoice.number, 'paid', 2000]);
  });

  test('a charge that succeeded keeps its paid invoice; a pending charge or no charge cannot be uncollectible', async () => {
    const { activities } = paymentActivities();
    const paid = await activities.chargePayment(chargeInput(customer.user.id));
    const before = await invoiceOfPayment(stack.deps.db, paid.paymentId);
    // Paid (a late success beat the expiry): answered as it is, so the workflow's step ends.
    const answer = await invoiceActivities().recordUncollectibleInvoice({ paymentId: paid.paymentId });
    assert.deepEqual([answer.number, answer.status], [before!.number, 'paid']);
    // Its paid invoice is left as it was.
    assert.equal((await invoiceOfPayment(stack.deps.db, paid.paymentId))!.status, before!.status);
    const pendingUser = await createTestUser(stack.deps);
    const pending = await activities.chargePayment(
      chargeInput(pendingUser.user.id, { paymentMethod: 'pm_card_authenticationRequired', session: 'on_session' }),
    );
    if (pending.status === 'pending') {
      await assert.rejects(invoiceActivities().recordUncollectibleInvoice({ paymentId: pending.paymentId }), /not failed/);
    }
    await assert.rejects(invoiceActivities().recordUncollectibleInvoice({ paymentId: randomUUID() }), /no charge/);
  });
});
