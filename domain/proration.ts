/**
 * Proration of a change of terms in the middle of a paid period [periodStart, periodEnd). The part
 * of the period still unused at `at` is credited on the old terms and charged on the new ones:
 *
 *   fraction = unused / length, both in whole seconds
 *   credit   = floor(periodAmount(from) × fraction)
 *   charge   = floor(periodAmount(to) × fraction)
 *   net      = charge − credit (negative for a downgrade: the customer is owed money)
 *
 * Seconds are floored: `unused` = floor((periodEnd − at) / 1 s), so a second that has begun counts
 * as used and the customer is never credited time they already had. `length` is floored the same
 * way, so at = periodStart gives exactly the whole period and the fraction never exceeds 1.
 * (Periods from `billingPeriod` keep the anchor's milliseconds at both ends, so their length is a
 * whole number of seconds anyway; only a hand-made period can lose a part-second.) A change at or
 * before periodStart prorates the whole period; at or after periodEnd, nothing.
 *
 * Money is rounded DOWN on both sides. For the credit that means it never exceeds what was paid
 * (credit ≤ periodAmount(from)). Using the same rule for the charge makes the two sides one formula:
 * unchanged terms give credit === charge (net exactly 0), and the credit of A → B is the charge of
 * B → A, so no change ever mints or loses a minor unit through rounding; each side is within one
 * minor unit of the exact share. The products can pass 2^53 (1e13 minor units × 3e7 seconds), so
 * they are computed with BigInt; the results are at most periodAmount, which is a safe integer.
 */
import { isCurrencyCode } from './money';

export const MAX_QUANTITY = 10_000;

/** What a subscription pays: `amount` per period per seat, in minor units, for `quantity` seats. */
export interface Terms {
  amount: number;
  quantity: number;
}

export interface Proration {
  /** Minor units given back for the unused part of the period on the old terms. */
  credit: number;
  /** Minor units owed for the same part of the period on the new terms. */
  charge: number;
  /** charge − credit; negative when the customer is owed money. */
  net: number;
  /** Lower-case ISO 4217 code ('usd'). */
  currency: string;
  /** The end of the prorated period, ISO-8601 UTC. */
  periodEnd: string;
}

const MS_PER_SECOND = 1000;

/** A whole number of seats from 1 to MAX_QUANTITY. */
export function isValidQuantity(q: unknown): q is number {
  return typeof q === 'number' && Number.isInteger(q) && q >= 1 && q <= MAX_QUANTITY;
}

/** amount × quantity in minor units; RangeError for bad terms or a total JS cannot hold exactly. */
export function periodAmount(terms: Terms): number {
  const { amount, quantity } = terms;
  if (!Number.isSafeInteger(amount) || amount < 0) {
    throw new RangeError(`amount must be a non-negative whole number of minor units, got ${amount}`);
  }
  if (!isValidQuantity(quantity)) throw new RangeError(`quantity must be a whole number from 1 to ${MAX_QUANTITY}, got ${String(quantity)}`);
  const total = BigInt(amount) * BigInt(quantity);
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${amount} × ${quantity} seats is too large to be held exactly`);
  return Number(total);
}

/** The credit for the old terms and the charge for the new ones when terms change at `at`. */
export function prorate(input: { periodStart: Date; periodEnd: Date; at: Date; from: Terms; to: Terms; currency: string }): Proration {
  if (!isCurrencyCode(input.currency)) throw new RangeError(`"${input.currency}" is not an ISO 4217 currency code`);
  const { unused, length } = unusedSeconds(input.periodStart, input.periodEnd, input.at);
  const credit = share(periodAmount(input.from), unused, length);
  const charge = share(periodAmount(input.to), unused, length);
  return { credit, charge, net: charge - credit, currency: input.currency.toLowerCase(), periodEnd: input.periodEnd.toISOString() };
}

/** The period's length and the part of it after `at`, both in whole seconds rounded down. */
function unusedSeconds(periodStart: Date, periodEnd: Date, at: Date): { unused: bigint; length: bigint } {
  const start = timeOf(periodStart, 'periodStart');
  const end = timeOf(periodEnd, 'periodEnd');
  const length = Math.floor((end - start) / MS_PER_SECOND);
  if (length < 1) {
    throw new RangeError(`a period must last at least one second, got ${periodStart.toISOString()} to ${periodEnd.toISOString()}`);
  }
  const unusedMs = Math.min(Math.max(end - timeOf(at, 'at'), 0), end - start);
  return { unused: BigInt(Math.floor(unusedMs / MS_PER_SECOND)), length: BigInt(length) };
}

function timeOf(date: Date, name: string): number {
  const time = date instanceof Date ? date.getTime() : NaN;
  if (!Number.isFinite(time)) throw new RangeError(`${name} must be a valid date`);
  return time;
}

/** floor(amount × unused / length); BigInt division of non-negative values rounds down. */
function share(amount: number, unused: bigint, length: bigint): number {
  return Number((BigInt(amount) * unused) / length);
}
