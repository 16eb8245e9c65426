import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  allocateRefund,
  applyRefund,
  cancellationPolicyProblem,
  cancellationRefund,
  checkInRefusal,
  CONFIRMATION_CODE_ALPHABET,
  confirmationCodeFrom,
  freeCancellationEndsAt,
  isConfirmationCode,
  MAX_RESCHEDULES,
  MixedCurrencyError,
  normalizeConfirmationCode,
  RefundExceedsChargesError,
  refundTier,
  rescheduleLimitRefusal,
  totalPrice,
  type CancellationPolicy,
} from './booking';

const startsAt = new Date('2030-06-15T18:00:00Z');
const policy: CancellationPolicy = { freeUntil: 'P1D', lateRefundPercent: 50 };

describe('totalPrice', () => {
  test('sums units of one currency', () => {
    assert.deepEqual(
      totalPrice([
        { amount: 1500, currency: 'usd' },
        { amount: 2500, currency: 'usd' },
      ]),
      {
        amount: 4000,
        currency: 'usd',
      },
    );
  });

  test('refuses mixed currencies and an empty list', () => {
    assert.throws(
      () =>
        totalPrice([
          { amount: 1, currency: 'usd' },
          { amount: 1, currency: 'eur' },
        ]),
      MixedCurrencyError,
    );
    assert.throws(() => totalPrice([]), MixedCurrencyError);
  });
});

describe('refund tiers', () => {
  test('the free window ends freeUntil before the start', () => {
    assert.equal(freeCancellationEndsAt(startsAt, policy).toISOString(), '2030-06-14T18:00:00.000Z');
    assert.equal(
      freeCancellationEndsAt(new Date('2030-03-31T10:00:00Z'), { freeUntil: 'P1M', lateRefundPercent: 0 }).toISOString(),
      '2030-02-28T10:00:00.000Z',
    );
  });

  test('full before the free window ends', () => {
    const now = new Date('2030-06-14T17:59:59.999Z');
    assert.equal(refundTier(startsAt, policy, now), 'full');
    assert.deepEqual(cancellationRefund({ amount: 4000, startsAt, policy, now }), { tier: 'full', amount: 4000 });
  });

  test('late from the end of the free window until the start, rounded down', () => {
    const boundary = new Date('2030-06-14T18:00:00Z');
    assert.deepEqual(cancellationRefund({ amount: 999, startsAt, policy, now: boundary }), { tier: 'late', amount: 499 });
    const justBeforeStart = new Date(startsAt.getTime() - 1);
    assert.deepEqual(cancellationRefund({ amount: 4000, startsAt, policy, now: justBeforeStart }), { tier: 'late', amount: 2000 });
  });

  test('nothing from the start on', () => {
    assert.deepEqual(cancellationRefund({ amount: 4000, startsAt, policy, now: startsAt }), { tier: 'none', amount: 0 });
    assert.deepEqual(cancellationRefund({ amount: 4000, startsAt, policy, now: new Date('2031-01-01T00:00:00Z') }), {
      tier: 'none',
      amount: 0,
    });
  });

  test('0% and 100% late refunds are exact', () => {
    const now = new Date('2030-06-15T12:00:00Z');
    assert.equal(cancellationRefund({ amount: 4001, startsAt, policy: { freeUntil: 'P1D', lateRefundPercent: 0 }, now }).amount, 0);
    assert.equal(cancellationRefund({ amount: 4001, startsAt, policy: { freeUntil: 'P1D', lateRefundPercent: 100 }, now }).amount, 4001);
  });

  test('without freeUntil the full refund lasts until the start', () => {
    const noWindow: CancellationPolicy = { freeUntil: null, lateRefundPercent: 0 };
    assert.equal(refundTier(startsAt, noWindow, new Date(startsAt.getTime() - 1)), 'full');
    assert.equal(refundTier(startsAt, noWindow, startsAt), 'none');
  });

  test('large amounts round without floating-point error', () => {
    const now = new Date('2030-06-15T12:00:00Z');
    const amount = 9_007_199_254_740_991; // Number.MAX_SAFE_INTEGER
    assert.equal(cancellationRefund({ amount, startsAt, policy: { freeUntil: 'P1D', lateRefundPercent: 33 }, now }).amount, 2_972_375_754_064_527);
  });

  test('policy validation names the problem', () => {
    assert.equal(cancellationPolicyProblem(policy), undefined);
    assert.match(cancellationPolicyProblem({ freeUntil: '1 day', lateRefundPercent: 0 }) ?? '', /freeUntil/);
    assert.match(cancellationPolicyProblem({ freeUntil: 'P1D', lateRefundPercent: 101 }) ?? '', /lateRefundPercent/);
    assert.match(cancellationPolicyProblem({ freeUntil: 'P1D', lateRefundPercent: 12.5 }) ?? '', /lateRefundPercent/);
  });
});

describe('allocateRefund', () => {
  const charges = [
    { paymentId: 'original', amount: 4000, refunded: 0 },
    { paymentId: 'top-up', amount: 1000, refunded: 0 },
  ];

  test('draws on the newest charge first', () => {
    assert.deepEqual(allocateRefund(charges, 1500), [
      { paymentId: 'top-up', amount: 1000 },
      { paymentId: 'original', amount: 500 },
    ]);
  });

  test('skips what was already refunded and refunds nothing for zero', () => {
    const after = applyRefund(charges, [{ paymentId: 'top-up', amount: 1000 }]);
    assert.deepEqual(after[1], { paymentId: 'top-up', amount: 1000, refunded: 1000 });
    assert.deepEqual(allocateRefund(after, 4000), [{ paymentId: 'original', amount: 4000 }]);
    assert.deepEqual(allocateRefund(after, 0), []);
  });

  test('never refunds more than was charged', () => {
    assert.throws(() => allocateRefund(charges, 5001), RefundExceedsChargesError);
  });
});

describe('confirmation codes', () => {
  test('eight characters of an alphabet without look-alikes, from random bytes', () => {
    assert.doesNotMatch(CONFIRMATION_CODE_ALPHABET, /[01OIL]/);
    const code = confirmationCodeFrom(Uint8Array.from([0, 1, 30, 31, 62, 255, 100, 7]));
    assert.equal(code, '23Z22999');
    assert.ok(isConfirmationCode(code));
    assert.throws(() => confirmationCodeFrom(new Uint8Array(7)), RangeError);
  });

  test('typed by people: case, spaces and dashes do not matter; look-alikes and other lengths are not codes', () => {
    assert.equal(normalizeConfirmationCode(' 23z2-2x69 '), '23Z22X69');
    for (const bad of ['23Z22X6', '23Z22X690', '0OZ22X69', '1IZ22X69', '23z22x69']) assert.ok(!isConfirmationCode(bad), bad);
  });
});

describe('checkInRefusal', () => {
  test('only a confirmed booking can be checked in; the others say why', () => {
    assert.equal(checkInRefusal('confirmed', null), null);
    assert.equal(checkInRefusal('checked_in', '2030-06-15T18:05:00.000Z'), 'the booking was already checked in at 2030-06-15T18:05:00.000Z');
    assert.equal(checkInRefusal('canceled', null), 'the booking was canceled');
    assert.equal(checkInRefusal('no_show', null), 'the offering has ended: the booking is a no-show');
    assert.equal(checkInRefusal('pending', null), 'the booking is not confirmed yet');
    assert.equal(checkInRefusal('failed', null), 'the booking failed and was never confirmed');
  });
});

describe('rescheduleLimitRefusal', () => {
  test(`allows up to MAX_RESCHEDULES (${MAX_RESCHEDULES}) and refuses after, naming the limit`, () => {
    assert.equal(rescheduleLimitRefusal(0), undefined);
    assert.equal(rescheduleLimitRefusal(MAX_RESCHEDULES - 1), undefined);
    assert.match(rescheduleLimitRefusal(MAX_RESCHEDULES)!, /at most 10 times \(MAX_RESCHEDULES\)/);
    assert.ok(rescheduleLimitRefusal(MAX_RESCHEDULES + 1));
  });
});
