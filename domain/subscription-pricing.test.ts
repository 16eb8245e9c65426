import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { testPlanTerms } from '../test/support/plan-terms';
import { afterCycleCharged, type AppliedDiscount } from './coupon';
import { buildInvoice } from './invoice';
import { pricePeriod, priceProration, prorationCredit } from './subscription-pricing';

const pro = testPlanTerms({ planId: 'pro', amount: 1999 });
const taxed = { ...pro, taxRate: 2000 };

function coupon(terms: Partial<AppliedDiscount>): AppliedDiscount {
  return { couponId: 'c-1', couponCode: 'LAUNCH', percentOff: null, amountOff: null, currency: null, duration: 'once', remainingCycles: 1, ...terms };
}

const percent25 = coupon({ percentOff: 25, duration: 'repeating', remainingCycles: 2 });

describe('a period’s price', () => {
  test('seats × price, less a percentage rounded half up, plus tax rounded half-even on what is left', () => {
    // 3998 × 25 % = 999.5 → 1000 off; (3998 − 1000) × 20 % = 599.6 → 600 tax.
    const priced = pricePeriod({ plan: taxed, quantity: 2, discount: percent25, description: 'Pro, period 1' });
    assert.deepEqual([priced.amount, priced.discount], [3598, 1000]);
    const invoice = buildInvoice({ lines: priced.lines });
    assert.deepEqual([invoice.subtotal, invoice.discount, invoice.tax, invoice.total], [3998, 1000, 600, 3598]);
  });

  test('no coupon and no tax rate: the plain price (runs from before coupons and taxes)', () => {
    assert.equal(pricePeriod({ plan: pro, quantity: 3, description: 'Pro' }).amount, 5997);
    assert.equal(pricePeriod({ plan: pro, quantity: 1, discount: null, description: 'Pro' }).amount, 1999);
  });

  test('a 100 % coupon makes the period free, tax included', () => {
    const priced = pricePeriod({ plan: taxed, quantity: 1, discount: coupon({ percentOff: 100 }), description: 'Pro' });
    assert.deepEqual([priced.amount, priced.discount], [0, 1999]);
  });

  test('a fixed amount larger than the charge makes it free and never pays the customer', () => {
    const big = coupon({ amountOff: 5000, currency: 'usd' });
    assert.deepEqual(
      [
        pricePeriod({ plan: taxed, quantity: 1, discount: big, description: 'Pro' }).amount,
        pricePeriod({ plan: taxed, quantity: 3, discount: big, description: 'Pro' }).amount,
      ],
      [0, 997 + 199], // three seats: 5997 − 5000 = 997, and 199.4 → 199 of tax
    );
  });

  test('a fixed amount in another currency, or a coupon used up, takes nothing off', () => {
    assert.equal(pricePeriod({ plan: pro, quantity: 1, discount: coupon({ amountOff: 500, currency: 'eur' }), description: 'Pro' }).amount, 1999);
    assert.equal(pricePeriod({ plan: pro, quantity: 1, discount: coupon({ percentOff: 50, remainingCycles: 0 }), description: 'Pro' }).amount, 1999);
  });

  test('tax rounds half to even per line', () => {
    const tiny = (amount: number, taxRate: number) => pricePeriod({ plan: { ...pro, amount, taxRate }, quantity: 1, description: 'x' }).amount;
    assert.equal(tiny(1, 5000), 1); // 0.5 → 0
    assert.equal(tiny(3, 5000), 5); // 1.5 → 2
    assert.equal(tiny(5, 5000), 7); // 2.5 → 2
  });
});

describe('a repeating coupon across a plan change', () => {
  test('the proration is discounted by the same share and uses no cycle; the next period on the new plan uses one', () => {
    const team = testPlanTerms({ planId: 'team', amount: 4999, taxRate: 2000 });
    // Period 1 paid with the coupon: one cycle left.
    const afterFirst = afterCycleCharged(percent25);
    assert.equal(afterFirst.remainingCycles, 1);
    // Mid-period upgrade: a net of 3000 is 25 % off (750) and taxed on the rest (450).
    const proration = priceProration({ plan: team, net: 3000, discount: afterFirst, description: 'Team, prorated' });
    assert.deepEqual([proration.amount, proration.discount], [2700, 750]);
    assert.equal(proration.lines[0].kind, 'proration');
    // The renewal on the new plan uses the last cycle: 4999 − 1250 (1249.75 half up) + tax.
    const renewal = pricePeriod({ plan: team, quantity: 1, discount: afterFirst, description: 'Team, period 2' });
    assert.deepEqual([renewal.discount, renewal.amount], [1250, 3749 + 750]);
    assert.equal(afterCycleCharged(afterFirst).remainingCycles, 0);
    assert.equal(pricePeriod({ plan: team, quantity: 1, discount: afterCycleCharged(afterFirst), description: 'Team, period 3' }).discount, 0);
  });

  test('a fixed-amount coupon was taken off the period itself: the proration and the credit keep their full size', () => {
    const fixed = coupon({ amountOff: 500, currency: 'usd', duration: 'forever', remainingCycles: null });
    assert.equal(priceProration({ plan: pro, net: 3000, discount: fixed, description: 'x' }).amount, 3000);
    assert.equal(prorationCredit(1000, fixed, 'usd'), 1000);
  });

  test('a downgrade credits what the customer paid for the unused part: a percentage shrinks it, 100 % leaves nothing', () => {
    assert.equal(prorationCredit(1000, percent25, 'usd'), 750);
    assert.equal(prorationCredit(1000, coupon({ percentOff: 100 }), 'usd'), 0);
    assert.equal(prorationCredit(1000, null, 'usd'), 1000);
  });
});
