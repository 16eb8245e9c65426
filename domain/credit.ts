/**
 * A customer's credit balance, one per currency, in integer minor units: proration and goodwill
 * credits go in, later charges use it first and charge the card only for the rest. Every change
 * is a ledger entry with a unique idempotency key, so each one happens once however often the
 * step that makes it is retried; the keys below name them.
 */

/** What moved credit: `spent` by a charge, `restored` when that charge failed (or was given back). */
export const CREDIT_KINDS = ['goodwill', 'proration', 'spent', 'restored', 'referral'] as const;
export type CreditKind = (typeof CREDIT_KINDS)[number];

/** The kinds a grant may add; `spent` is only ever written by a charge's claim. */
export type CreditGrantKind = Exclude<CreditKind, 'spent'>;

export interface CreditBalance {
  /** Lower-case ISO 4217. */
  currency: string;
  /** Minor units, never negative. */
  amount: number;
}

/** Credit added to a customer's balance, once per `idempotencyKey`. */
export interface CreditGrant {
  userId: string;
  currency: string;
  /** Positive minor units. */
  amount: number;
  kind: CreditGrantKind;
  reason?: string;
  /** The staff member who granted it, for goodwill. */
  actorId?: string;
  /** The payment it comes from, when it gives back what a charge spent. */
  paymentId?: string;
  /** Unique among all ledger entries: a repeat with the key adds nothing. */
  idempotencyKey: string;
}

/** The ledger key of a charge's use of the balance: at most one per payment. */
export function creditSpendKey(paymentId: string): string {
  return `spend/${paymentId}`;
}

/** The ledger key of the credit a failed charge gives back: at most once per payment. */
export function creditRestoreKey(paymentId: string): string {
  return `restore/${paymentId}`;
}

/** The ledger key of the credit a plan change's proration leaves (its negative net). */
export function prorationCreditKey(workflowId: string, changeId: string): string {
  return `proration/${workflowId}/${changeId}`;
}

/** What a charge takes from a balance: all of it up to the charge's amount. */
export function creditToApply(balance: number, upTo: number): number {
  return Math.max(0, Math.min(balance, upTo));
}

/**
 * How a refund of `amount` from one charge is given back: to the card first, up to what the card
 * was charged and not yet refunded, the rest to the credit balance the charge spent. `refunded` is
 * what was given back of the charge so far both ways; card first throughout means it is all card
 * until the card part is spent. A charge that used no credit refunds everything to the card.
 */
export function splitRefund(charge: { amount: number; credit?: number; refunded: number }, amount: number): { toCard: number; toCredit: number } {
  const cardCharged = charge.amount - (charge.credit ?? 0);
  const toCard = Math.min(amount, Math.max(0, cardCharged - charge.refunded));
  return { toCard, toCredit: amount - toCard };
}
