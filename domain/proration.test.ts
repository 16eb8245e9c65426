import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addPeriods } from './period';
import { isValidQuantity, MAX_QUANTITY, periodAmount, prorate, type Proration, type Terms } from './proration';
import { billingPeriod, type BillingPeriod } from './subscription';

const utc = (iso: string) => new Date(iso);
const SECOND = 1000;
const DAY = 86_400_000;
const JANUARY = { periodStart: utc('2025-01-01T00:00:00Z'), periodEnd: utc('2025-02-01T00:00:00Z'), currency: 'usd' };
const JANUARY_SECONDS = 31 * 86_400;
const plan = (amount: number, quantity = 1): Terms => ({ amount, quantity });
const change = (at: Date | string, from: Terms, to: Terms) => prorate({ ...JANUARY, at: typeof at === 'string' ? utc(at) : at, from, to });
const within = ({ start, end }: BillingPeriod, at: Date, from: Terms, to: Terms) =>
  prorate({ periodStart: start, periodEnd: end, at, from, to, currency: 'USD' });
const sides = ({ credit, charge, net }: Proration) => [credit, charge, net];

describe('prorate', () => {
  test('mid-period: the unused 21 of 31 days, each side rounded down', () => {
    assert.deepEqual(change('2025-01-11T00:00:00Z', plan(999), plan(1999)), {
      credit: 676, // 999 × 21/31 = 676.7
      charge: 1354, // 1999 × 21/31 = 1354.2
      net: 678,
      currency: 'usd',
      periodEnd: '2025-02-01T00:00:00.000Z',
    });
  });

  test('the first second prorates the whole period; so does a change before the period', () => {
    for (const at of [JANUARY.periodStart, utc('2024-12-15T00:00:00Z')]) {
      assert.deepEqual(sides(change(at, plan(1000, 2), plan(3000))), [2000, 3000, 1000]);
    }
    const oneMsIn = change(new Date(JANUARY.periodStart.getTime() + 1), plan(JANUARY_SECONDS), plan(JANUARY_SECONDS));
    assert.equal(oneMsIn.credit, JANUARY_SECONDS - 1, 'a second that has begun counts as used');
    const partSecond = { start: utc('2025-01-01T00:00:00.250Z'), end: utc('2025-01-01T00:00:10.000Z') }; // 9.75 s, counted as 9
    assert.deepEqual(sides(within(partSecond, partSecond.start, plan(900), plan(900, 2))), [900, 1800, 900]);
    assert.deepEqual(sides(within(partSecond, utc('2025-01-01T00:00:01.000Z'), plan(900), plan(900, 2))), [900, 1800, 900]);
  });

  test('the last second prorates one second; at or after the end, nothing', () => {
    const lastSecond = change(new Date(JANUARY.periodEnd.getTime() - SECOND), plan(JANUARY_SECONDS, 3), plan(JANUARY_SECONDS - 1));
    assert.deepEqual(sides(lastSecond), [3, 0, -3]);
    for (const at of [new Date(JANUARY.periodEnd.getTime() - 1), JANUARY.periodEnd, utc('2025-03-01T00:00:00Z')]) {
      assert.deepEqual(sides(change(at, plan(5000), plan(9000))), [0, 0, 0], at.toISOString());
    }
  });

  test('a Jan 31 anchor: the February period is Jan 31 → Feb 29 in 2028 and Jan 31 → Feb 28 in 2027', () => {
    const cases = [
      { year: 2028, days: 29, unusedDays: 15, credit: 3000 }, // 5800 × 15/29
      { year: 2027, days: 28, unusedDays: 14, credit: 2900 }, // 5800 × 14/28
    ];
    for (const { year, days, unusedDays, credit } of cases) {
      const period = billingPeriod(utc(`${year}-01-31T09:30:00Z`), 'P1M', 1);
      assert.equal(period.end.getTime(), addPeriods(period.start, 'P1M', 1).getTime());
      assert.equal(period.end.getTime() - period.start.getTime(), days * DAY);
      const at = utc(`${year}-02-14T09:30:00Z`);
      assert.equal(period.end.getTime() - at.getTime(), unusedDays * DAY);
      const result = within(period, at, plan(5800), plan(5800));
      assert.deepEqual(result, { credit, charge: credit, net: 0, currency: 'usd', periodEnd: period.end.toISOString() });
    }
    const march = billingPeriod(utc('2027-01-31T00:00:00Z'), 'P1M', 2); // Feb 28 → Mar 31: 31 days
    assert.deepEqual(sides(within(march, utc('2027-03-16T00:00:00Z'), plan(3100), plan(0))), [1500, 0, -1500]);
  });

  test('leap day: a yearly plan anchored on Feb 29 2028 runs 365 days to Feb 28 2029', () => {
    const year = billingPeriod(utc('2028-02-29T00:00:00Z'), 'P1Y', 1);
    assert.equal(year.end.toISOString(), '2029-02-28T00:00:00.000Z');
    const at = addPeriods(year.start, 'P1D', 292); // 73 of 365 days left
    assert.deepEqual(sides(within(year, at, plan(36_500), plan(73_000))), [7300, 14_600, 7300]);
    const leapMonth = billingPeriod(utc('2028-01-29T00:00:00Z'), 'P1M', 1); // Jan 29 → Feb 29: 31 days
    assert.deepEqual(sides(within(leapMonth, utc('2028-02-28T00:00:00Z'), plan(3100), plan(3100, 2))), [100, 200, 100]);
  });

  test('quantity changes on the same plan', () => {
    const half = '2025-01-16T12:00:00Z';
    assert.deepEqual(sides(change(half, plan(1000, 1), plan(1000, 3))), [500, 1500, 1000]);
    assert.deepEqual(sides(change(half, plan(1000, 5), plan(1000, 2))), [2500, 1000, -1500]);
  });

  test('free plans: free → paid charges the share of the paid one; paid → free credits it', () => {
    const half = '2025-01-16T12:00:00Z';
    assert.deepEqual(sides(change(half, plan(0, 4), plan(2000, 2))), [0, 2000, 2000]);
    assert.deepEqual(sides(change(half, plan(2000, 2), plan(0))), [2000, 0, -2000]);
    assert.deepEqual(sides(change(half, plan(0), plan(0, MAX_QUANTITY))), [0, 0, 0]);
  });

  test('rounding never credits more than was paid (seeded random inputs)', () => {
    const random = mulberry32(20_250_101);
    const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
    const terms = () => plan(random() < 0.1 ? 0 : int(1, 1_000_000_000), int(1, MAX_QUANTITY));
    for (let i = 0; i < 5000; i++) {
      const periodStart = new Date(int(0, 4_000_000_000_000));
      const periodEnd = new Date(periodStart.getTime() + int(SECOND, 400 * DAY));
      const at = new Date(int(periodStart.getTime() - DAY, periodEnd.getTime() + DAY));
      const [from, to] = [terms(), terms()];
      const args = { periodStart, periodEnd, at, currency: 'usd' };
      const { credit, charge, net } = prorate({ ...args, from, to });
      const label = JSON.stringify({ ...args, from, to });
      assert.ok(credit >= 0 && credit <= periodAmount(from) && Number.isSafeInteger(credit), label);
      assert.ok(charge >= 0 && charge <= periodAmount(to) && Number.isSafeInteger(charge), label);
      assert.equal(net, charge - credit, label);
      if (at <= periodStart) assert.deepEqual([credit, charge], [periodAmount(from), periodAmount(to)], label);
      if (at >= periodEnd) assert.deepEqual([credit, charge], [0, 0], label);
      assert.equal(prorate({ ...args, from: to, to: from }).charge, credit, label);
      const same = prorate({ ...args, from, to: { ...from } });
      assert.equal(same.net, 0, label);
      assert.equal(same.credit, credit, label);
    }
  });

  test('huge amounts keep every minor unit (BigInt, not floating point)', () => {
    const from = plan(900_719_925_474, MAX_QUANTITY); // 9_007_199_254_740_000, just under 2^53
    const to = plan(900_719_925_473, MAX_QUANTITY - 1);
    const periodStart = utc('2025-01-01T00:00:00Z');
    const periodEnd = utc('2026-01-01T00:00:00Z');
    const at = utc('2025-04-17T13:27:45.678Z');
    const unused = BigInt(Math.floor((periodEnd.getTime() - at.getTime()) / SECOND));
    const length = BigInt((periodEnd.getTime() - periodStart.getTime()) / SECOND);
    const expected = (p: Terms) => Number((BigInt(p.amount) * BigInt(p.quantity) * unused) / length);
    const result = prorate({ periodStart, periodEnd, at, from, to, currency: 'usd' });
    assert.deepEqual([result.credit, result.charge], [expected(from), expected(to)]);
    assert.equal(result.net, expected(to) - expected(from));
    assert.notEqual(Math.floor((periodAmount(from) * Number(unused)) / Number(length)), expected(from), 'floating point would lose units here');
  });
});

describe('validation', () => {
  test('quantities are whole numbers from 1 to MAX_QUANTITY', () => {
    for (const q of [1, 2, MAX_QUANTITY]) assert.equal(isValidQuantity(q), true, String(q));
    for (const q of [0, -1, MAX_QUANTITY + 1, 1.5, NaN, Infinity, '3', null, undefined]) assert.equal(isValidQuantity(q), false, String(q));
  });

  test('periodAmount multiplies and refuses bad terms or a total past 2^53', () => {
    assert.equal(periodAmount(plan(1999, 3)), 5997);
    assert.equal(periodAmount(plan(0, 7)), 0);
    for (const q of [0, 10_001, 1.5, -2, NaN]) assert.throws(() => periodAmount(plan(100, q)), RangeError, `quantity ${q}`);
    for (const a of [-1, 1.5, NaN, Infinity, Number.MAX_SAFE_INTEGER + 1]) assert.throws(() => periodAmount(plan(a)), RangeError, `amount ${a}`);
    assert.throws(() => periodAmount(plan(1_000_000_000_000, MAX_QUANTITY)), /too large/);
  });

  test('prorate refuses bad terms, periods that do not move forward, bad dates and currencies', () => {
    const at = utc('2025-01-10T00:00:00Z');
    assert.throws(() => change(at, plan(100, 0), plan(100)), /quantity/);
    assert.throws(() => change(at, plan(100), plan(100, 10_001)), /quantity/);
    assert.throws(() => change(at, plan(100), plan(100, 1.5)), RangeError);
    assert.throws(() => change(at, plan(-100), plan(100)), /non-negative/);
    for (const periodEnd of [JANUARY.periodStart, utc('2024-12-01T00:00:00Z'), new Date(JANUARY.periodStart.getTime() + 999)]) {
      assert.throws(() => prorate({ ...JANUARY, periodEnd, at, from: plan(1), to: plan(1) }), /at least one second/);
    }
    assert.throws(() => prorate({ ...JANUARY, at: new Date(NaN), from: plan(1), to: plan(1) }), /at must be a valid date/);
    assert.throws(() => prorate({ ...JANUARY, currency: 'dollars', at, from: plan(1), to: plan(1) }), RangeError);
  });
});

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
