import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  addDuration,
  addPeriods,
  describeTimeSpan,
  durationToMilliseconds,
  formatDuration,
  isIsoDuration,
  isPositiveDuration,
  parseDuration,
  parsePositiveDuration,
} from './period';

const utc = (iso: string) => new Date(iso);
const DAY = 86_400_000;

describe('parseDuration', () => {
  test('reads every designator', () => {
    assert.deepEqual(parseDuration('P1M'), { years: 0, months: 1, weeks: 0, days: 0, hours: 0, minutes: 0, seconds: 0 });
    assert.deepEqual(parseDuration('P1Y'), { years: 1, months: 0, weeks: 0, days: 0, hours: 0, minutes: 0, seconds: 0 });
    assert.deepEqual(parseDuration('P1W'), { years: 0, months: 0, weeks: 1, days: 0, hours: 0, minutes: 0, seconds: 0 });
    assert.deepEqual(parseDuration('P1D'), { years: 0, months: 0, weeks: 0, days: 1, hours: 0, minutes: 0, seconds: 0 });
    assert.deepEqual(parseDuration('PT30S'), { years: 0, months: 0, weeks: 0, days: 0, hours: 0, minutes: 0, seconds: 30 });
    assert.deepEqual(parseDuration('P1Y2M3W4DT5H6M7S'), { years: 1, months: 2, weeks: 3, days: 4, hours: 5, minutes: 6, seconds: 7 });
    assert.deepEqual(parseDuration('P1DT12H'), { years: 0, months: 0, weeks: 0, days: 1, hours: 12, minutes: 0, seconds: 0 });
  });

  test('rejects what is not a duration', () => {
    for (const bad of ['', 'P', 'PT', '1M', 'P1', 'P1.5D', 'P-1D', 'PT1D', 'P1S', 'p1d', 'P1D ', 'P1M1Y', 'P1DT']) {
      assert.equal(isIsoDuration(bad), false, bad);
      assert.throws(() => parseDuration(bad), /ISO-8601/, bad);
    }
  });

  test('zero durations parse but are not positive', () => {
    assert.equal(isPositiveDuration('P0D'), false);
    assert.equal(isPositiveDuration('PT0S'), false);
    assert.equal(isPositiveDuration('PT1S'), true);
    assert.throws(() => parsePositiveDuration('P0M'), /longer than zero/);
    assert.equal(parsePositiveDuration('P2W').weeks, 2);
  });

  test('formats back to ISO', () => {
    for (const text of ['P1M', 'P1Y', 'PT30S', 'P1Y2M3W4DT5H6M7S', 'P1DT12H', 'PT1H']) {
      assert.equal(formatDuration(parseDuration(text)), text);
    }
    assert.equal(formatDuration(parseDuration('P0D')), 'PT0S');
  });
});

describe('addPeriods keeps the anchor day', () => {
  const anchor = utc('2025-01-31T10:15:00.000Z');

  test('month ends clamp, then come back to the anchor day', () => {
    const dates = Array.from({ length: 13 }, (_, n) => addPeriods(anchor, 'P1M', n).toISOString().slice(0, 10));
    assert.deepEqual(dates, [
      '2025-01-31',
      '2025-02-28',
      '2025-03-31',
      '2025-04-30',
      '2025-05-31',
      '2025-06-30',
      '2025-07-31',
      '2025-08-31',
      '2025-09-30',
      '2025-10-31',
      '2025-11-30',
      '2025-12-31',
      '2026-01-31',
    ]);
  });

  test('keeps the time of day', () => {
    assert.equal(addPeriods(anchor, 'P1M', 1).toISOString(), '2025-02-28T10:15:00.000Z');
  });

  test('leap years', () => {
    assert.equal(addPeriods(utc('2024-01-31T00:00:00Z'), 'P1M', 1).toISOString(), '2024-02-29T00:00:00.000Z');
    assert.equal(addPeriods(utc('2024-02-29T00:00:00Z'), 'P1Y', 1).toISOString(), '2025-02-28T00:00:00.000Z');
    assert.equal(addPeriods(utc('2024-02-29T00:00:00Z'), 'P1Y', 4).toISOString(), '2028-02-29T00:00:00.000Z');
    assert.equal(addPeriods(utc('2024-02-29T00:00:00Z'), 'P12M', 1).toISOString(), '2025-02-28T00:00:00.000Z');
  });

  test('crosses year ends', () => {
    assert.equal(addPeriods(utc('2025-11-30T00:00:00Z'), 'P3M', 1).toISOString(), '2026-02-28T00:00:00.000Z');
    assert.equal(addPeriods(utc('2025-12-31T00:00:00Z'), 'P1M', 2).toISOString(), '2026-02-28T00:00:00.000Z');
    assert.equal(addPeriods(utc('2025-12-15T00:00:00Z'), 'P1M', 25).toISOString(), '2028-01-15T00:00:00.000Z');
  });

  test('n = 0 is the anchor; negative n goes back', () => {
    assert.equal(addPeriods(anchor, 'P1M', 0).getTime(), anchor.getTime());
    assert.equal(addPeriods(utc('2025-03-31T00:00:00Z'), 'P1M', -1).toISOString(), '2025-02-28T00:00:00.000Z');
    assert.throws(() => addPeriods(anchor, 'P1M', 1.5), /whole number/);
  });

  test('days, weeks and time are plain arithmetic', () => {
    const start = utc('2025-03-29T23:00:00Z');
    assert.equal(addPeriods(start, 'P1D', 3).toISOString(), '2025-04-01T23:00:00.000Z');
    assert.equal(addPeriods(start, 'P1W', 2).getTime() - start.getTime(), 14 * DAY);
    assert.equal(addPeriods(start, 'PT30S', 4).getTime() - start.getTime(), 120_000);
    assert.equal(addPeriods(start, 'PT1H30M', 2).getTime() - start.getTime(), 3 * 3_600_000);
  });

  test('combined durations add months first, then days and time', () => {
    assert.equal(addDuration(utc('2025-01-31T00:00:00Z'), 'P1M1D').toISOString(), '2025-03-01T00:00:00.000Z');
    assert.equal(addPeriods(utc('2025-01-31T00:00:00Z'), 'P1M1D', 2).toISOString(), '2025-04-02T00:00:00.000Z');
    assert.equal(addDuration(utc('2025-01-01T00:00:00Z'), 'P1Y1M1W1DT1H1M1S').toISOString(), '2026-02-09T01:01:01.000Z');
  });
});

describe('durationToMilliseconds', () => {
  test('converts fixed-length durations', () => {
    assert.equal(durationToMilliseconds('P1D'), DAY);
    assert.equal(durationToMilliseconds('PT30S'), 30_000);
    assert.equal(durationToMilliseconds('P1WT1S'), 7 * DAY + 1000);
  });

  test('refuses calendar durations', () => {
    assert.throws(() => durationToMilliseconds('P1M'), /depends on the start date/);
    assert.throws(() => durationToMilliseconds('P1Y'), /depends on the start date/);
  });
});

describe('describeTimeSpan', () => {
  test('two most significant units, rounded down', () => {
    assert.equal(describeTimeSpan(6 * DAY), '6 days');
    assert.equal(describeTimeSpan(DAY), '1 day');
    assert.equal(describeTimeSpan(DAY + 12 * 3_600_000 + 59_000), '1 day 12 hours');
    assert.equal(describeTimeSpan(DAY + 5 * 60_000), '1 day');
    assert.equal(describeTimeSpan(3_600_000 + 60_000), '1 hour 1 minute');
    assert.equal(describeTimeSpan(20_000), '20 seconds');
    assert.equal(describeTimeSpan(1_000), '1 second');
    assert.equal(describeTimeSpan(999), 'less than a second');
    assert.equal(describeTimeSpan(-5), 'less than a second');
  });
});
