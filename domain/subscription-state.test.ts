import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { testPlanTerms } from '../test/support/plan-terms';
import type { PlanTerms } from './subscription';
import { canceledNotice, graceReminderNotice, periodPaidNotice, renewalFailedNotice } from './subscription-notices';
import {
  initialState,
  isPaymentMethodToken,
  periodEnd,
  subscriptionProjection,
  subscriptionSnapshot,
  upcomingDunningEvent,
  type DunningState,
  type SubscriptionState,
} from './subscription-state';

const plan: PlanTerms = testPlanTerms({ planId: 'plan-1', code: 'pro-monthly' });
const identity = { subscriptionId: 'sub-1', userId: 'user-1', plan };
const JAN_31 = new Date('2026-01-31T10:00:00Z');

function activeState(cycle: number): SubscriptionState {
  return { ...initialState('pm_card_visa', JAN_31), status: 'active', cycle };
}

function dunningState(overrides: Partial<DunningState> = {}): DunningState {
  return {
    cycle: 2,
    failedAt: '2026-02-28T10:00:00.000Z',
    graceEndsAt: '2026-03-07T10:00:00.000Z',
    attempts: 1,
    nextEvent: 0,
    retriesDone: 0,
    automaticRetriesStopped: false,
    lastFailureCode: 'card_declined',
    lastDecline: 'soft',
    retryRequests: 0,
    retryRequestsServed: 0,
    log: [],
    ...overrides,
  };
}

describe('subscription snapshot', () => {
  test('before the first charge there is no period and no billing date', () => {
    const snapshot = subscriptionSnapshot(identity, initialState('pm_card_visa', JAN_31));
    assert.equal(snapshot.status, 'incomplete');
    assert.deepEqual([snapshot.currentPeriodStart, snapshot.currentPeriodEnd, snapshot.nextBillingDate], [null, null, null]);
    assert.equal(snapshot.plan.price, '$19.99');
  });

  test('an active subscription shows its paid period, calendar-correct from a month end, and bills at its end', () => {
    const snapshot = subscriptionSnapshot(identity, activeState(1));
    assert.equal(snapshot.currentPeriodStart, '2026-01-31T10:00:00.000Z');
    assert.equal(snapshot.currentPeriodEnd, '2026-02-28T10:00:00.000Z');
    assert.equal(snapshot.nextBillingDate, '2026-02-28T10:00:00.000Z');
    assert.equal(periodEnd(plan, activeState(2)), '2026-03-31T10:00:00.000Z');
  });

  test('cancel at period end keeps the period but drops the next billing date', () => {
    const snapshot = subscriptionSnapshot(identity, { ...activeState(1), cancelAtPeriodEnd: true });
    assert.equal(snapshot.currentPeriodEnd, '2026-02-28T10:00:00.000Z');
    assert.equal(snapshot.nextBillingDate, null);
  });

  test('past due shows the unpaid period being collected, with the next retry and reminder', () => {
    const state: SubscriptionState = { ...activeState(1), status: 'past_due', dunning: dunningState() };
    const snapshot = subscriptionSnapshot(identity, state);
    assert.equal(snapshot.currentPeriodStart, '2026-02-28T10:00:00.000Z');
    assert.equal(snapshot.nextBillingDate, null);
    assert.equal(snapshot.dunning?.retriesTotal, 3);
    assert.equal(snapshot.dunning?.nextRetryAt, '2026-03-01T10:00:00.000Z');
    assert.equal(snapshot.dunning?.nextReminderAt, '2026-03-01T10:00:00.000Z');
  });

  test('after a hard decline no retry is upcoming, but reminders are', () => {
    const dunning = dunningState({ automaticRetriesStopped: true });
    assert.equal(upcomingDunningEvent(plan, dunning, 'retry'), undefined);
    assert.equal(upcomingDunningEvent(plan, dunning, 'reminder')?.at.toISOString(), '2026-03-01T10:00:00.000Z');
  });

  test('the projection is the row of the snapshot, with the grace end and attempts of dunning', () => {
    const state: SubscriptionState = { ...activeState(1), status: 'past_due', dunning: dunningState({ attempts: 2 }) };
    const row = subscriptionProjection(identity, 'subscription-sub-1', state);
    assert.deepEqual(
      [row.planId, row.workflowId, row.status, row.graceEndsAt, row.attemptCount],
      ['plan-1', 'subscription-sub-1', 'past_due', '2026-03-07T10:00:00.000Z', 2],
    );
    assert.equal(subscriptionProjection(identity, 'w', activeState(1)).attemptCount, 0);
  });

  test('payment method tokens are accepted, anything else (a card number with spaces) is not', () => {
    assert.ok(isPaymentMethodToken('pm_card_visa'));
    assert.ok(!isPaymentMethodToken('4242 4242 4242 4242'));
    assert.ok(!isPaymentMethodToken(undefined));
  });
});

describe('subscription notices', () => {
  test('each notice is keyed by its event, so a resend is the same notice', () => {
    const period = { start: JAN_31, end: new Date('2026-02-28T10:00:00Z') };
    assert.equal(periodPaidNotice(plan, 3, period, false).event, '3:paid');
    assert.equal(renewalFailedNotice(plan, 3, { failureCode: 'card_declined', decline: 'soft' }, undefined, JAN_31).event, '3:failed');
    assert.equal(graceReminderNotice(plan, 3, 2, '2 days', 'card_declined', JAN_31).event, '3:reminder:2');
  });

  test('the receipt names the amount, the period and the next payment; a cancel-at-period-end says it ends', () => {
    const period = { start: JAN_31, end: new Date('2026-02-28T10:00:00Z') };
    const receipt = periodPaidNotice(plan, 1, period, false);
    assert.equal(receipt.kind, 'payment_succeeded');
    assert.match(receipt.body, /\$19\.99 for Pro, covering 2026-01-31 10:00 UTC to 2026-02-28 10:00 UTC/);
    assert.match(receipt.body, /next payment is due on 2026-02-28 10:00 UTC/);
    assert.match(periodPaidNotice(plan, 1, period, true).body, /Your subscription ends then\./);
  });

  test('a failed renewal promises a retry only when one is coming and the decline is soft', () => {
    const retry = new Date('2026-03-01T10:00:00Z');
    assert.match(
      renewalFailedNotice(plan, 2, { failureCode: 'card_declined', decline: 'soft' }, retry, JAN_31).body,
      /try again on 2026-03-01 10:00 UTC/,
    );
    assert.match(renewalFailedNotice(plan, 2, { failureCode: 'stolen_card', decline: 'hard' }, retry, JAN_31).body, /will not retry/);
  });

  test('the cancel notice says when and that nothing more is charged', () => {
    const notice = canceledNotice(plan, JAN_31);
    assert.equal(notice.kind, 'subscription_canceled');
    assert.match(notice.body, /canceled on 2026-01-31 10:00 UTC\. You will not be charged again\./);
  });
});
