import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_DUNNING_POLICY, dunningPolicyProblems, dunningTimeline, graceEndsAt, type DunningEvent } from './dunning';

const DAY = 86_400_000;
const failedAt = new Date('2025-03-10T09:00:00.000Z');

function summarize(events: DunningEvent[]) {
  return events.map((event) => {
    const day = (event.at.getTime() - failedAt.getTime()) / DAY;
    if (event.kind === 'retry') return `day ${day} retry ${event.retry}/${event.of}`;
    if (event.kind === 'reminder') return `day ${day} reminder ${event.reminder}/${event.of} (${event.timeLeftMs / DAY} days left)`;
    return `day ${day} expiry`;
  });
}

describe('dunningTimeline', () => {
  test('default policy: retries and reminders on days 1, 3, 5, expiry on day 7', () => {
    assert.deepEqual(summarize(dunningTimeline(failedAt, DEFAULT_DUNNING_POLICY)), [
      'day 1 retry 1/3',
      'day 1 reminder 1/3 (6 days left)',
      'day 3 retry 2/3',
      'day 3 reminder 2/3 (4 days left)',
      'day 5 retry 3/3',
      'day 5 reminder 3/3 (2 days left)',
      'day 7 expiry',
    ]);
  });

  test('interleaves offsets that differ and sorts unsorted input', () => {
    const policy = { retryOffsets: ['P2D', 'PT12H'], reminderOffsets: ['P1D', 'P6D'], gracePeriod: 'P10D' };
    assert.deepEqual(summarize(dunningTimeline(failedAt, policy)), [
      'day 0.5 retry 2/2',
      'day 1 reminder 1/2 (9 days left)',
      'day 2 retry 1/2',
      'day 6 reminder 2/2 (4 days left)',
      'day 10 expiry',
    ]);
  });

  test('no retries or reminders: only expiry', () => {
    const events = dunningTimeline(failedAt, { retryOffsets: [], reminderOffsets: [], gracePeriod: 'PT30S' });
    assert.deepEqual(events, [{ kind: 'expiry', at: new Date(failedAt.getTime() + 30_000) }]);
  });

  test('an extended grace moves expiry and the time left, not the retries', () => {
    const extended = new Date(failedAt.getTime() + 10 * DAY);
    assert.deepEqual(summarize(dunningTimeline(failedAt, DEFAULT_DUNNING_POLICY, extended)), [
      'day 1 retry 1/3',
      'day 1 reminder 1/3 (9 days left)',
      'day 3 retry 2/3',
      'day 3 reminder 2/3 (7 days left)',
      'day 5 retry 3/3',
      'day 5 reminder 3/3 (5 days left)',
      'day 10 expiry',
    ]);
  });

  test('calendar offsets count from the failure date', () => {
    const policy = { retryOffsets: ['P1M'], reminderOffsets: [], gracePeriod: 'P2M' };
    const events = dunningTimeline(new Date('2025-01-31T00:00:00Z'), policy);
    assert.deepEqual(
      events.map((e) => e.at.toISOString()),
      ['2025-02-28T00:00:00.000Z', '2025-03-31T00:00:00.000Z'],
    );
  });

  test('graceEndsAt', () => {
    assert.equal(graceEndsAt(failedAt, DEFAULT_DUNNING_POLICY).toISOString(), '2025-03-17T09:00:00.000Z');
  });
});

describe('dunningPolicyProblems', () => {
  test('the default policy and short demo policies are valid', () => {
    assert.deepEqual(dunningPolicyProblems(DEFAULT_DUNNING_POLICY), []);
    assert.deepEqual(dunningPolicyProblems({ retryOffsets: ['PT10S', 'PT20S'], reminderOffsets: ['PT10S'], gracePeriod: 'PT30S' }), []);
    assert.deepEqual(dunningPolicyProblems({ retryOffsets: [], reminderOffsets: [], gracePeriod: 'P1D' }), []);
  });

  test('names each bad field', () => {
    const problems = dunningPolicyProblems({ retryOffsets: ['P1D', 'soon', 'P9D'], reminderOffsets: ['P0D'], gracePeriod: 'P7D' });
    assert.deepEqual(problems, [
      { path: ['retryOffsets', 1], message: 'must be a positive ISO-8601 duration such as P1D' },
      { path: ['retryOffsets', 2], message: 'must end before the grace period (P7D)' },
      { path: ['reminderOffsets', 0], message: 'must be a positive ISO-8601 duration such as P1D' },
    ]);
  });

  test('offsets at the end of grace are too late', () => {
    const problems = dunningPolicyProblems({ retryOffsets: ['P7D'], reminderOffsets: ['P1W'], gracePeriod: 'P7D' });
    assert.deepEqual(
      problems.map((p) => p.path),
      [
        ['retryOffsets', 0],
        ['reminderOffsets', 0],
      ],
    );
  });

  test('offsets must increase', () => {
    const problems = dunningPolicyProblems({ retryOffsets: ['P3D', 'P1D', 'P1D'], reminderOffsets: [], gracePeriod: 'P7D' });
    assert.deepEqual(problems, [
      { path: ['retryOffsets', 1], message: 'must come after P3D' },
      { path: ['retryOffsets', 2], message: 'must come after P1D' },
    ]);
  });

  test('a bad grace period is reported once and offsets are still checked', () => {
    const problems = dunningPolicyProblems({ retryOffsets: ['nope'], reminderOffsets: ['P1D'], gracePeriod: 'P0D' });
    assert.deepEqual(
      problems.map((p) => p.path),
      [['gracePeriod'], ['retryOffsets', 0]],
    );
  });

  test('month offsets are compared on the dates where they differ from days', () => {
    // P1M is 31 days after Jan 1 but 28 days after Feb 1: it does not always end before P30D.
    const problems = dunningPolicyProblems({ retryOffsets: ['P1M'], reminderOffsets: [], gracePeriod: 'P30D' });
    assert.deepEqual(
      problems.map((p) => p.path),
      [['retryOffsets', 0]],
    );
    assert.deepEqual(dunningPolicyProblems({ retryOffsets: ['P1M'], reminderOffsets: [], gracePeriod: 'P32D' }), []);
  });

  test('limits the number of steps', () => {
    const many = Array.from({ length: 25 }, (_, i) => `PT${i + 1}M`);
    assert.deepEqual(dunningPolicyProblems({ retryOffsets: many, reminderOffsets: [], gracePeriod: 'P1D' }), [
      { path: ['retryOffsets'], message: 'at most 24 offsets' },
    ]);
  });
});
