import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bookingChargeOf } from './booking';
import { creditRestoreKey, creditSpendKey, creditToApply, prorationCreditKey, splitRefund } from './credit';

describe('creditToApply', () => {
  test('all the balance up to the charge, never below zero', () => {
    assert.equal(creditToApply(1000, 300), 300);
    assert.equal(creditToApply(200, 300), 200);
    assert.equal(creditToApply(0, 300), 0);
    assert.equal(creditToApply(500, 0), 0);
  });
});

describe('splitRefund', () => {
  test('a charge without credit refunds to the card only', () => {
    assert.deepEqual(splitRefund({ amount: 5000, refunded: 0 }, 5000), { toCard: 5000, toCredit: 0 });
    assert.deepEqual(splitRefund({ amount: 5000, refunded: 1000 }, 2000), { toCard: 2000, toCredit: 0 });
  });

  test('the card first, up to what it paid, then the credit balance', () => {
    const charge = { amount: 5000, credit: 3000, refunded: 0 };
    assert.deepEqual(splitRefund(charge, 5000), { toCard: 2000, toCredit: 3000 });
    assert.deepEqual(splitRefund(charge, 1500), { toCard: 1500, toCredit: 0 });
    assert.deepEqual(splitRefund({ ...charge, refunded: 1500 }, 1000), { toCard: 500, toCredit: 500 });
    assert.deepEqual(splitRefund({ ...charge, refunded: 2500 }, 2500), { toCard: 0, toCredit: 2500 });
  });

  test('a charge the credit paid in full gives everything back to the balance', () => {
    assert.deepEqual(splitRefund({ amount: 1200, credit: 1200, refunded: 0 }, 1200), { toCard: 0, toCredit: 1200 });
  });
});

describe('bookingChargeOf', () => {
  test('keeps what the credit paid, and nothing for results from before the credit balance', () => {
    assert.deepEqual(bookingChargeOf({ paymentId: 'p', creditApplied: 300 }, 1000), { paymentId: 'p', amount: 1000, refunded: 0, credit: 300 });
    assert.deepEqual(bookingChargeOf({ paymentId: 'p', creditApplied: 0 }, 1000), { paymentId: 'p', amount: 1000, refunded: 0 });
    const recordedBefore = { paymentId: 'p' } as { paymentId: string; creditApplied: number };
    assert.deepEqual(bookingChargeOf(recordedBefore, 1000), { paymentId: 'p', amount: 1000, refunded: 0 });
  });
});

test('ledger keys name the payment or the plan change', () => {
  assert.equal(creditSpendKey('p1'), 'spend/p1');
  assert.equal(creditRestoreKey('p1'), 'restore/p1');
  assert.equal(prorationCreditKey('subscription-s1', 'c2'), 'proration/subscription-s1/c2');
});
