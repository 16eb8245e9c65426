import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { reconcile, shouldBeInvoiced, type GatewayCharge, type GatewayRecord, type GatewayRefund, type PaymentRecord } from './reconciliation';

// The idempotency key follows the payment id unless given.
const charge = (over: Partial<PaymentRecord> = {}): PaymentRecord => {
  const record: Omit<PaymentRecord, 'idempotencyKey'> = {
    paymentId: 'p1',
    userId: 'u1',
    currency: 'usd',
    kind: 'one_time',
    status: 'succeeded',
    amount: 1000,
    creditApplied: 0,
    invoice: { id: 'i1', kind: 'invoice', status: 'paid', total: 1000 },
    ...over,
  };
  return { idempotencyKey: `key/${record.paymentId}`, ...record };
};
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

const took = (paymentId: string, amount: number, over: Partial<GatewayCharge> = {}): GatewayCharge => ({
  idempotencyKey: `key/${paymentId}`,
  gatewayPaymentId: `pi_${paymentId}`,
  userId: 'u1',
  currency: 'usd',
  amount,
  status: 'succeeded',
  ...over,
});
const gaveBack = (refundId: string, amount: number, over: Partial<GatewayRefund> = {}): GatewayRefund => ({
  idempotencyKey: `key/${refundId}`,
  gatewayRefundId: `re_${refundId}`,
  gatewayPaymentId: 'pi_p1',
  userId: 'u1',
  currency: 'usd',
  amount,
  status: 'succeeded',
  ...over,
});
const record = (charges: GatewayCharge[], refunds: GatewayRefund[] = []): GatewayRecord => ({ source: 'test', charges, refunds });

describe('against the gateway’s record', () => {
  // p1 paid 1000 by card, 400 of it refunded; p3 paid 300 of 1000 from credit; p4 entirely from
  // credit (never sent); p2 declined.
  const books = [
    charge(),
    refund(),
    charge({ paymentId: 'p2', status: 'failed', invoice: null }),
    charge({ paymentId: 'p3', creditApplied: 300, invoice: { id: 'i3', kind: 'invoice', status: 'paid', total: 1000 } }),
    charge({ paymentId: 'p4', creditApplied: 1000, invoice: { id: 'i4', kind: 'invoice', status: 'paid', total: 1000 } }),
  ];
  const refunds = [{ paymentId: 'p1', userId: 'u1', currency: 'usd', refundedAmount: 400, refundsTotal: 400 }];
  const gateway = record([took('p1', 1000), took('p2', 1000, { status: 'declined' }), took('p3', 700)], [gaveBack('r1', 400)]);

  test('what it took less what it refunded is the card payments recorded: no differences', () => {
    const result = reconcile({ payments: books, refunds, credits: [], gateway });
    assert.deepEqual(result.differences, []);
    assert.deepEqual(result.gateway, { source: 'test', charges: 3, refunds: 1 });
    assert.deepEqual(result.checked, { customers: 1, payments: 5, invoices: 4 });
  });

  test('without a record, nothing of the gateway is said', () => {
    assert.equal(reconcile({ payments: books, refunds, credits: [] }).gateway, undefined);
  });

  test('a charge recorded failed that the gateway took, and one it charged the credit’s part of too', () => {
    const wrong = record([took('p1', 1000), took('p2', 1000), took('p3', 1000)], [gaveBack('r1', 400)]);
    const { differences } = reconcile({ payments: books, refunds, credits: [], gateway: wrong });
    assert.deepEqual(
      differences.map((d) => [d.kind, d.expected, d.actual, d.objects.slice(0, 2)]),
      [
        [
          'gateway_charge_mismatch',
          0,
          1000,
          [
            { type: 'payment', id: 'p2' },
            { type: 'gateway_charge', id: 'pi_p2' },
          ],
        ],
        [
          'gateway_charge_mismatch',
          700,
          1000,
          [
            { type: 'payment', id: 'p3' },
            { type: 'gateway_charge', id: 'pi_p3' },
          ],
        ],
        [
          'gateway_totals_mismatch',
          1300,
          2600,
          [
            { type: 'payment', id: 'p1' },
            { type: 'gateway_charge', id: 'pi_p1' },
          ],
        ],
      ],
    );
  });

  test('a refund the gateway did not make, and money it moved for no payment', () => {
    const wrong = record(
      [took('p1', 1000), took('p3', 700), took('px', 250, { userId: 'u2', gatewayPaymentId: null })],
      [gaveBack('r1', 400, { status: 'failed' }), gaveBack('rx', 50, { gatewayPaymentId: 'pi_unknown', userId: null, currency: null })],
    );
    const { differences } = reconcile({ payments: books, refunds, credits: [], gateway: wrong });
    assert.deepEqual(
      differences.map((d) => [d.kind, d.userId, d.expected, d.actual]),
      [
        ['gateway_refund_mismatch', 'u1', 400, 0],
        ['gateway_charge_without_payment', 'u2', 0, 250],
        ['gateway_refund_without_payment', '', 0, 50],
        ['gateway_totals_mismatch', 'u1', 1300, 1700],
        ['gateway_totals_mismatch', 'u2', 0, 250],
        ['gateway_totals_mismatch', '', 0, -50],
      ],
    );
    assert.deepEqual(differences[1].objects, [{ type: 'gateway_charge', id: 'key/px' }]);
  });
});
