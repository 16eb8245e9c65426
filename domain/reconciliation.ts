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
 * - a credit balance equals its ledger (credits granted less credits spent);
 * - when the gateway's own record is given (GatewayRecord: PostgreSQL cannot tell what the gateway
 *   did, only what we recorded of its answers): per payment, what the gateway took under the
 *   charge's idempotency key is the card's part recorded (amount less the credit applied), and
 *   what it refunded under a refund's key is the refund recorded; nothing it took or refunded
 *   lacks a payment; and per customer and currency, what it took less what it refunded equals the
 *   card payments recorded less the refunds (the credit's part is in the credit ledger).
 */

/** A payment and the invoice or credit note written for it, if any. */
export interface PaymentRecord {
  paymentId: string;
  userId: string;
  currency: string;
  kind: 'subscription' | 'one_time' | 'booking' | 'refund';
  status: 'pending' | 'succeeded' | 'failed' | 'refunded' | 'disputed';
  amount: number;
  /** What the credit balance paid of a charge: the card was charged `amount - creditApplied`. */
  creditApplied: number;
  /** The key the charge or refund was sent to the gateway with (unique among payments). */
  idempotencyKey: string;
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
  | 'credit_balance_mismatch'
  | 'gateway_charge_mismatch'
  | 'gateway_refund_mismatch'
  | 'gateway_charge_without_payment'
  | 'gateway_refund_without_payment'
  | 'gateway_totals_mismatch';

export type ObjectType = 'payment' | 'invoice' | 'credit_balance' | 'gateway_charge' | 'gateway_refund';

export interface Difference {
  kind: DifferenceKind;
  userId: string;
  currency: string;
  /** What the rule says it should be, and what was found (minor units). */
  expected: number;
  actual: number;
  objects: Array<{ type: ObjectType; id: string }>;
}

/**
 * A charge as the gateway reports it: one per idempotency key (the gateway answers a repeated
 * key with the same charge), in its latest known state. Only `succeeded` took money.
 */
export interface GatewayCharge {
  idempotencyKey: string;
  /** Null when the gateway refused the request before it made a payment. */
  gatewayPaymentId: string | null;
  /** Our user id, which the charge carries to the gateway (Stripe: the intent's metadata). */
  userId: string;
  currency: string;
  amount: number;
  status: 'succeeded' | 'pending' | 'declined' | 'canceled';
}

/** A refund as the gateway reports it, one per idempotency key. Only `succeeded` gave money back. */
export interface GatewayRefund {
  idempotencyKey: string;
  gatewayRefundId: string;
  /** The gateway payment refunded. */
  gatewayPaymentId: string;
  /** The refunded charge's customer and currency; null when the record holds no such charge. */
  userId: string | null;
  currency: string | null;
  amount: number;
  status: 'succeeded' | 'pending' | 'failed';
}

/**
 * What the gateway itself took and gave back, for the same customers and period as the
 * payments compared with it. `source` says who kept it; the result repeats it.
 */
export interface GatewayRecord {
  source: string;
  charges: readonly GatewayCharge[];
  refunds: readonly GatewayRefund[];
}

export interface Reconciliation {
  checked: { customers: number; payments: number; invoices: number };
  /** Present only when a gateway record was compared: whose, and how many of its charges and refunds. */
  gateway?: { source: string; charges: number; refunds: number };
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
  /** Absent: PostgreSQL's side only (the result then has no `gateway`). */
  gateway?: GatewayRecord;
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
  const checked = { customers: customers.size, payments: input.payments.length, invoices: invoiceCount };
  if (!input.gateway) return { checked, differences };
  const { gateway } = input;
  for (const entry of [...gateway.charges, ...gateway.refunds]) if (entry.userId) customers.add(entry.userId);
  differences.push(...gatewayDifferences(input.payments, gateway));
  return {
    checked: { ...checked, customers: customers.size },
    gateway: { source: gateway.source, charges: gateway.charges.length, refunds: gateway.refunds.length },
    differences,
  };
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

/**
 * The gateway's side (the last rule above). Each payment meets the gateway's charge or
 * refund by its idempotency key, which both sides hold for certain (a request the gateway
 * refused has no gateway id). Only what `succeeded` moved money. A row still pending when the
 * gateway has answered counts as a difference too: the check is for books at rest (after a drill
 * or a benchmark, or for a closed period), not for charges in flight.
 */
function gatewayDifferences(payments: readonly PaymentRecord[], gateway: GatewayRecord): Difference[] {
  const differences: Difference[] = [];
  const charges = new Map(gateway.charges.map((charge) => [charge.idempotencyKey, charge]));
  const refunds = new Map(gateway.refunds.map((refund) => [refund.idempotencyKey, refund]));
  const totals = new GatewayTotals();
  for (const payment of payments) {
    const isRefund = payment.kind === 'refund';
    const entry = isRefund ? refunds.get(payment.idempotencyKey) : charges.get(payment.idempotencyKey);
    if (isRefund) refunds.delete(payment.idempotencyKey);
    else charges.delete(payment.idempotencyKey);
    const recorded = isRefund ? (payment.status === 'succeeded' ? payment.amount : 0) : cardPartTaken(payment);
    const moved = entry?.status === 'succeeded' ? entry.amount : 0;
    const objects: Difference['objects'] = [{ type: 'payment', id: payment.paymentId }, ...(entry ? [gatewayObjectOf(entry)] : [])];
    if (recorded !== moved) {
      const kind = isRefund ? 'gateway_refund_mismatch' : 'gateway_charge_mismatch';
      differences.push({ kind, userId: payment.userId, currency: payment.currency, expected: recorded, actual: moved, objects });
    }
    const sign = isRefund ? -1 : 1;
    totals.add(payment.userId, payment.currency, sign * recorded, sign * moved, objects);
  }
  // What the gateway moved for no payment we recorded (in the scope compared).
  for (const entry of [...charges.values(), ...refunds.values()]) {
    if (entry.status !== 'succeeded') continue;
    const isRefund = 'gatewayRefundId' in entry;
    // A refund of a charge the record does not hold names no customer: '' stands for unknown.
    const userId = entry.userId ?? '';
    const currency = entry.currency ?? '';
    const objects = [gatewayObjectOf(entry)];
    const kind = isRefund ? 'gateway_refund_without_payment' : 'gateway_charge_without_payment';
    differences.push({ kind, userId, currency, expected: 0, actual: entry.amount, objects });
    totals.add(userId, currency, 0, isRefund ? -entry.amount : entry.amount, objects);
  }
  return [...differences, ...totals.differences()];
}

/** What the card paid of a charge that took money (nothing for one that did not). */
function cardPartTaken(payment: PaymentRecord): number {
  return TOOK_MONEY.has(payment.status) ? payment.amount - payment.creditApplied : 0;
}

function gatewayObjectOf(entry: GatewayCharge | GatewayRefund): Difference['objects'][number] {
  if ('gatewayRefundId' in entry) return { type: 'gateway_refund', id: entry.gatewayRefundId };
  return { type: 'gateway_charge', id: entry.gatewayPaymentId ?? entry.idempotencyKey };
}

/** Per customer and currency: card payments recorded less refunds, against the gateway's takings less its refunds. */
class GatewayTotals {
  private readonly entries = new Map<
    string,
    { userId: string; currency: string; recorded: number; gateway: number; objects: Difference['objects'] }
  >();

  add(userId: string, currency: string, recorded: number, gateway: number, objects: Difference['objects']): void {
    const key = `${userId}/${currency}`;
    const entry = this.entries.get(key) ?? { userId, currency, recorded: 0, gateway: 0, objects: [] };
    entry.recorded += recorded;
    entry.gateway += gateway;
    entry.objects.push(...objects);
    this.entries.set(key, entry);
  }

  differences(): Difference[] {
    return [...this.entries.values()]
      .filter((entry) => entry.recorded !== entry.gateway)
      .map((entry) => ({
        kind: 'gateway_totals_mismatch' as const,
        userId: entry.userId,
        currency: entry.currency,
        expected: entry.recorded,
        actual: entry.gateway,
        objects: entry.objects,
      }));
  }
}
