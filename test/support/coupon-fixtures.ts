import { randomUUID } from 'node:crypto';
import type { CouponState, CouponTerms } from '../../domain/coupon';

/** A coupon's terms for tests: 25 % off once, for anyone, with no limit; `fields` change any of them. */
export function testCouponTerms(fields: Partial<CouponTerms> = {}): CouponTerms {
  return {
    code: 'SPRING25',
    percentOff: 25,
    amountOff: null,
    currency: null,
    duration: 'once',
    durationInCycles: null,
    maxRedemptions: null,
    redeemBy: null,
    appliesToPlans: null,
    firstTimeOnly: false,
    ...fields,
  };
}

/** A coupon as it stands (active, never redeemed) with those terms, under an id of its own. */
export function testCouponState(fields: Partial<CouponState> = {}): CouponState {
  return { ...testCouponTerms(), id: randomUUID(), active: true, redemptionCount: 0, ...fields };
}
