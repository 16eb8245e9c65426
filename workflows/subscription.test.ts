/**
 * The subscription workflow on the time-skipping server with the real activities (PostgreSQL, the
 * sandbox gateway, the notification outbox): subscribing, a year of renewals, dunning and
 * cancelling. Months and grace periods pass in milliseconds; every date asserted is the workflow's
 * own clock. The harness is test/support/subscription-harness.ts; payments awaiting
 * authentication and continue-as-new are in workflows/subscription-pending.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addPeriods } from '../domain/period';
import { eventually } from '../test/support/subscription-fixtures';
import {
  DAY,
  days,
  DECLINED,
  NEEDS_AUTHENTICATION,
  SHORT_OF_FUNDS,
  STOLEN,
  useSubscriptionHarness,
  VISA,
} from '../test/support/subscription-harness';
import { cancelSubscription, changePaymentMethod } from '../api/subscription-client';
import { extendGraceSignal, retryPaymentNowSignal } from './subscription';

const harness = useSubscriptionHarness();
const { subscribe, subscribeAndFailRenewal, waitForState, advanceTo, closed, paymentsOf, notificationsOf, rowOf, gateway, renewalsQueue } = harness;

describe('subscribe', () => {
  test('a successful first charge makes it active until start + interval, projected to PostgreSQL', async () => {
    const { subscriptionId, activation } = await subscribe(VISA);

    assert.equal(activation.outcome, 'active');
    assert.equal(activation.payment?.status, 'succeeded');
    const s = activation.subscription;
    assert.equal(s.status, 'active');
    assert.equal(s.cycle, 1);
    assert.equal(s.currentPeriodStart, s.anchorDate);
    assert.equal(s.nextBillingDate, addPeriods(new Date(s.anchorDate), 'P1M', 1).toISOString());

    const row = await rowOf(subscriptionId);
    assert.equal(row.status, 'active');
    assert.equal(row.workflowId, `subscription-${subscriptionId}`);
    assert.equal(row.nextBillingDate?.toISOString(), s.nextBillingDate);
    const [payment] = await paymentsOf(subscriptionId);
    assert.deepEqual([payment.status, payment.cycle, payment.attempt, payment.amount], ['succeeded', 1, 1, 1999]);
    await eventually(async () =>
      assert.deepEqual(
        (await notificationsOf(subscriptionId)).map((n) => n.kind),
        ['payment_succeeded'],
      ),
    );
  });

  test('a declined first charge leaves it incomplete and no workflow running', async () => {
    const { subscriptionId, activation, handle } = await subscribe(DECLINED);

    assert.equal(activation.outcome, 'declined');
    assert.equal(activation.subscription.status, 'incomplete');
    assert.deepEqual([activation.payment?.status, activation.payment?.failureCode], ['failed', 'generic_decline']);
    assert.equal((await handle.describe()).status.name, 'COMPLETED');
    assert.equal((await rowOf(subscriptionId)).status, 'incomplete');
  });

  test('a trial charges nothing until it ends, then bills from the trial end', async () => {
    const { subscriptionId, activation } = await subscribe(VISA, { trialPeriod: 'P14D' });

    assert.equal(activation.outcome, 'trialing');
    const trialEnd = activation.subscription.trialEnd!;
    assert.equal(days(activation.subscription.currentPeriodStart!, trialEnd), 14);
    assert.equal(activation.subscription.nextBillingDate, trialEnd);
    assert.deepEqual(await paymentsOf(subscriptionId), []);

    await advanceTo(trialEnd);
    const active = await waitForState(subscriptionId, (s) => s.status === 'active');
    assert.equal(active.anchorDate, trialEnd);
    assert.equal(active.currentPeriodStart, trialEnd);
    assert.equal(active.nextBillingDate, addPeriods(new Date(trialEnd), 'P1M', 1).toISOString());
    assert.equal((await paymentsOf(subscriptionId)).length, 1);
  });
});

describe('renewal', () => {
  test('renews monthly for a year across month ends, keeping the Jan 31 anchor', async () => {
    const now = new Date(await harness.env.currentTimeMs());
    const nextJan31 = new Date(Date.UTC(now.getUTCFullYear() + 1, 0, 31, 9, 0, 0));
    await advanceTo(nextJan31);
    const { subscriptionId, activation, handle } = await subscribe(VISA);
    const firstRunId = (await handle.describe()).runId;
    assert.equal(activation.subscription.anchorDate.slice(0, 10), nextJan31.toISOString().slice(0, 10));

    const periodStarts: string[] = [];
    let current = activation.subscription;
    let runId = firstRunId;
    for (let month = 1; month <= 12; month++) {
      await advanceTo(current.nextBillingDate!);
      // Queried once the next run has begun: on the time-skipping server, a query that reaches a
      // run while its last workflow task runs local activities and continues as new is never
      // answered, and it leaves the server's clock locked (the next advance waits a real month).
      runId = await eventually(async () => {
        const next = (await handle.describe()).runId;
        assert.notEqual(next, runId);
        return next;
      });
      current = await waitForState(subscriptionId, (s) => s.cycle === month + 1);
      periodStarts.push(current.currentPeriodStart!.slice(5, 10));
    }

    const year = nextJan31.getUTCFullYear();
    const endOfFebruary = (y: number) => `02-${new Date(Date.UTC(y, 2, 0)).getUTCDate()}`;
    assert.deepEqual(periodStarts, [
      endOfFebruary(year),
      '03-31',
      '04-30',
      '05-31',
      '06-30',
      '07-31',
      '08-31',
      '09-30',
      '10-31',
      '11-30',
      '12-31',
      '01-31',
    ]);
    assert.equal(current.nextBillingDate?.slice(0, 10), `${year + 1}-${endOfFebruary(year + 1)}`);
    const charged = await paymentsOf(subscriptionId);
    assert.deepEqual(
      charged.map((p) => `${p.cycle}:${p.attempt}:${p.status}`),
      Array.from({ length: 13 }, (_, i) => `${i + 1}:1:succeeded`),
    );
    assert.equal(new Set(charged.map((p) => p.idempotencyKey)).size, 13);
    await eventually(async () => assert.equal((await rowOf(subscriptionId)).cycle, 13));

    // A run per paid period keeps each history short; the renewals run on their own queue.
    const latest = await handle.describe();
    assert.notEqual(latest.runId, firstRunId);
    assert.equal(latest.taskQueue, renewalsQueue);
    assert.ok((await handle.fetchHistory()).events!.length < 40);
  });
});

describe('dunning', () => {
  test('a failed renewal walks the whole timeline: retries and reminders on days 1, 3, 5, expiry on day 7', async () => {
    const { subscriptionId, handle, renewal, pastDue } = await subscribeAndFailRenewal(DECLINED);
    assert.equal(pastDue.dunning?.retriesTotal, 3);
    assert.equal(days(pastDue.dunning.failedAt, pastDue.dunning.nextRetryAt!), 1);
    assert.equal(days(pastDue.dunning.failedAt, pastDue.dunning.graceEndsAt), 7);
    assert.equal(pastDue.currentPeriodStart, renewal, 'the unpaid period is the one being collected');

    const final = await handle.result();

    assert.equal(final.status, 'expired');
    const { failedAt, log } = final.dunning!;
    assert.deepEqual(
      log.map(
        (entry) =>
          `day ${days(failedAt, entry.at)} ${entry.kind}${entry.attempt ? ` #${entry.attempt} ${entry.outcome}` : ''}${entry.kind === 'reminder' ? `: ${entry.detail}` : ''}`,
      ),
      [
        'day 0 failed #1 failed',
        'day 1 retry #2 failed',
        'day 1 reminder: reminder 1 of 3: 6 days left',
        'day 3 retry #3 failed',
        'day 3 reminder: reminder 2 of 3: 4 days left',
        'day 5 retry #4 failed',
        'day 5 reminder: reminder 3 of 3: 2 days left',
        'day 7 expired',
      ],
    );
    assert.equal(days(failedAt, final.endedAt!), 7);

    const cycle2 = (await paymentsOf(subscriptionId)).filter((p) => p.cycle === 2);
    assert.deepEqual(
      cycle2.map((p) => `${p.attempt}:${p.status}:${p.failureCode}`),
      ['1:failed:generic_decline', '2:failed:generic_decline', '3:failed:generic_decline', '4:failed:generic_decline'],
    );
    const sent = await notificationsOf(subscriptionId);
    assert.deepEqual(
      sent.map((n) => n.kind),
      ['payment_succeeded', 'payment_failed', 'grace_reminder', 'grace_reminder', 'grace_reminder', 'subscription_expired'],
    );
    assert.deepEqual(
      sent.filter((n) => n.kind === 'grace_reminder').map((n) => /You have (.+?) left/.exec(n.body)?.[1]),
      ['6 days', '4 days', '2 days'],
    );
    assert.ok(
      sent.every((n) => n.sentAt !== null),
      'delivered through the mailer',
    );
    const row = await rowOf(subscriptionId);
    assert.deepEqual([row.status, row.attemptCount, row.graceEndsAt?.toISOString()], ['expired', 4, final.dunning!.graceEndsAt]);
  });

  test('recovers on the second retry and keeps the original anchor', async () => {
    const { subscriptionId, userId, activation, renewal, pastDue } = await subscribeAndFailRenewal(SHORT_OF_FUNDS);
    const failedAt = pastDue.dunning!.failedAt;

    await advanceTo(new Date(new Date(failedAt).getTime() + 2 * DAY));
    const afterFirstRetry = await waitForState(subscriptionId, (s) => s.dunning?.attempts === 2);
    assert.equal(afterFirstRetry.status, 'past_due');
    assert.equal(afterFirstRetry.dunning?.lastFailureCode, 'insufficient_funds');

    gateway.topUp(userId);
    await advanceTo(new Date(new Date(failedAt).getTime() + 3 * DAY));
    const recovered = await waitForState(subscriptionId, (s) => s.status === 'active');

    assert.equal(recovered.cycle, 2);
    assert.equal(recovered.dunning, null);
    assert.equal(days(failedAt, recovered.lastPayment!.at), 3, 'paid by the day-3 retry');
    assert.equal(recovered.currentPeriodStart, renewal);
    assert.equal(recovered.nextBillingDate, addPeriods(new Date(activation.subscription.anchorDate), 'P1M', 2).toISOString());
    const cycle2 = (await paymentsOf(subscriptionId)).filter((p) => p.cycle === 2);
    assert.deepEqual(
      cycle2.map((p) => `${p.attempt}:${p.status}`),
      ['1:failed', '2:failed', '3:succeeded'],
    );
    await eventually(async () => {
      assert.deepEqual(
        (await notificationsOf(subscriptionId)).map((n) => n.kind),
        ['payment_succeeded', 'payment_failed', 'grace_reminder', 'payment_succeeded'],
      );
      assert.equal((await rowOf(subscriptionId)).status, 'active');
    });
  });

  test('a payment-method update mid-grace retries at once', async () => {
    const { subscriptionId, renewal, pastDue } = await subscribeAndFailRenewal(DECLINED);
    const failedAt = pastDue.dunning!.failedAt;
    await advanceTo(new Date(new Date(failedAt).getTime() + 2 * DAY));
    await waitForState(subscriptionId, (s) => s.dunning?.attempts === 2);

    const answer = await changePaymentMethod(harness.env.client, subscriptionId, VISA);

    assert.equal(answer.status, 'active', 'the update answers after the retry');
    assert.equal(answer.paymentMethod, VISA);
    assert.equal(days(failedAt, answer.lastPayment!.at), 2, 'charged at once, not at the day-3 retry');
    assert.equal(answer.currentPeriodStart, renewal);
    const cycle2 = (await paymentsOf(subscriptionId)).filter((p) => p.cycle === 2);
    assert.deepEqual(
      cycle2.map((p) => `${p.attempt}:${p.status}`),
      ['1:failed', '2:failed', '3:succeeded'],
    );
    const row = await rowOf(subscriptionId);
    assert.deepEqual([row.status, row.paymentMethod, row.graceEndsAt], ['active', VISA, null]);
  });

  test('a hard decline stops automatic retries but keeps grace open for a new card', async () => {
    const { subscriptionId, pastDue } = await subscribeAndFailRenewal(STOLEN);
    assert.equal(pastDue.dunning?.automaticRetriesStopped, true);
    assert.equal(pastDue.dunning?.lastDecline, 'hard');
    assert.equal(pastDue.dunning?.nextRetryAt, null);
    const failedAt = pastDue.dunning.failedAt;

    await advanceTo(new Date(new Date(failedAt).getTime() + 6 * DAY));
    const waiting = await waitForState(subscriptionId, (s) => s.dunning!.log.filter((e) => e.kind === 'reminder').length === 3);
    assert.equal(waiting.status, 'past_due');
    assert.equal(waiting.dunning?.attempts, 1, 'no automatic retry');
    assert.equal(waiting.dunning?.retriesDone, 3);
    assert.equal((await paymentsOf(subscriptionId)).filter((p) => p.cycle === 2).length, 1);

    const answer = await changePaymentMethod(harness.env.client, subscriptionId, VISA);
    assert.equal(answer.status, 'active');
    assert.equal(days(failedAt, answer.lastPayment!.at), 6);
  });

  test('a charge still awaiting authentication when grace ends counts as failed, and the subscription expires on time', async () => {
    const { subscriptionId, handle, pastDue } = await subscribeAndFailRenewal(DECLINED);
    const failedAt = pastDue.dunning!.failedAt;
    await advanceTo(new Date(new Date(failedAt).getTime() + 6.5 * DAY));
    await waitForState(subscriptionId, (s) => s.dunning!.attempts === 4);

    const answer = await changePaymentMethod(harness.env.client, subscriptionId, NEEDS_AUTHENTICATION);
    assert.equal(days(failedAt, answer.pendingPayment!.expiresAt), 7, 'capped at the grace end, not a day later');

    const final = await handle.result();
    assert.equal(final.status, 'expired');
    assert.equal(days(failedAt, final.endedAt!), 7);
    const last = (await paymentsOf(subscriptionId)).at(-1)!;
    assert.deepEqual([last.attempt, last.status, last.failureCode], [5, 'failed', 'payment_pending_timeout']);
  });

  test('staff can extend the grace period and retry now', async () => {
    const { subscriptionId, handle, pastDue } = await subscribeAndFailRenewal(STOLEN);
    const failedAt = pastDue.dunning!.failedAt;

    await handle.signal(extendGraceSignal, { by: 'P3D' });
    const extended = await waitForState(subscriptionId, (s) => s.dunning!.graceEndsAt !== pastDue.dunning!.graceEndsAt);
    assert.equal(days(failedAt, extended.dunning!.graceEndsAt), 10);

    await handle.signal(retryPaymentNowSignal);
    const retried = await waitForState(subscriptionId, (s) => s.dunning!.attempts === 2);
    assert.deepEqual(retried.dunning?.log.at(-1), {
      at: retried.lastPayment!.at,
      kind: 'manual_retry',
      attempt: 2,
      outcome: 'failed',
      failureCode: 'stolen_card',
    });
    assert.equal(retried.status, 'past_due');

    const final = await handle.result();
    assert.equal(final.status, 'expired');
    assert.equal(days(failedAt, final.endedAt!), 10);
    const reminders = (await notificationsOf(subscriptionId)).filter((n) => n.kind === 'grace_reminder');
    assert.deepEqual(
      reminders.map((n) => /You have (.+?) left/.exec(n.body)?.[1]),
      ['9 days', '7 days', '5 days'],
    );
  });
});

describe('cancel', () => {
  test('now: canceled at once, never charged again', async () => {
    const { subscriptionId, activation } = await subscribe(VISA);

    const answer = await cancelSubscription(harness.env.client, subscriptionId, false);

    assert.equal(answer.status, 'canceled');
    assert.equal(answer.nextBillingDate, null);
    await closed(subscriptionId);
    await advanceTo(new Date(new Date(activation.subscription.nextBillingDate!).getTime() + DAY));
    assert.equal((await paymentsOf(subscriptionId)).length, 1);
    assert.equal((await rowOf(subscriptionId)).status, 'canceled');
    // Notifications go out without holding up the workflow, so their order is not asserted.
    assert.deepEqual((await notificationsOf(subscriptionId)).map((n) => n.kind).sort(), ['payment_succeeded', 'subscription_canceled']);
  });

  test('at period end: active until then, canceled at the period end without a charge', async () => {
    const { subscriptionId, handle, activation } = await subscribe(VISA);
    const periodEnd = activation.subscription.currentPeriodEnd!;

    const answer = await cancelSubscription(harness.env.client, subscriptionId, true);
    assert.deepEqual([answer.status, answer.cancelAtPeriodEnd, answer.nextBillingDate], ['active', true, null]);
    const row = await rowOf(subscriptionId);
    assert.deepEqual([row.status, row.cancelAtPeriodEnd], ['active', true]);

    const final = await handle.result();
    assert.equal(final.status, 'canceled');
    assert.equal(final.endedAt, periodEnd);
    assert.equal((await paymentsOf(subscriptionId)).length, 1);
  });

  test('past due: canceling at period end cancels now, nothing being paid for', async () => {
    const { subscriptionId } = await subscribeAndFailRenewal(DECLINED);
    const answer = await cancelSubscription(harness.env.client, subscriptionId, true);
    assert.equal(answer.status, 'canceled');
    await closed(subscriptionId);
    await assert.rejects(cancelSubscription(harness.env.client, subscriptionId, false));
  });
});
