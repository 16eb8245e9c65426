/**
 * The books balance: a pure comparison of what was recorded, made from one consistent read of
 * payments, invoices and credit (db/reconciliation.ts). Every difference names the objects
 * involved, so staff can look at exactly those.
 *
 * Rules checked, to the minor unit:
 * - every charge that took money (succeeded, or later refunded or disputed) has exactly one
 *   invoice, and every refund that succeeded one credit note, whose total is the payment's amount;
 *   nothing else has one;
 * - per customer and currency, payments recorded (charges less refunds) equal invoices less
 *   credit notes (an unpaid invoice of a failed renewal: open, void or `uncollectible`, the last charge of a subscription that expired
 *   unpaid, belongs to a failed charge and counts for nothing);
 * - a charge's refunded amount equals its refunds (succeeded, or pending and so reserved);
 * - a credit balance equals its ledger (credits granted less credits spent).
 * (What the gateway itself took and refunded is not read here yet: see the invoices' notes.)
 */

/** A payment and the invoice or credit note written for it, if any. */
export interface PaymentRecord {
  paymentId: string;
  userId: string;
  currency: string;
  kind: 'subscription' | 'one_time' | 'booking' | 'refund';
  status: 'pending' | 'succeeded' | 'failed' | 'refunded' | 'disputed';
  amount: number;
  invoice: { id: string; kind: 'invoice' | 'credit_note'; status: 'open' | 'paid' | 'void' | 'uncollectible'; total: number } | null;
}

/** A charge's refunded amount next to what its refund rows add up to. */
export interface RefundRecord {
  paymentId: string;
  userId: string;
  currency: string;
  refundedAmount: number;
  refundsTotal: number;
}

/** A credit balance next to its ledger's sum. */
export interface CreditRecord {
  userId: string;
  currency: string;
  balance: number;
  ledger: number;
}

export type DifferenceKind =
  | 'payment_without_invoice'
  | 'invoice_without_payment_success'
  | 'invoice_kind_mismatch'
  | 'invoice_amount_mismatch'
  | 'invoice_status_mismatch'
  | 'totals_mismatch'
  | 'refunded_amount_mismatch'
  | 'credit_balance_mismatch';

export interface Difference {
  kind: DifferenceKind;
  userId: string;
  currency: string;
  /** What the rule says it should be, and what was found (minor units). */
  expected: number;
  actual: number;
  objects: Array<{ type: 'payment' | 'invoice' | 'credit_balance'; id: string }>;
}

export interface Reconciliation {
  checked: { customers: number; payments: number; invoices: number };
  differences: Difference[];
}

const TOOK_MONEY = new Set<PaymentRecord['status']>(['succeeded', 'refunded', 'disputed']);

/** Whether the payment ought to have an invoice (a charge) or credit note (a refund). */
export function shouldBeInvoiced(payment: Pick<PaymentRecord, 'kind' | 'status'>): boolean {
  return payment.kind === 'refund' ? payment.status === 'succeeded' : TOOK_MONEY.has(payment.status);
}

export function reconcile(input: {
  payments: readonly PaymentRecord[];
  refunds: readonly RefundRecord[];
  credits: readonly CreditRecord[];
}): Reconciliation {
  const differences: Difference[] = [];
  const totals = new Map<string, { userId: string; currency: string; payments: number; invoices: number; ids: string[] }>();
  const customers = new Set<string>();
  let invoiceCount = 0;
  for (const payment of input.payments) {
    customers.add(payment.userId);
    if (payment.invoice) invoiceCount += 1;
    differences.push(...paymentDifferences(payment));
    const key = `${payment.userId}/${payment.currency}`;
    const entry = totals.get(key) ?? { userId: payment.userId, currency: payment.currency, payments: 0, invoices: 0, ids: [] };
    const sign = payment.kind === 'refund' ? -1 : 1;
    if (shouldBeInvoiced(payment)) entry.payments += sign * payment.amount;
    if (payment.invoice && payment.invoice.status === 'paid')
      entry.invoices += (payment.invoice.kind === 'credit_note' ? -1 : 1) * payment.invoice.total;
    entry.ids.push(payment.paymentId);
    totals.set(key, entry);
  }
  for (const entry of totals.values()) {
    if (entry.payments !== entry.invoices) {
      differences.push({
        kind: 'totals_mismatch',
        userId: entry.userId,
        currency: entry.currency,
        expected: entry.payments,
        actual: entry.invoices,
        objects: entry.ids.map((id) => ({ type: 'payment' as const, id })),
      });
    }
  }
  for (const refund of input.refunds) {
    customers.add(refund.userId);
    if (refund.refundedAmount !== refund.refundsTotal) {
      differences.push({
        kind: 'refunded_amount_mismatch',
        userId: refund.userId,
        currency: refund.currency,
        expected: refund.refundsTotal,
        actual: refund.refundedAmount,
        objects: [{ type: 'payment', id: refund.paymentId }],
      });
    }
  }
  for (const credit of input.credits) {
    customers.add(credit.userId);
    if (credit.balance !== credit.ledger) {
      differences.push({
        kind: 'credit_balance_mismatch',
        userId: credit.userId,
        currency: credit.currency,
        expected: credit.ledger,
        actual: credit.balance,
        objects: [{ type: 'credit_balance', id: `${credit.userId}/${credit.currency}` }],
      });
    }
  }
  return { checked: { customers: customers.size, payments: input.payments.length, invoices: invoiceCount }, differences };
}

function paymentDifferences(payment: PaymentRecord): Difference[] {
  const base = { userId: payment.userId, currency: payment.currency };
  const objects = [
    { type: 'payment' as const, id: payment.paymentId },
    ...(payment.invoice ? [{ type: 'invoice' as const, id: payment.invoice.id }] : []),
  ];
  if (!shouldBeInvoiced(payment)) {
    // A failed renewal's invoice is unpaid (open while retried, void or uncollectible after): it took nothing.
    const givenUp = payment.status === 'failed' && payment.invoice?.status !== 'paid' && payment.invoice?.kind === 'invoice';
    return payment.invoice && !givenUp
      ? [{ ...base, kind: 'invoice_without_payment_success', expected: 0, actual: payment.invoice.total, objects }]
      : [];
  }
  if (!payment.invoice) return [{ ...base, kind: 'payment_without_invoice', expected: payment.amount, actual: 0, objects }];
  if (payment.invoice.status !== 'paid') return [{ ...base, kind: 'invoice_status_mismatch', expected: payment.amount, actual: 0, objects }];
  const differences: Difference[] = [];
  const expectedKind = payment.kind === 'refund' ? 'credit_note' : 'invoice';
  if (payment.invoice.kind !== expectedKind)
    differences.push({ ...base, kind: 'invoice_kind_mismatch', expected: payment.amount, actual: payment.invoice.total, objects });
  if (payment.invoice.total !== payment.amount)
    differences.push({ ...base, kind: 'invoice_amount_mismatch', expected: payment.amount, actual: payment.invoice.total, objects });
  return differences;
}
