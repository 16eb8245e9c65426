import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_DUNNING_POLICY } from './dunning';
import {
  SUBSCRIPTION_STATUSES,
  billingPeriod,
  canTransition,
  isFinalStatus,
  planTermsProblems,
  subscriptionWorkflowId,
  transition,
  type SubscriptionStatus,
} from './subscription';

describe('status transitions', () => {
  const allowed: [SubscriptionStatus, SubscriptionStatus][] = [
    ['incomplete', 'active'],
    ['incomplete', 'trialing'],
    ['incomplete', 'canceled'],
    ['trialing', 'active'],
    ['trialing', 'past_due'],
    ['trialing', 'paused'],
    ['trialing', 'canceled'],
    ['active', 'active'],
    ['active', 'past_due'],
    ['active', 'paused'],
    ['active', 'canceled'],
    ['past_due', 'active'],
    ['past_due', 'canceled'],
    ['past_due', 'expired'],
    ['paused', 'active'],
    ['paused', 'past_due'],
    ['paused', 'canceled'],
  ];

  test('exactly the listed moves are allowed', () => {
    for (const from of SUBSCRIPTION_STATUSES) {
      for (const to of SUBSCRIPTION_STATUSES) {
        const expected = allowed.some(([f, t]) => f === from && t === to);
        assert.equal(canTransition(from, to), expected, `${from} → ${to}`);
      }
    }
  });

  test('transition returns the new status or throws', () => {
    assert.equal(transition('past_due', 'active'), 'active');
    assert.throws(() => transition('expired', 'active'), /cannot go from expired to active/);
    assert.throws(() => transition('active', 'expired'), /cannot go from active to expired/);
  });

  test('canceled and expired are final', () => {
    assert.deepEqual(SUBSCRIPTION_STATUSES.filter(isFinalStatus), ['canceled', 'expired']);
  });
});

describe('billingPeriod', () => {
  const anchor = new Date('2024-01-31T12:00:00.000Z');

  test('counts every period from the anchor', () => {
    const periods = [1, 2, 3, 13].map((cycle) => billingPeriod(anchor, 'P1M', cycle));
    assert.deepEqual(
      periods.map((p) => [p.start.toISOString().slice(0, 10), p.end.toISOString().slice(0, 10)]),
      [
        ['2024-01-31', '2024-02-29'],
        ['2024-02-29', '2024-03-31'],
        ['2024-03-31', '2024-04-30'],
        ['2025-01-31', '2025-02-28'],
      ],
    );
  });

  test('short intervals', () => {
    const period = billingPeriod(anchor, 'PT30S', 3);
    assert.equal(period.start.getTime() - anchor.getTime(), 60_000);
    assert.equal(period.end.getTime() - anchor.getTime(), 90_000);
  });

  test('cycles start at 1', () => {
    assert.throws(() => billingPeriod(anchor, 'P1M', 0), /start at 1/);
  });
});

describe('planTermsProblems', () => {
  const valid = { amount: 1999, currency: 'usd', interval: 'P1M', trialPeriod: null, dunning: DEFAULT_DUNNING_POLICY };

  test('accepts sellable terms', () => {
    assert.deepEqual(planTermsProblems(valid), []);
    assert.deepEqual(planTermsProblems({ ...valid, interval: 'PT30S', trialPeriod: 'P14D' }), []);
  });

  test('names each bad field, dunning ones under dunning', () => {
    const problems = planTermsProblems({
      amount: 0,
      currency: 'dollars',
      interval: 'P0M',
      trialPeriod: 'two weeks',
      dunning: { ...DEFAULT_DUNNING_POLICY, gracePeriod: 'P4D' },
    });
    assert.deepEqual(
      problems.map((p) => p.path),
      [['amount'], ['currency'], ['interval'], ['trialPeriod'], ['dunning', 'retryOffsets', 2], ['dunning', 'reminderOffsets', 2]],
    );
  });
});

describe('identifiers', () => {
  test('workflow id', () => {
    assert.equal(subscriptionWorkflowId('abc'), 'subscription-abc');
  });
});
