import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { testCouponTerms } from '../test/support/coupon-fixtures';
import {
  afterCycleCharged,
  appliedDiscountOf,
  couponRefusal,
  couponTermsProblems,
  coversNextCycle,
  discountedCharge,
  discountFor,
  normalizeCouponCode,
  type CouponState,
  type CouponTerms,
  type RedemptionContext,
} from './coupon';

const NOW = new Date('2026-06-01T12:00:00Z');

const terms = testCouponTerms;

function coupon(fields: Partial<CouponState> = {}): CouponState {
  return { id: 'c1', active: true, redemptionCount: 0, ...terms(), ...fields };
}

const fieldsOf = (t: CouponTerms, now?: Date) => couponTermsProblems(t, now).map((p) => p.path.join('.'));

describe('couponTermsProblems', () => {
  test('valid terms of every shape', () => {
    assert.deepEqual(fieldsOf(terms()), []);
    assert.deepEqual(fieldsOf(terms({ percentOff: 100 })), []);
    assert.deepEqual(fieldsOf(terms({ percentOff: null, amountOff: 500, currency: 'usd', duration: 'forever' })), []);
    assert.deepEqual(
      fieldsOf(terms({ duration: 'repeating', durationInCycles: 3, maxRedemptions: 50, appliesToPlans: ['p1'], firstTimeOnly: true })),
      [],
    );
    assert.deepEqual(fieldsOf(terms({ redeemBy: '2026-07-01T00:00:00Z' }), NOW), []);
  });

  test('percentOff is a whole number from 1 to 100', () => {
    for (const percentOff of [0, 101, 12.5, -5]) assert.deepEqual(fieldsOf(terms({ percentOff })), ['percentOff'], `percentOff ${percentOff}`);
  });

  test('exactly one of percentOff and amountOff; amountOff needs a currency', () => {
    assert.deepEqual(fieldsOf(terms({ percentOff: null })), ['percentOff']);
    assert.deepEqual(fieldsOf(terms({ amountOff: 100, currency: 'usd' })), ['amountOff']);
    assert.deepEqual(fieldsOf(terms({ percentOff: null, amountOff: 100 })), ['currency']);
    assert.deepEqual(fieldsOf(terms({ percentOff: null, amountOff: 100, currency: 'dollars' })), ['currency']);
    assert.deepEqual(fieldsOf(terms({ percentOff: null, amountOff: 0, currency: 'usd' })), ['amountOff']);
    assert.deepEqual(fieldsOf(terms({ percentOff: null, amountOff: 1.5, currency: 'usd' })), ['amountOff']);
    assert.deepEqual(fieldsOf(terms({ currency: 'usd' })), ['currency']);
  });

  test('durationInCycles goes with repeating only, and repeating needs it', () => {
    assert.deepEqual(fieldsOf(terms({ duration: 'repeating' })), ['durationInCycles']);
    assert.deepEqual(fieldsOf(terms({ duration: 'repeating', durationInCycles: 0 })), ['durationInCycles']);
    assert.deepEqual(fieldsOf(terms({ duration: 'repeating', durationInCycles: 1201 })), ['durationInCycles']);
    assert.deepEqual(fieldsOf(terms({ duration: 'once', durationInCycles: 3 })), ['durationInCycles']);
    assert.deepEqual(fieldsOf(terms({ duration: 'weekly' as never })), ['duration']);
  });

  test('code, maxRedemptions, redeemBy and appliesToPlans', () => {
    assert.deepEqual(fieldsOf(terms({ code: '-x' })), ['code']);
    assert.deepEqual(fieldsOf(terms({ code: 'a'.repeat(65) })), ['code']);
    assert.deepEqual(fieldsOf(terms({ maxRedemptions: 0 })), ['maxRedemptions']);
    assert.deepEqual(fieldsOf(terms({ maxRedemptions: 2.5 })), ['maxRedemptions']);
    assert.deepEqual(fieldsOf(terms({ redeemBy: 'tomorrow' })), ['redeemBy']);
    assert.deepEqual(fieldsOf(terms({ redeemBy: '2026-05-01T00:00:00Z' }), NOW), ['redeemBy']);
    assert.deepEqual(fieldsOf(terms({ appliesToPlans: [] })), ['appliesToPlans']);
  });

  test('codes compare case-insensitively', () => {
    assert.equal(normalizeCouponCode(' Spring25 '), 'spring25');
    assert.equal(normalizeCouponCode('SPRING25'), normalizeCouponCode('spring25'));
  });
});

describe('discountFor', () => {
  test('a percentage rounds half up to the minor unit', () => {
    assert.equal(discountFor(terms({ percentOff: 25 }), 1999, 'usd'), 500); // 499.75
    assert.equal(discountFor(terms({ percentOff: 10 }), 1995, 'usd'), 200); // 199.5
    assert.equal(discountFor(terms({ percentOff: 10 }), 1994, 'usd'), 199); // 199.4
    assert.equal(discountFor(terms({ percentOff: 1 }), 1, 'usd'), 0);
    assert.equal(discountFor(terms({ percentOff: 33 }), Number.MAX_SAFE_INTEGER, 'usd'), 2972375754064527); // 2972375754064527.03: exact in BigInt
  });

  test('a 100 % coupon takes the whole charge, whatever the currency', () => {
    assert.equal(discountFor(terms({ percentOff: 100 }), 1999, 'usd'), 1999);
    assert.equal(discountFor(terms({ percentOff: 100 }), 500, 'jpy'), 500);
    assert.deepEqual(discountedCharge(appliedDiscountOf(coupon({ percentOff: 100 })), 1999, 'usd'), { discount: 1999, amount: 0 });
  });

  test('a fixed amount larger than the charge makes it free, never negative', () => {
    const big = terms({ percentOff: null, amountOff: 5000, currency: 'usd' });
    assert.equal(discountFor(big, 1999, 'usd'), 1999);
    assert.equal(discountFor(big, 0, 'usd'), 0);
    assert.equal(discountFor(big, 7000, 'USD'), 5000);
  });

  test('a fixed amount in another currency does not apply', () => {
    const usd = terms({ percentOff: null, amountOff: 500, currency: 'usd' });
    assert.equal(discountFor(usd, 1999, 'eur'), null);
    assert.deepEqual(discountedCharge(appliedDiscountOf(coupon({ percentOff: null, amountOff: 500, currency: 'usd' })), 1999, 'eur'), {
      discount: 0,
      amount: 1999,
    });
  });

  test('refuses amounts that are not whole minor units', () => {
    assert.throws(() => discountFor(terms(), 1.5, 'usd'), RangeError);
    assert.throws(() => discountFor(terms(), -1, 'usd'), RangeError);
  });
});

describe('cycles', () => {
  test('once covers one charge', () => {
    const applied = appliedDiscountOf(coupon({ duration: 'once' }));
    assert.equal(applied.remainingCycles, 1);
    assert.ok(coversNextCycle(applied));
    const after = afterCycleCharged(applied);
    assert.equal(after.remainingCycles, 0);
    assert.equal(coversNextCycle(after), false);
    assert.deepEqual(discountedCharge(after, 1000, 'usd'), { discount: 0, amount: 1000 });
    assert.equal(afterCycleCharged(after).remainingCycles, 0, 'never below zero');
  });

  test('repeating covers durationInCycles charges; forever never runs out', () => {
    let applied = appliedDiscountOf(coupon({ duration: 'repeating', durationInCycles: 3 }));
    const covered: number[] = [];
    for (let cycle = 0; cycle < 5; cycle++) {
      covered.push(discountedCharge(applied, 1000, 'usd').discount);
      if (coversNextCycle(applied)) applied = afterCycleCharged(applied);
    }
    assert.deepEqual(covered, [250, 250, 250, 0, 0]);
    const forever = appliedDiscountOf(coupon({ duration: 'forever' }));
    assert.equal(afterCycleCharged(afterCycleCharged(forever)).remainingCycles, null);
    assert.ok(coversNextCycle(afterCycleCharged(forever)));
    assert.equal(coversNextCycle(null), false);
  });

  test('a repeating coupon across a plan change keeps its cycles and prices the new plan', () => {
    // Three cycles of 25 % off; one charged on the old plan (2000), then an upgrade to 5000.
    let applied = afterCycleCharged(appliedDiscountOf(coupon({ duration: 'repeating', durationInCycles: 3 })));
    // The proration charged within the cycle is discounted by the same terms and uses no cycle.
    assert.deepEqual(discountedCharge(applied, 3000, 'usd'), { discount: 750, amount: 2250 });
    assert.equal(applied.remainingCycles, 2);
    const renewals: number[] = [];
    for (let cycle = 0; cycle < 3; cycle++) {
      renewals.push(discountedCharge(applied, 5000, 'usd').amount);
      if (coversNextCycle(applied)) applied = afterCycleCharged(applied);
    }
    assert.deepEqual(renewals, [3750, 3750, 5000]);
  });

  test('a fixed-amount coupon across a plan change into a cheaper plan never exceeds it', () => {
    const applied = appliedDiscountOf(coupon({ percentOff: null, amountOff: 1500, currency: 'usd', duration: 'forever' }));
    assert.deepEqual(discountedCharge(applied, 4999, 'usd'), { discount: 1500, amount: 3499 });
    assert.deepEqual(discountedCharge(applied, 999, 'usd'), { discount: 999, amount: 0 });
  });

  test('the applied terms are frozen: deactivating the coupon later changes nothing', () => {
    const applied = appliedDiscountOf(coupon({ duration: 'forever' }));
    assert.deepEqual(applied, {
      couponId: 'c1',
      couponCode: 'SPRING25',
      percentOff: 25,
      amountOff: null,
      currency: null,
      duration: 'forever',
      remainingCycles: null,
    });
  });
});

describe('couponRefusal', () => {
  const ctx = (fields: Partial<RedemptionContext> = {}): RedemptionContext => ({
    now: NOW,
    alreadyRedeemed: false,
    hasSubscribedBefore: false,
    plan: { id: 'p1', currency: 'usd' },
    ...fields,
  });

  test('a valid code', () => {
    assert.equal(couponRefusal(coupon(), ctx()), null);
    assert.equal(couponRefusal(coupon({ maxRedemptions: 2, redemptionCount: 1 }), ctx()), null);
    assert.equal(couponRefusal(coupon({ redeemBy: '2026-06-01T12:00:01Z' }), ctx()), null);
    assert.equal(couponRefusal(coupon({ appliesToPlans: ['p1', 'p2'] }), ctx()), null);
    assert.equal(couponRefusal(coupon({ appliesToPlans: ['p9'] }), ctx({ plan: undefined })), null, 'without a plan, plans are not judged');
  });

  test('unknown and expired', () => {
    assert.equal(couponRefusal(null, ctx()), 'unknown');
    assert.equal(couponRefusal(coupon({ active: false }), ctx()), 'expired');
    assert.equal(couponRefusal(coupon({ redeemBy: '2026-06-01T12:00:00Z' }), ctx()), 'expired');
  });

  test('already redeemed and exhausted', () => {
    assert.equal(couponRefusal(coupon(), ctx({ alreadyRedeemed: true })), 'already_redeemed');
    assert.equal(couponRefusal(coupon({ maxRedemptions: 50, redemptionCount: 50 }), ctx()), 'exhausted');
    assert.equal(couponRefusal(coupon({ maxRedemptions: 50, redemptionCount: 50 }), ctx({ alreadyRedeemed: true })), 'already_redeemed');
  });

  test('not applicable: another plan, another currency, a returning customer', () => {
    assert.equal(couponRefusal(coupon({ appliesToPlans: ['p2'] }), ctx()), 'not_applicable');
    assert.equal(couponRefusal(coupon({ percentOff: null, amountOff: 500, currency: 'eur' }), ctx()), 'not_applicable');
    assert.equal(couponRefusal(coupon({ firstTimeOnly: true }), ctx({ hasSubscribedBefore: true })), 'not_applicable');
    assert.equal(couponRefusal(coupon({ firstTimeOnly: true }), ctx()), null);
  });
});
