import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  isReferralCode,
  normalizeReferralCode,
  parseReferralCredit,
  REFERRAL_ALPHABET,
  referralCodeFromBytes,
  referralRewardKey,
  referralRewardRefusal,
} from './referral';

describe('referral codes', () => {
  test('eight characters of the unambiguous alphabet, from any bytes', () => {
    const code = referralCodeFromBytes(new Uint8Array([0, 1, 29, 30, 255, 128, 64, 7]));
    assert.equal(code, 'AB9ASJEH');
    assert.ok(isReferralCode(code));
    for (const ch of '0O1IL') assert.ok(!REFERRAL_ALPHABET.includes(ch), ch);
    assert.throws(() => referralCodeFromBytes(new Uint8Array(7)), RangeError);
  });

  test('compare case-insensitively; the shape is checked', () => {
    assert.equal(normalizeReferralCode(' ab9asjeh '), 'AB9ASJEH');
    assert.ok(isReferralCode('ab9asjeh'));
    assert.ok(!isReferralCode('ABZA5NH'));
    assert.ok(!isReferralCode('ABZA5NH0'));
    assert.ok(!isReferralCode('ABZA5NHHX'));
  });
});

describe('parseReferralCredit', () => {
  test('"500 usd" and its variants', () => {
    assert.deepEqual(parseReferralCredit('500 usd'), { amount: 500, currency: 'usd' });
    assert.deepEqual(parseReferralCredit(' 1000  EUR '), { amount: 1000, currency: 'eur' });
  });

  test('anything else is refused', () => {
    for (const text of ['', '500', 'usd 500', '0 usd', '-5 usd', '5.5 usd', '500 dollars', '1234567890123456 usd']) {
      assert.equal(parseReferralCredit(text), null, text);
    }
  });
});

describe('referral reward', () => {
  const base = { referrerId: 'a', referredUserId: 'b', amount: 1999, refunded: 0 };

  test('once per referred customer: the ledger key names them', () => {
    assert.equal(referralRewardKey('b'), 'referral/b');
  });

  test('rewarded for a paid first period, even partly refunded', () => {
    assert.equal(referralRewardRefusal(base), null);
    assert.equal(referralRewardRefusal({ ...base, refunded: 1998 }), null);
  });

  test('never for a self-referral, nothing paid, or a refund in full', () => {
    assert.equal(referralRewardRefusal({ ...base, referredUserId: 'a' }), 'self_referral');
    assert.equal(referralRewardRefusal({ ...base, amount: 0 }), 'not_paid');
    assert.equal(referralRewardRefusal({ ...base, refunded: 1999 }), 'refunded_in_full');
  });
});
