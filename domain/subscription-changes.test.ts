import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { testPlanTerms } from '../test/support/plan-terms';
import { isDurationWithin } from './period';
import { canTransition, planChangeRefusal, type PlanTerms } from './subscription';
import { pausedNotice, planChangedNotice, resumedNotice } from './subscription-notices';
import { initialState, periodEnd, subscriptionProjection, subscriptionSnapshot, type SubscriptionState } from './subscription-state';

const basic: PlanTerms = testPlanTerms({ planId: 'basic', amount: 1000 });
const pro: PlanTerms = testPlanTerms({ planId: 'pro', amount: 3000, name: 'Pro' });
const identity = { subscriptionId: 'sub-1', userId: 'user-1', plan: basic };
const JAN_31 = new Date('2026-01-31T10:00:00Z');

function active(cycle: number, extra: Partial<SubscriptionState> = {}): SubscriptionState {
  return { ...initialState('pm_card_visa', JAN_31), status: 'active', cycle, ...extra };
}

describe('plan changes', () => {
  test('another currency or interval, or the same plan and seats, is refused with the reason', () => {
    const now = { plan: basic, quantity: 1 };
    assert.equal(planChangeRefusal(now, { plan: pro, quantity: 1 }), null);
    assert.equal(planChangeRefusal(now, { plan: basic, quantity: 3 }), null);
    assert.match(planChangeRefusal(now, { plan: { ...pro, currency: 'eur' }, quantity: 1 })!, /eur.*usd/);
    assert.match(planChangeRefusal(now, { plan: { ...pro, interval: 'P1Y' }, quantity: 1 })!, /P1Y.*P1M/);
    assert.match(planChangeRefusal(now, { plan: basic, quantity: 1 })!, /already on this plan/);
  });

  test('the snapshot and the row show the terms in force, the seats and the scheduled change', () => {
    const state = active(1, {
      plan: pro,
      quantity: 4,
      scheduledChange: { planId: 'basic', quantity: 2, at: '2026-02-28T10:00:00.000Z', plan: basic },
    });
    const snapshot = subscriptionSnapshot(identity, state);
    assert.deepEqual([snapshot.plan.planId, snapshot.quantity, snapshot.periodAmount], ['pro', 4, 12000]);
    assert.deepEqual(snapshot.scheduledChange, { planId: 'basic', quantity: 2, at: '2026-02-28T10:00:00.000Z' });
    const row = subscriptionProjection(identity, 'wf', state);
    assert.deepEqual([row.planId, row.quantity, row.scheduledChange?.planId], ['pro', 4, 'basic']);
  });

  test('state carried from runs before plan changes reads as the input plan with one seat', () => {
    const snapshot = subscriptionSnapshot(identity, active(2));
    assert.deepEqual(
      [snapshot.plan.planId, snapshot.quantity, snapshot.scheduledChange, snapshot.pauseAt, snapshot.refundedTotal],
      ['basic', 1, null, null, 0],
    );
  });

  test('the notice says what the change charged or credited', () => {
    assert.match(planChangedNotice(pro, 2, 1, { net: 1234, currency: 'usd' }).body, /charged \$12\.34/);
    assert.match(planChangedNotice(basic, 1, 2, { net: -500, currency: 'usd' }).body, /added \$5\.00 to your credit balance/);
    assert.equal(planChangedNotice(basic, 1, 3, null).event, 'change:3');
  });
});

describe('pauses', () => {
  test('paused is reached from active or trialing and left to active, past due (a declined automatic resume) or canceled', () => {
    assert.ok(canTransition('active', 'paused') && canTransition('trialing', 'paused'));
    assert.ok(!canTransition('past_due', 'paused') && !canTransition('incomplete', 'paused'));
    assert.ok(canTransition('paused', 'active') && canTransition('paused', 'past_due') && canTransition('paused', 'canceled'));
  });

  test('a pause asked for shows when it begins and when it ends; the next charge is the resume', () => {
    const resumesAt = '2026-05-01T00:00:00.000Z';
    const snapshot = subscriptionSnapshot(identity, active(1, { pause: { resumesAt } }));
    assert.deepEqual(
      [snapshot.status, snapshot.pauseAt, snapshot.resumesAt, snapshot.nextBillingDate],
      ['active', '2026-02-28T10:00:00.000Z', resumesAt, resumesAt],
    );
  });

  test('while paused there is no current period; without resumesAt no billing date', () => {
    const snapshot = subscriptionSnapshot(
      identity,
      active(1, { status: 'paused', pause: { resumesAt: null }, pausedAt: '2026-02-28T10:00:00.000Z' }),
    );
    assert.deepEqual(
      [snapshot.currentPeriodStart, snapshot.nextBillingDate, snapshot.pausedAt, snapshot.pauseAt],
      [null, null, '2026-02-28T10:00:00.000Z', null],
    );
  });

  test('after a resume, periods count from the resume: anchorCycle periods were paid before it', () => {
    const resumed = active(3, { anchorDate: '2026-04-10T08:00:00.000Z', anchorCycle: 2 });
    const snapshot = subscriptionSnapshot(identity, resumed);
    assert.deepEqual([snapshot.currentPeriodStart, snapshot.currentPeriodEnd], ['2026-04-10T08:00:00.000Z', '2026-05-10T08:00:00.000Z']);
    // Between the re-anchoring and the charge's success the period ends at the anchor.
    assert.equal(periodEnd(basic, { ...resumed, cycle: 2 }), '2026-04-10T08:00:00.000Z');
  });

  test('the pause and resume notices', () => {
    assert.match(pausedNotice(basic, 1, new Date('2026-05-01T00:00:00Z')).body, /resumes on 2026-05-01 00:00 UTC/);
    assert.match(pausedNotice(basic, 1, null).body, /Resume it whenever you like/);
    const period = { start: new Date('2026-04-10T08:00:00Z'), end: new Date('2026-05-10T08:00:00Z') };
    assert.equal(resumedNotice(basic, 3, period, 1000).event, '3:resumed');
  });
});

describe('refunds and staff durations', () => {
  test('the refunded total sums the totals reported per payment', () => {
    assert.equal(subscriptionSnapshot(identity, active(2, { refunds: { a: 300, b: 1000 } })).refundedTotal, 1300);
  });

  test('isDurationWithin bounds what staff may hand a workflow, however large the number', () => {
    assert.ok(isDurationWithin('P1Y', 'P1Y') && isDurationWithin('P12M', 'P1Y') && isDurationWithin('P3D', 'P1Y'));
    for (const tooLong of ['P13M', 'P1Y1D', 'P367D', 'P300000Y', 'PT99999999999999999999S']) assert.ok(!isDurationWithin(tooLong, 'P1Y'), tooLong);
    for (const notADuration of ['P0D', '1Y', '', 'P-1D']) assert.ok(!isDurationWithin(notADuration, 'P1Y'), notADuration);
  });
});
