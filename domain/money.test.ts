import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatMoney, isChargeableAmount, isCurrencyCode, minorUnitDigits, normalizeCurrency } from './money';

describe('formatMoney', () => {
  test('uses the symbol for well-known currencies', () => {
    assert.equal(formatMoney(1999, 'usd'), '$19.99');
    assert.equal(formatMoney(1999, 'USD'), '$19.99');
    assert.equal(formatMoney(500, 'eur'), '€5.00');
    assert.equal(formatMoney(7, 'gbp'), '£0.07');
  });

  test('prints the code for the rest', () => {
    assert.equal(formatMoney(150000, 'chf'), 'CHF 1,500.00');
    assert.equal(formatMoney(1234, 'sek'), 'SEK 12.34');
  });

  test('prints the code instead of the symbol when asked', () => {
    assert.equal(formatMoney(150000, 'inr', { symbol: false }), 'INR 1,500.00');
    assert.equal(formatMoney(-250, 'usd', { symbol: false }), '-USD 2.50');
    assert.equal(formatMoney(150000, 'inr'), '₹1,500.00');
  });

  test('groups thousands', () => {
    assert.equal(formatMoney(123456789, 'usd'), '$1,234,567.89');
    assert.equal(formatMoney(100000, 'usd'), '$1,000.00');
    assert.equal(formatMoney(99999, 'usd'), '$999.99');
  });

  test('honours zero- and three-decimal currencies', () => {
    assert.equal(formatMoney(1500, 'jpy'), '¥1,500');
    assert.equal(formatMoney(1500, 'krw'), 'KRW 1,500');
    assert.equal(formatMoney(1500, 'kwd'), 'KWD 1.500');
    assert.equal(formatMoney(5, 'bhd'), 'BHD 0.005');
  });

  test('formats zero and negative amounts (refunds)', () => {
    assert.equal(formatMoney(0, 'usd'), '$0.00');
    assert.equal(formatMoney(-250, 'usd'), '-$2.50');
    assert.equal(formatMoney(-250, 'nok'), '-NOK 2.50');
  });

  test('rejects fractions and bad codes', () => {
    assert.throws(() => formatMoney(19.99, 'usd'), /minor units/);
    assert.throws(() => formatMoney(100, 'dollars'), /ISO 4217/);
    assert.throws(() => formatMoney(Number.MAX_SAFE_INTEGER + 2, 'usd'), /minor units/);
  });
});

describe('currency codes', () => {
  test('normalises to lower case', () => {
    assert.equal(normalizeCurrency('EUR'), 'eur');
    assert.equal(isCurrencyCode('usd'), true);
    assert.equal(isCurrencyCode('us'), false);
    assert.equal(isCurrencyCode('us1'), false);
    assert.throws(() => normalizeCurrency(''), /ISO 4217/);
  });

  test('knows the number of decimals', () => {
    assert.equal(minorUnitDigits('usd'), 2);
    assert.equal(minorUnitDigits('JPY'), 0);
    assert.equal(minorUnitDigits('omr'), 3);
  });
});

describe('isChargeableAmount', () => {
  test('accepts positive whole minor units only', () => {
    assert.equal(isChargeableAmount(1), true);
    assert.equal(isChargeableAmount(1999), true);
    assert.equal(isChargeableAmount(0), false);
    assert.equal(isChargeableAmount(-1), false);
    assert.equal(isChargeableAmount(1.5), false);
    assert.equal(isChargeableAmount(Number.NaN), false);
    assert.equal(isChargeableAmount(2 ** 53), false);
  });
});
