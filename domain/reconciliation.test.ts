import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { reconcile, shouldBeInvoiced, type PaymentRecord } from './reconciliation';

const charge = (over: Partial<PaymentRecord> = {}): PaymentRecord => ({
  paymentId: 'p1',
  userId: 'u1',
  currency: 'usd',
  kind: 'one_time',
  status: 'succeeded',
  amount: 1000,
  invoice: { id: 'i1', kind: 'invoice', status: 'paid', total: 1000 },
  ...over,
});
const refund = (over: Partial<PaymentRecord> = {}): PaymentRecord =>
  charge({ paymentId: 'r1', kind: 'refund', amount: 400, invoice: { id: 'c1', kind: 'credit_note', status: 'paid', total: 400 }, ...over });

describe('shouldBeInvoiced', () => {
  test('charges that took money and refunds that succeeded', () => {
    for (const status of ['succeeded', 'refunded', 'disputed'] as const) assert.equal(shouldBeInvoiced({ kind: 'subscription', status }), true);
    for (const status of ['pending', 'failed'] as const) assert.equal(shouldBeInvoiced({ kind: 'booking', status }), false);
    assert.equal(shouldBeInvoiced({ kind: 'refund', status: 'succeeded' }), true);
    assert.equal(shouldBeInvoiced({ kind: 'refund', status: 'pending' }), false);
    assert.equal(shouldBeInvoiced({ kind: 'refund', status: 'failed' }), false);
  });
});

describe('reconcile', () => {
  test('balanced books have no differences', () => {
    const result = reconcile({
      payments: [charge(), refund(), charge({ paymentId: 'p2', status: 'failed', invoice: null })],
      refunds: [{ paymentId: 'p1', userId: 'u1', currency: 'usd', refundedAmount: 400, refundsTotal: 400 }],
      credits: [{ userId: 'u2', currency: 'eur', balance: 300, ledger: 300 }],
    });
    assert.deepEqual(result, { checked: { customers: 2, payments: 3, invoices: 2 }, differences: [] });
  });

  test('a charge without its invoice is named, and the totals differ', () => {
    const { differences } = reconcile({ payments: [charge({ invoice: null })], refunds: [], credits: [] });
    assert.deepEqual(
      differences.map((d) => [d.kind, d.expected, d.actual, d.objects]),
      [
        ['payment_without_invoice', 1000, 0, [{ type: 'payment', id: 'p1' }]],
        ['totals_mismatch', 1000, 0, [{ type: 'payment', id: 'p1' }]],
      ],
    );
  });

  test('an invoice on a failed charge, a wrong total, a wrong kind', () => {
    const { differences } = reconcile({
      payments: [
        charge({ status: 'failed' }),
        charge({ paymentId: 'p2', invoice: { id: 'i2', kind: 'invoice', status: 'paid', total: 999 } }),
        refund({ invoice: { id: 'i3', kind: 'invoice', status: 'paid', total: 400 } }),
      ],
      refunds: [],
      credits: [],
    });
    assert.deepEqual(
      differences.map((d) => d.kind),
      ['invoice_without_payment_success', 'invoice_amount_mismatch', 'invoice_kind_mismatch', 'totals_mismatch'],
    );
  });

  test('totals are per customer and currency', () => {
    const { differences } = reconcile({
      payments: [charge(), charge({ paymentId: 'p2', currency: 'eur', invoice: null }), charge({ paymentId: 'p3', userId: 'u2' })],
      refunds: [],
      credits: [],
    });
    const totals = differences.filter((d) => d.kind === 'totals_mismatch');
    assert.deepEqual(
      totals.map((d) => [d.userId, d.currency]),
      [['u1', 'eur']],
    );
  });

  test('a refunded amount that its refunds do not explain', () => {
    const { differences } = reconcile({
      payments: [],
      refunds: [{ paymentId: 'p1', userId: 'u1', currency: 'usd', refundedAmount: 500, refundsTotal: 400 }],
      credits: [],
    });
    assert.deepEqual(
      differences.map((d) => [d.kind, d.expected, d.actual]),
      [['refunded_amount_mismatch', 400, 500]],
    );
  });

  test('a credit balance that its ledger does not explain', () => {
    const { differences } = reconcile({ payments: [], refunds: [], credits: [{ userId: 'u1', currency: 'usd', balance: 100, ledger: 50 }] });
    assert.deepEqual(
      differences.map((d) => [d.kind, d.expected, d.actual, d.objects]),
      [['credit_balance_mismatch', 50, 100, [{ type: 'credit_balance', id: 'u1/usd' }]]],
    );
  });
});

describe('uncollectible invoices', () => {
  test('on a failed charge: no difference, and they count for nothing in the totals', () => {
    const lost = charge({ paymentId: 'p9', status: 'failed', invoice: { id: 'i9', kind: 'invoice', status: 'uncollectible', total: 1000 } });
    assert.deepEqual(reconcile({ payments: [charge(), lost], refunds: [], credits: [] }).differences, []);
  });
  test('on a charge that took money: named', () => {
    const paidButMarked = charge({ invoice: { id: 'i1', kind: 'invoice', status: 'uncollectible', total: 1000 } });
    assert.deepEqual(
      reconcile({ payments: [paidButMarked], refunds: [], credits: [] }).differences.map((d) => d.kind),
      ['invoice_status_mismatch', 'totals_mismatch'],
    );
  });
});
