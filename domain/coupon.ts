/**
 * Coupons and promotion codes: pure rules, no I/O, no clock (callers pass `now`).
 *
 * A coupon takes either a percentage (`percentOff`, 1–100) or a fixed amount (`amountOff` in
 * integer minor units of `currency`) off a charge, for one charge (`once`), for
 * `durationInCycles` billing cycles (`repeating`) or for as long as the subscription lives
 * (`forever`). Customers type its `code` in any case: codes compare case-insensitively.
 */
import type { PolicyProblem } from './dunning';
import { isChargeableAmount, isCurrencyCode } from './money';

export const COUPON_DURATIONS = ['once', 'repeating', 'forever'] as const;
export type CouponDuration = (typeof COUPON_DURATIONS)[number];

/** Why a code cannot be used now, as the validate route answers it. */
export const COUPON_REFUSALS = ['expired', 'exhausted', 'not_applicable', 'already_redeemed', 'unknown'] as const;
export type CouponRefusal = (typeof COUPON_REFUSALS)[number];

/** What a code looks like: 1 to 64 letters, digits, "-" or "_", starting with a letter or digit. */
export const COUPON_CODE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** The longest repeating coupon: 100 years of monthly cycles. */
export const MAX_DURATION_IN_CYCLES = 1200;

/** The most redemptions a coupon may allow (PostgreSQL integer). */
export const MAX_REDEMPTIONS = 2_147_483_647;

/** How much a coupon takes off: exactly one of the two. */
export type CouponAmount = { percentOff: number; amountOff: null; currency: null } | { percentOff: null; amountOff: number; currency: string };

/** A coupon's terms as staff create it; they never change afterwards (staff can only deactivate). */
export interface CouponTerms {
  code: string;
  percentOff: number | null;
  amountOff: number | null;
  /** Lower-case ISO 4217, with `amountOff` only. */
  currency: string | null;
  duration: CouponDuration;
  /** With `repeating` only: how many billing cycles it covers. */
  durationInCycles: number | null;
  /** How many customers may redeem it; null: no limit. */
  maxRedemptions: number | null;
  /** ISO-8601: it cannot be redeemed from then on; null: no deadline. */
  redeemBy: string | null;
  /** The plan ids it may be applied to; null: every plan. */
  appliesToPlans: string[] | null;
  /** Only for a customer who never subscribed before. */
  firstTimeOnly: boolean;
}

/** A coupon as it stands: its terms, whether staff deactivated it, and how many redeemed it. */
export interface CouponState extends CouponTerms {
  id: string;
  active: boolean;
  redemptionCount: number;
}

/** The canonical form of a code, for comparing and for the unique index on lower(code). */
export function normalizeCouponCode(code: string): string {
  return code.trim().toLowerCase();
}

/** Why these terms cannot be a coupon, one problem per bad field; empty when they are valid. */
export function couponTermsProblems(terms: CouponTerms, now?: Date): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const add = (field: string, message: string) => problems.push({ path: [field], message });
  if (!COUPON_CODE.test(terms.code)) add('code', 'must be 1 to 64 letters, digits, "-" or "_"');
  problems.push(...amountProblems(terms));
  problems.push(...durationProblems(terms));
  if (
    terms.maxRedemptions !== null &&
    !(Number.isInteger(terms.maxRedemptions) && terms.maxRedemptions >= 1 && terms.maxRedemptions <= MAX_REDEMPTIONS)
  ) {
    add('maxRedemptions', `must be a whole number from 1 to ${MAX_REDEMPTIONS}`);
  }
  if (terms.redeemBy !== null) {
    const at = Date.parse(terms.redeemBy);
    if (Number.isNaN(at)) add('redeemBy', 'must be an ISO-8601 date-time');
    else if (now && at <= now.getTime()) add('redeemBy', 'must be in the future');
  }
  if (terms.appliesToPlans !== null && terms.appliesToPlans.length === 0)
    add('appliesToPlans', 'must name at least one plan (or be absent: every plan)');
  return problems;
}

function amountProblems(terms: CouponTerms): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const add = (field: string, message: string) => problems.push({ path: [field], message });
  if (terms.percentOff === null && terms.amountOff === null) {
    add('percentOff', 'one of percentOff or amountOff is required');
    return problems;
  }
  if (terms.percentOff !== null && terms.amountOff !== null) {
    add('amountOff', 'give percentOff or amountOff, not both');
    return problems;
  }
  if (terms.percentOff !== null) {
    if (!(Number.isInteger(terms.percentOff) && terms.percentOff >= 1 && terms.percentOff <= 100))
      add('percentOff', 'must be a whole number from 1 to 100');
    if (terms.currency !== null) add('currency', 'only goes with amountOff');
    return problems;
  }
  if (!isChargeableAmount(terms.amountOff!)) add('amountOff', 'must be a positive whole number of minor units');
  if (terms.currency === null) add('currency', 'is required with amountOff');
  else if (!isCurrencyCode(terms.currency)) add('currency', 'must be a three-letter ISO 4217 code');
  return problems;
}

function durationProblems(terms: CouponTerms): PolicyProblem[] {
  if (!COUPON_DURATIONS.includes(terms.duration)) return [{ path: ['duration'], message: `must be one of ${COUPON_DURATIONS.join(', ')}` }];
  if (terms.duration === 'repeating') {
    const n = terms.durationInCycles;
    if (n === null || !(Number.isInteger(n) && n >= 1 && n <= MAX_DURATION_IN_CYCLES)) {
      return [{ path: ['durationInCycles'], message: `a repeating coupon needs a whole number of cycles from 1 to ${MAX_DURATION_IN_CYCLES}` }];
    }
    return [];
  }
  if (terms.durationInCycles !== null) return [{ path: ['durationInCycles'], message: 'only goes with duration "repeating"' }];
  return [];
}

/**
 * What the coupon takes off a charge of `amount` minor units in `currency`: never more than the
 * amount (a coupon larger than the charge makes it free, it never pays the customer), a 100 %
 * coupon takes all of it. A percentage rounds half up to the minor unit (computed in BigInt, so
 * exact for every safe amount). Null when it does not apply: a fixed amount in another currency.
 */
export function discountFor(coupon: Pick<CouponTerms, 'percentOff' | 'amountOff' | 'currency'>, amount: number, currency: string): number | null {
  if (!Number.isSafeInteger(amount) || amount < 0) throw new RangeError(`${amount} is not a whole number of minor units`);
  if (coupon.percentOff !== null) {
    const off = (BigInt(amount) * BigInt(coupon.percentOff) * 2n + 100n) / 200n;
    return Math.min(amount, Number(off));
  }
  if (coupon.amountOff === null || coupon.currency === null) return null;
  if (coupon.currency.toLowerCase() !== currency.toLowerCase()) return null;
  return Math.min(amount, coupon.amountOff);
}

/**
 * A coupon applied to a subscription: the terms that price its charges (frozen at redemption, so
 * deactivating the coupon later changes nothing) and how many charges it still covers.
 */
export interface AppliedDiscount {
  couponId: string;
  couponCode: string;
  percentOff: number | null;
  amountOff: number | null;
  currency: string | null;
  duration: CouponDuration;
  /** Billing cycles it still covers; null: forever. 0: used up. */
  remainingCycles: number | null;
}

/** The discount a redemption gives a subscription, before any charge. */
export function appliedDiscountOf(coupon: CouponState): AppliedDiscount {
  return {
    couponId: coupon.id,
    couponCode: coupon.code,
    percentOff: coupon.percentOff,
    amountOff: coupon.amountOff,
    currency: coupon.currency,
    duration: coupon.duration,
    remainingCycles: initialCycles(coupon),
  };
}

function initialCycles(coupon: Pick<CouponTerms, 'duration' | 'durationInCycles'>): number | null {
  if (coupon.duration === 'forever') return null;
  if (coupon.duration === 'once') return 1;
  return coupon.durationInCycles ?? 1;
}

/** Whether it still takes something off the next cycle's charge. */
export function coversNextCycle(discount: AppliedDiscount | null): discount is AppliedDiscount {
  return discount !== null && (discount.remainingCycles === null || discount.remainingCycles > 0);
}

/**
 * A cycle's charge with the discount: `{discount, amount}` where `amount` is what is left to pay
 * (from credit, then the card). Nothing off when the discount is used up or does not apply.
 */
export function discountedCharge(discount: AppliedDiscount | null, amount: number, currency: string): { discount: number; amount: number } {
  const off = coversNextCycle(discount) ? (discountFor(discount, amount, currency) ?? 0) : 0;
  return { discount: off, amount: amount - off };
}

/**
 * The discount after a cycle's charge succeeded: one cycle fewer (never below 0; `forever` stays).
 * Only a period's charge uses a cycle: a plan change's proration is discounted by the same terms
 * within the cycle already counted, so a repeating coupon keeps its cycles across a plan change.
 */
export function afterCycleCharged(discount: AppliedDiscount): AppliedDiscount {
  if (discount.remainingCycles === null) return discount;
  return { ...discount, remainingCycles: Math.max(0, discount.remainingCycles - 1) };
}

/** What the validate route and a redemption know about the customer and what they buy. */
export interface RedemptionContext {
  now: Date;
  /** The plan the code is for; absent: judged without a plan (appliesToPlans and currency unchecked). */
  plan?: { id: string; currency: string };
  /** The customer redeemed this coupon already (a live redemption). */
  alreadyRedeemed: boolean;
  /** The customer has subscribed before (for `firstTimeOnly`). */
  hasSubscribedBefore: boolean;
}

/**
 * Why the code cannot be used now, or null when it can. `unknown`: no such code; `expired`:
 * deactivated or past `redeemBy`; `already_redeemed`: this customer has it; `exhausted`: every
 * place is taken; `not_applicable`: not for this plan, its currency, or a returning customer.
 */
export function couponRefusal(coupon: CouponState | null, ctx: RedemptionContext): CouponRefusal | null {
  if (coupon === null) return 'unknown';
  if (!coupon.active) return 'expired';
  if (coupon.redeemBy !== null && Date.parse(coupon.redeemBy) <= ctx.now.getTime()) return 'expired';
  if (ctx.alreadyRedeemed) return 'already_redeemed';
  if (coupon.maxRedemptions !== null && coupon.redemptionCount >= coupon.maxRedemptions) return 'exhausted';
  if (coupon.firstTimeOnly && ctx.hasSubscribedBefore) return 'not_applicable';
  if (ctx.plan) {
    if (coupon.appliesToPlans !== null && !coupon.appliesToPlans.includes(ctx.plan.id)) return 'not_applicable';
    if (coupon.currency !== null && coupon.currency.toLowerCase() !== ctx.plan.currency.toLowerCase()) return 'not_applicable';
  }
  return null;
}
