/**
 * Bookings: units of an offering bought by a customer, with the money rules of their life —
 * the price of a set of units, the refund a cancellation earns, and which charges a refund
 * draws on. All amounts are integer minor units.
 */
import type { ChargeResult } from './payment';
import { addPeriods, isIsoDuration } from './period';

/**
 * A booking's life: `pending` while its saga runs, then `failed` or `confirmed`; a confirmed
 * booking may be `canceled`, is `checked_in` when staff admit its holder, and is a `no_show`
 * when its offering ends before that. `failed`, `canceled`, `checked_in` and `no_show` are final.
 */
export type BookingStatus = 'pending' | 'confirmed' | 'failed' | 'canceled' | 'checked_in' | 'no_show';

export type OfferingKind = 'appointment' | 'seating' | 'parking';
export const OFFERING_KINDS: readonly OfferingKind[] = ['appointment', 'seating', 'parking'];

/** Why a booking saga gave up; each one ran the compensations of the steps before it. */
export type BookingFailureReason = 'hold_unavailable' | 'subscription_required' | 'payment_declined' | 'payment_timeout' | 'confirm_failed';

export interface BookingView {
  id: string;
  userId: string;
  offeringId: string;
  unitIds: string[];
  status: BookingStatus;
  /** The booking's current price, which is what the customer has paid net of reschedule refunds. */
  amount: number;
  currency: string;
  /** Money returned by a cancellation; `amount - refundedAmount` is what the customer keeps paid. */
  refundedAmount: number;
  workflowId: string;
  createdAt: string;
  /** What the customer shows at the door (CONFIRMATION_CODE_LENGTH characters); null for bookings from before codes. */
  confirmationCode: string | null;
  /** When staff checked the booking in; null until then. */
  checkedInAt: string | null;
}

export function bookingWorkflowId(bookingId: string): string {
  return `booking-${bookingId}`;
}

export function describeBookingFailure(reason: BookingFailureReason): string {
  switch (reason) {
    case 'hold_unavailable':
      return 'The hold is no longer active (it expired, was released or was already used).';
    case 'subscription_required':
      return 'This offering requires an active subscription.';
    case 'payment_declined':
      return 'The payment was declined.';
    case 'payment_timeout':
      return 'The payment was not completed in time.';
    case 'confirm_failed':
      return 'The units could not be confirmed; the payment was refunded.';
  }
}

export class MixedCurrencyError extends Error {
  constructor(readonly currencies: string[]) {
    super(`units are priced in more than one currency: ${currencies.join(', ')}`);
    this.name = 'MixedCurrencyError';
  }
}

/** The total price of some units, which must share one currency. */
export function totalPrice(units: readonly { amount: number; currency: string }[]): { amount: number; currency: string } {
  const currencies = [...new Set(units.map((u) => u.currency))];
  if (currencies.length !== 1) throw new MixedCurrencyError(currencies);
  return { amount: units.reduce((sum, u) => sum + u.amount, 0), currency: currencies[0] };
}

/**
 * An offering's cancellation terms. `freeUntil` is an ISO-8601 duration before `startsAt`:
 * cancelling earlier than `startsAt - freeUntil` refunds everything, later (but before
 * `startsAt`) refunds `lateRefundPercent`, and from `startsAt` on refunds nothing. Without
 * a `freeUntil` the full refund lasts until `startsAt`.
 */
export interface CancellationPolicy {
  freeUntil: string | null;
  lateRefundPercent: number;
}

export type RefundTier = 'full' | 'late' | 'none';

/** Why a cancellation policy is unacceptable, or undefined when it is fine. */
export function cancellationPolicyProblem(policy: CancellationPolicy): string | undefined {
  if (policy.freeUntil !== null && !isIsoDuration(policy.freeUntil)) {
    return `freeUntil "${policy.freeUntil}" is not an ISO-8601 duration such as P1D or PT12H`;
  }
  const percent = policy.lateRefundPercent;
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) {
    return `lateRefundPercent must be a whole number from 0 to 100, got ${percent}`;
  }
  return undefined;
}

/** The moment the full refund ends: `startsAt - freeUntil` (calendar-correct for months). */
export function freeCancellationEndsAt(startsAt: Date, policy: CancellationPolicy): Date {
  return policy.freeUntil === null ? startsAt : addPeriods(startsAt, policy.freeUntil, -1);
}

export function refundTier(startsAt: Date, policy: CancellationPolicy, now: Date): RefundTier {
  if (now.getTime() >= startsAt.getTime()) return 'none';
  return now.getTime() < freeCancellationEndsAt(startsAt, policy).getTime() ? 'full' : 'late';
}

/**
 * The refund a cancellation at `now` earns on a booking of `amount`. A late refund is
 * `lateRefundPercent` of the amount rounded DOWN to a whole minor unit (the business keeps the
 * fraction: 50% of 999 cents refunds 499), computed exactly in integers.
 */
export function cancellationRefund(input: { amount: number; startsAt: Date; policy: CancellationPolicy; now: Date }): {
  tier: RefundTier;
  amount: number;
} {
  const tier = refundTier(input.startsAt, input.policy, input.now);
  switch (tier) {
    case 'full':
      return { tier, amount: input.amount };
    case 'late':
      return { tier, amount: percentRoundedDown(input.amount, input.policy.lateRefundPercent) };
    case 'none':
      return { tier, amount: 0 };
  }
}

function percentRoundedDown(amount: number, percent: number): number {
  return Number((BigInt(amount) * BigInt(percent)) / 100n);
}

/** A charge that paid for a booking, and how much of it has been refunded so far. */
export interface BookingCharge {
  paymentId: string;
  amount: number;
  /** Given back so far, to the card and (past what the card paid) to the credit balance. */
  refunded: number;
  /** What of `amount` the customer's credit balance paid; absent when none (and in runs from before it). */
  credit?: number;
}

/** A charge that went through, as a booking counts it: with what the credit balance paid of it. */
export function bookingChargeOf(paid: Pick<ChargeResult, 'paymentId' | 'creditApplied'>, amount: number): BookingCharge {
  // Results recorded before the credit balance carry no creditApplied (undefined): no credit then.
  return { paymentId: paid.paymentId, amount, refunded: 0, ...(paid.creditApplied > 0 ? { credit: paid.creditApplied } : {}) };
}

export class RefundExceedsChargesError extends Error {
  constructor(
    readonly requested: number,
    readonly refundable: number,
  ) {
    super(`cannot refund ${requested}: only ${refundable} of the charges is left to refund`);
    this.name = 'RefundExceedsChargesError';
  }
}

/**
 * Splits a refund over the charges that paid for a booking, newest charge first (a reschedule's
 * top-up is given back before the original payment), never more than a charge has left.
 */
export function allocateRefund(charges: readonly BookingCharge[], amount: number): { paymentId: string; amount: number }[] {
  const refundable = refundableAmount(charges);
  if (amount > refundable) throw new RefundExceedsChargesError(amount, refundable);
  const parts: { paymentId: string; amount: number }[] = [];
  let rest = amount;
  for (const charge of [...charges].reverse()) {
    if (rest === 0) break;
    const part = Math.min(rest, charge.amount - charge.refunded);
    if (part > 0) parts.push({ paymentId: charge.paymentId, amount: part });
    rest -= part;
  }
  return parts;
}

/** The charges after `parts` of a refund went through. */
export function applyRefund(charges: readonly BookingCharge[], parts: readonly { paymentId: string; amount: number }[]): BookingCharge[] {
  return charges.map((c) => ({
    ...c,
    refunded: c.refunded + parts.filter((p) => p.paymentId === c.paymentId).reduce((sum, p) => sum + p.amount, 0),
  }));
}

/** What the booking's refunds have given back so far. */
export function totalRefunded(charges: readonly BookingCharge[]): number {
  return charges.reduce((sum, c) => sum + c.refunded, 0);
}

/** What is left to refund over the booking's charges. */
export function refundableAmount(charges: readonly BookingCharge[]): number {
  return charges.reduce((sum, c) => sum + c.amount - c.refunded, 0);
}

// ---------------------------------------------------------------------------------------------
// Confirmation codes and check-in
// ---------------------------------------------------------------------------------------------

/** Letters and digits that cannot be misread for one another: no 0/O, no 1/I/L. */
export const CONFIRMATION_CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
export const CONFIRMATION_CODE_LENGTH = 8;
const CONFIRMATION_CODE_PATTERN = new RegExp(`^[${CONFIRMATION_CODE_ALPHABET}]{${CONFIRMATION_CODE_LENGTH}}$`);

/**
 * A confirmation code from random bytes (at least CONFIRMATION_CODE_LENGTH of them); each byte
 * picks one character. The small bias of `byte % 31` does not matter for a code that is unique
 * by index, not by chance alone.
 */
export function confirmationCodeFrom(bytes: Uint8Array): string {
  if (bytes.length < CONFIRMATION_CODE_LENGTH) throw new RangeError(`a confirmation code needs ${CONFIRMATION_CODE_LENGTH} random bytes`);
  let code = '';
  for (let i = 0; i < CONFIRMATION_CODE_LENGTH; i++) code += CONFIRMATION_CODE_ALPHABET[bytes[i] % CONFIRMATION_CODE_ALPHABET.length];
  return code;
}

/** A code as people type it: case and spaces or dashes between groups do not matter. */
export function normalizeConfirmationCode(input: string): string {
  return input.replace(/[\s-]/g, '').toUpperCase();
}

export function isConfirmationCode(code: string): boolean {
  return CONFIRMATION_CODE_PATTERN.test(code);
}

/** Why a booking in `status` cannot be checked in (null when it can): staff read it at the door. */
export function checkInRefusal(status: BookingStatus, checkedInAt: string | null): string | null {
  switch (status) {
    case 'confirmed':
      return null;
    case 'checked_in':
      return checkedInAt ? `the booking was already checked in at ${checkedInAt}` : 'the booking was already checked in';
    case 'canceled':
      return 'the booking was canceled';
    case 'no_show':
      return 'the offering has ended: the booking is a no-show';
    case 'failed':
      return 'the booking failed and was never confirmed';
    case 'pending':
      return 'the booking is not confirmed yet';
  }
}

/**
 * Reschedules a booking accepts in its life. Each one is an update of the booking's workflow,
 * whose history has a budget of updates: the cap keeps a customer from spending it and locking
 * out the cancel and the staff refunds that must still get through.
 */
export const MAX_RESCHEDULES = 10;

/** Why one more reschedule is refused after `done` of them (each accepted one counts), or undefined. */
export function rescheduleLimitRefusal(done: number): string | undefined {
  if (done < MAX_RESCHEDULES) return undefined;
  return `a booking can be rescheduled at most ${MAX_RESCHEDULES} times (MAX_RESCHEDULES); cancel it and book again instead`;
}
