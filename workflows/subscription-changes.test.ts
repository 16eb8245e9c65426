/**
 * Plan and seat changes, pause and resume, and reactivation on the subscription workflow, with
 * stubbed activities on a time-skipping server: what each change charges or credits (the stubbed
 * gateway records every charge's amount and key), what the renewals then charge, and what the
 * validators refuse without a trace in the history. Months pass in milliseconds; every instant
 * asserted is the workflow's own clock.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { WorkflowUpdateFailedError, WorkflowUpdateStage } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { CreditBalance, CreditGrant } from '../domain/credit';
import type { NotificationInput } from '../domain/notification';
import type { ChargeInput, ChargeResult, PaymentSettlement } from '../domain/payment';
import { addPeriods } from '../domain/period';
import { prorate } from '../domain/proration';
import { subscriptionWorkflowId, type PlanTerms } from '../domain/subscription';
import { testPlanTerms } from '../test/support/plan-terms';
import { ActivityCalls, runStubbedWorker, stubActivities } from '../test/support/stubbed-activities';
import { advanceTo, waitForState } from '../test/support/subscription-fixtures';
import { uniqueTaskQueue } from '../test/support/temporal';
import { cancelSubscription, startSubscription, subscriptionHandle } from '../api/subscription-client';
import {
  cancelScheduledChangeUpdate,
  changeSubscriptionUpdate,
  extendGraceSignal,
  pauseSubscriptionUpdate,
  reactivateSubscriptionUpdate,
  resumeSubscriptionUpdate,
  SUBSCRIPTION_FAILURES,
} from './subscription';

const DAY = 86_400_000;
const taskQueue = uniqueTaskQueue('subscription-changes');
const calls = new ActivityCalls();
/** Charges to decline, by a part of their idempotency key (`/change-1`, `/cycle-2/`). */
const declines = new Map<string, string[]>();

const BASIC = testPlanTerms({ amount: 1000 });
const PRO: PlanTerms = { ...testPlanTerms({ amount: 3000 }), planId: randomUUID(), code: 'pro', name: 'Pro' };
const EURO: PlanTerms = { ...testPlanTerms({ amount: 3000, currency: 'eur' }), planId: randomUUID(), code: 'euro', name: 'Euro' };

const activities = stubActivities(calls, {
  recordSubscription: (_: unknown): void => undefined,
  chargePayment: ({ subscriptionId, idempotencyKey }: ChargeInput): ChargeResult => {
    const declined = (declines.get(subscriptionId!) ?? []).some((part) => idempotencyKey.includes(part));
    return {
      paymentId: idempotencyKey,
      status: declined ? 'failed' : 'succeeded',
      gatewayPaymentId: `pi_${idempotencyKey}`,
      failureCode: declined ? 'card_declined' : null,
      decline: declined ? 'soft' : null,
      creditApplied: 0,
    };
  },
  settlePayment: (_: PaymentSettlement): void => undefined,
  grantCredit: (grant: CreditGrant): CreditBalance => ({ currency: grant.currency, amount: grant.amount }),
  notify: (_: NotificationInput) => ({ notificationId: randomUUID(), sent: true }),
  recordChargeInvoice: ({ status }: { paymentId: string; status: string }) => ({ invoiceId: randomUUID(), number: 'INV-2026-000001', status }),
});

const stubbed = runStubbedWorker(taskQueue, activities, { perTest: true });

async function subscribe(plan: PlanTerms = BASIC, { decline = [] as string[], quantity }: { decline?: string[]; quantity?: number } = {}) {
  const subscriptionId = randomUUID();
  declines.set(subscriptionId, decline);
  const activation = await startSubscription(stubbed.env.client, taskQueue, {
    subscriptionId,
    userId: 'user-1',
    plan,
    ...(quantity ? { quantity } : {}),
    paymentMethod: 'pm_test',
    pendingPaymentTimeout: 'PT1H',
    paymentsTaskQueue: taskQueue,
  });
  assert.equal(activation.outcome, 'active');
  return { subscriptionId, subscription: activation.subscription, handle: subscriptionHandle(stubbed.env.client, subscriptionId) };
}

/** Each charge a subscription made: its amount and the end of its idempotency key. */
function charges(subscriptionId: string): [number, string][] {
  const prefix = subscriptionWorkflowId(subscriptionId);
  return calls.inputs<ChargeInput>(prefix, 'chargePayment').map((c) => [c.amount, c.idempotencyKey.slice(prefix.length)]);
}

function credits(subscriptionId: string): CreditGrant[] {
  return calls.inputs<CreditGrant>(subscriptionWorkflowId(subscriptionId), 'grantCredit');
}

/** The failure type of an update the workflow refused (validator) or failed (handler). */
async function refusal(call: Promise<unknown>): Promise<string | undefined> {
  const error = await call.then(
    () => assert.fail('the update was accepted'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof WorkflowUpdateFailedError, String(error));
  return error.cause instanceof ApplicationFailure ? (error.cause.type ?? undefined) : undefined;
}

async function historyEventTypes(subscriptionId: string): Promise<string[]> {
  const history = await subscriptionHandle(stubbed.env.client, subscriptionId).fetchHistory();
  return (history.events ?? []).map((event) => String(event.eventType));
}

async function endSub(subscriptionId: string): Promise<void> {
  await cancelSubscription(stubbed.env.client, subscriptionId, false);
}

describe('subscription changes (stubbed activities)', () => {
  test('an upgrade mid-period charges the prorated net at once, and the next renewal charges the new plan', async () => {
    const { subscriptionId, subscription, handle } = await subscribe();
    const start = new Date(subscription.currentPeriodStart!);
    const end = new Date(subscription.currentPeriodEnd!);
    await advanceTo(stubbed.env, new Date(start.getTime() + 10 * DAY));
    const at = new Date(await stubbed.env.currentTimeMs());
    const answer = await handle.executeUpdate(changeSubscriptionUpdate, { args: [{ plan: PRO, quantity: 1, when: 'now' }] });
    const expected = prorate({
      periodStart: start,
      periodEnd: end,
      at,
      from: { amount: 1000, quantity: 1 },
      to: { amount: 3000, quantity: 1 },
      currency: 'usd',
    });
    assert.deepEqual(answer.proration, expected);
    assert.ok(answer.proration.net > 0 && answer.proration.credit < 1000);
    assert.deepEqual([answer.subscription.plan.planId, answer.subscription.periodAmount], [PRO.planId, 3000]);
    // The billing anchor stays.
    assert.equal(answer.subscription.currentPeriodEnd, subscription.currentPeriodEnd);
    await advanceTo(stubbed.env, end);
    await waitForState(stubbed.env.client, subscriptionId, (s) => s.cycle === 2);
    assert.deepEqual(charges(subscriptionId), [
      [1000, '/cycle-1/attempt-1'],
      [expected.net, '/change-1'],
      [3000, '/cycle-2/attempt-1'],
    ]);
    await endSub(subscriptionId);
  });

  test('a downgrade now credits the balance instead of charging', async () => {
    const { subscriptionId, subscription, handle } = await subscribe(PRO);
    await advanceTo(stubbed.env, new Date(new Date(subscription.currentPeriodStart!).getTime() + 5 * DAY));
    const answer = await handle.executeUpdate(changeSubscriptionUpdate, { args: [{ plan: BASIC, quantity: 1, when: 'now' }] });
    assert.ok(answer.proration!.net < 0);
    assert.equal(answer.payment, null);
    const [credit] = credits(subscriptionId);
    assert.deepEqual(
      [credit.amount, credit.currency, credit.kind, credit.idempotencyKey],
      [-answer.proration!.net, 'usd', 'proration', `proration/${subscriptionWorkflowId(subscriptionId)}/change-1`],
    );
    assert.deepEqual(charges(subscriptionId), [[3000, '/cycle-1/attempt-1']]);
    await endSub(subscriptionId);
  });

  test('seats prorate like a plan change and renewals charge the plan amount × quantity', async () => {
    const { subscriptionId, subscription, handle } = await subscribe(BASIC, { quantity: 2 });
    assert.deepEqual([subscription.quantity, subscription.periodAmount], [2, 2000]);
    const start = new Date(subscription.currentPeriodStart!);
    await advanceTo(stubbed.env, new Date(start.getTime() + 3 * DAY));
    const at = new Date(await stubbed.env.currentTimeMs());
    const answer = await handle.executeUpdate(changeSubscriptionUpdate, { args: [{ quantity: 5, when: 'now' }] });
    const period = { periodStart: start, periodEnd: new Date(subscription.currentPeriodEnd!), at, currency: 'usd' };
    assert.deepEqual(answer.proration, prorate({ ...period, from: { amount: 1000, quantity: 2 }, to: { amount: 1000, quantity: 5 } }));
    await advanceTo(stubbed.env, subscription.currentPeriodEnd!);
    await waitForState(stubbed.env.client, subscriptionId, (s) => s.cycle === 2);
    assert.deepEqual(charges(subscriptionId), [
      [2000, '/cycle-1/attempt-1'],
      [answer.proration.net, '/change-1'],
      [5000, '/cycle-2/attempt-1'],
    ]);
    await endSub(subscriptionId);
  });

  test('a declined prorated charge changes nothing and fails the update as declined', async () => {
    const { subscriptionId, handle } = await subscribe(BASIC, { decline: ['/change-1'] });
    assert.equal(
      await refusal(handle.executeUpdate(changeSubscriptionUpdate, { args: [{ plan: PRO, quantity: 1, when: 'now' }] })),
      SUBSCRIPTION_FAILURES.declined,
    );
    const state = await waitForState(stubbed.env.client, subscriptionId, () => true);
    assert.deepEqual([state.plan.planId, state.status], [BASIC.planId, 'active']);
    // A second try is a new change with a key of its own.
    const retried = await handle.executeUpdate(changeSubscriptionUpdate, { args: [{ plan: PRO, quantity: 1, when: 'now' }] });
    assert.equal(retried.subscription.plan.planId, PRO.planId);
    assert.deepEqual(
      charges(subscriptionId).map(([, key]) => key),
      ['/cycle-1/attempt-1', '/change-1', '/change-2'],
    );
    await endSub(subscriptionId);
  });

  test('a downgrade at period end shows as scheduled, charges nothing now, and applies at the renewal', async () => {
    const { subscriptionId, subscription, handle } = await subscribe(PRO);
    const answer = await handle.executeUpdate(changeSubscriptionUpdate, { args: [{ plan: BASIC, quantity: 1, when: 'period_end' }] });
    assert.deepEqual(answer.subscription.scheduledChange, { planId: BASIC.planId, quantity: 1, at: subscription.currentPeriodEnd });
    assert.equal(answer.subscription.plan.planId, PRO.planId);
    await advanceTo(stubbed.env, subscription.currentPeriodEnd!);
    const renewed = await waitForState(stubbed.env.client, subscriptionId, (s) => s.cycle === 2);
    assert.deepEqual([renewed.plan.planId, renewed.scheduledChange], [BASIC.planId, null]);
    assert.deepEqual(charges(subscriptionId), [
      [3000, '/cycle-1/attempt-1'],
      [1000, '/cycle-2/attempt-1'],
    ]);
    await endSub(subscriptionId);
  });

  test('a scheduled change can be withdrawn before it applies', async () => {
    const { subscriptionId, subscription, handle } = await subscribe(PRO);
    await handle.executeUpdate(changeSubscriptionUpdate, { args: [{ plan: BASIC, quantity: 1, when: 'period_end' }] });
    assert.equal((await handle.executeUpdate(cancelScheduledChangeUpdate)).scheduledChange, null);
    assert.equal(await refusal(handle.executeUpdate(cancelScheduledChangeUpdate)), SUBSCRIPTION_FAILURES.notAllowed);
    await advanceTo(stubbed.env, subscription.currentPeriodEnd!);
    await waitForState(stubbed.env.client, subscriptionId, (s) => s.cycle === 2);
    assert.deepEqual(charges(subscriptionId).at(-1), [3000, '/cycle-2/attempt-1']);
    await endSub(subscriptionId);
  });

  test('pause for two periods then resume: nothing is charged while paused, and the new period starts at the resume', async () => {
    const { subscriptionId, subscription, handle } = await subscribe();
    const paused = await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{}] });
    assert.deepEqual([paused.status, paused.pauseAt, paused.nextBillingDate], ['active', subscription.currentPeriodEnd, null]);
    await advanceTo(stubbed.env, subscription.currentPeriodEnd!);
    const stopped = await waitForState(stubbed.env.client, subscriptionId, (s) => s.status === 'paused');
    assert.equal(stopped.pausedAt, subscription.currentPeriodEnd);
    await advanceTo(stubbed.env, addPeriods(new Date(subscription.currentPeriodEnd!), 'P1M', 2));
    assert.equal(charges(subscriptionId).length, 1);
    const resumedAt = new Date(await stubbed.env.currentTimeMs());
    // Answered from the state rather than the update's result: the update completes in the task
    // that continues the run as new, whose answer the time-skipping server can lose.
    await handle.startUpdate(resumeSubscriptionUpdate, { waitForStage: WorkflowUpdateStage.ACCEPTED });
    const resumed = await waitForState(stubbed.env.client, subscriptionId, (s) => s.status === 'active');
    assert.equal(resumed.cycle, 2);
    // The new period starts when the workflow took the resume, a moment after the clock was read.
    const periodStart = new Date(resumed.currentPeriodStart!);
    assert.ok(periodStart.getTime() - resumedAt.getTime() < 1000, `${periodStart.toISOString()} vs ${resumedAt.toISOString()}`);
    assert.equal(resumed.nextBillingDate, addPeriods(periodStart, 'P1M', 1).toISOString());
    assert.deepEqual(charges(subscriptionId), [
      [1000, '/cycle-1/attempt-1'],
      [1000, '/resume-1'],
    ]);
    await endSub(subscriptionId);
  });

  test('resumesAt resumes by the workflow timer; a resume before the period ends charges nothing', async () => {
    const { subscriptionId, subscription, handle } = await subscribe();
    const resumesAt = new Date(new Date(subscription.currentPeriodEnd!).getTime() + 40 * DAY).toISOString();
    await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ resumesAt }] });
    await advanceTo(stubbed.env, subscription.currentPeriodEnd!);
    await waitForState(stubbed.env.client, subscriptionId, (s) => s.status === 'paused' && s.resumesAt === resumesAt);
    await advanceTo(stubbed.env, resumesAt);
    const resumed = await waitForState(stubbed.env.client, subscriptionId, (s) => s.status === 'active' && s.cycle === 2);
    assert.equal(resumed.currentPeriodStart, resumesAt);
    assert.deepEqual(charges(subscriptionId).at(-1), [1000, '/cycle-2/attempt-1']);

    // Paused again, then resumed within the paid period: the pause is withdrawn, no charge.
    await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{}] });
    const withdrawn = await handle.executeUpdate(resumeSubscriptionUpdate);
    assert.deepEqual(
      [withdrawn.payment, withdrawn.subscription.pauseAt, withdrawn.subscription.nextBillingDate],
      [null, null, resumed.currentPeriodEnd],
    );
    assert.equal(charges(subscriptionId).length, 2);
    await endSub(subscriptionId);
  });

  test('a declined resume leaves the subscription paused', async () => {
    const { subscriptionId, subscription, handle } = await subscribe(BASIC, { decline: ['/resume-1'] });
    await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{}] });
    await advanceTo(stubbed.env, subscription.currentPeriodEnd!);
    await waitForState(stubbed.env.client, subscriptionId, (s) => s.status === 'paused');
    assert.equal(await refusal(handle.executeUpdate(resumeSubscriptionUpdate)), SUBSCRIPTION_FAILURES.declined);
    assert.equal((await waitForState(stubbed.env.client, subscriptionId, () => true)).status, 'paused');
    await handle.startUpdate(resumeSubscriptionUpdate, { waitForStage: WorkflowUpdateStage.ACCEPTED });
    await waitForState(stubbed.env.client, subscriptionId, (s) => s.status === 'active');
    await endSub(subscriptionId);
  });

  test('reactivate withdraws a cancel at period end, and the subscription renews', async () => {
    const { subscriptionId, subscription, handle } = await subscribe();
    assert.equal(await refusal(handle.executeUpdate(reactivateSubscriptionUpdate)), SUBSCRIPTION_FAILURES.notAllowed);
    await cancelSubscription(stubbed.env.client, subscriptionId, true);
    const reactivated = await handle.executeUpdate(reactivateSubscriptionUpdate);
    assert.deepEqual(
      [reactivated.cancelAtPeriodEnd, reactivated.canceledAt, reactivated.nextBillingDate],
      [false, null, subscription.currentPeriodEnd],
    );
    await advanceTo(stubbed.env, subscription.currentPeriodEnd!);
    assert.equal((await waitForState(stubbed.env.client, subscriptionId, (s) => s.cycle === 2)).status, 'active');
    await endSub(subscriptionId);
  });

  test('validators refuse what the state does not allow, leaving no trace in the history', async () => {
    const { subscriptionId, subscription, handle } = await subscribe(BASIC, { decline: ['/cycle-2/'] });
    const before = (await historyEventTypes(subscriptionId)).filter((t) => t.includes('UPDATE')).length;
    assert.equal(
      await refusal(handle.executeUpdate(changeSubscriptionUpdate, { args: [{ plan: EURO, quantity: 1, when: 'now' }] })),
      SUBSCRIPTION_FAILURES.notAllowed,
    );
    assert.equal(
      await refusal(handle.executeUpdate(changeSubscriptionUpdate, { args: [{ quantity: 0, when: 'now' }] })),
      SUBSCRIPTION_FAILURES.invalidRequest,
    );
    assert.equal(
      await refusal(handle.executeUpdate(changeSubscriptionUpdate, { args: [{ quantity: 10_001, when: 'now' }] })),
      SUBSCRIPTION_FAILURES.invalidRequest,
    );
    assert.equal(
      await refusal(handle.executeUpdate(changeSubscriptionUpdate, { args: [{ quantity: 1, when: 'now' }] })),
      SUBSCRIPTION_FAILURES.notAllowed,
    );
    const tooEarly = { resumesAt: subscription.currentPeriodStart };
    assert.equal(await refusal(handle.executeUpdate(pauseSubscriptionUpdate, { args: [tooEarly] })), SUBSCRIPTION_FAILURES.invalidRequest);
    assert.equal(await refusal(handle.executeUpdate(resumeSubscriptionUpdate)), SUBSCRIPTION_FAILURES.notAllowed);
    assert.equal((await historyEventTypes(subscriptionId)).filter((t) => t.includes('UPDATE')).length, before);

    // A change during dunning, and a pause of a past-due subscription, are refused.
    await advanceTo(stubbed.env, subscription.currentPeriodEnd!);
    await waitForState(stubbed.env.client, subscriptionId, (s) => s.status === 'past_due');
    assert.equal(
      await refusal(handle.executeUpdate(changeSubscriptionUpdate, { args: [{ plan: PRO, quantity: 1, when: 'now' }] })),
      SUBSCRIPTION_FAILURES.notAllowed,
    );
    assert.equal(await refusal(handle.executeUpdate(pauseSubscriptionUpdate, { args: [{}] })), SUBSCRIPTION_FAILURES.notAllowed);
    // Staff grace beyond a year is ignored: dunning goes on and the subscription still expires.
    await handle.signal(extendGraceSignal, { by: 'P300000Y' });
    const state = await waitForState(stubbed.env.client, subscriptionId, () => true);
    assert.equal(
      state.dunning!.log.some((entry) => entry.kind === 'grace_extended'),
      false,
    );
    await advanceTo(stubbed.env, state.dunning!.graceEndsAt);
    assert.equal((await handle.result()).status, 'expired');
  });

  test('a change racing a renewal is applied first (nothing left to prorate) and the renewal charges the new plan', async () => {
    const { subscriptionId, subscription, handle } = await subscribe();
    await advanceTo(stubbed.env, new Date(new Date(subscription.currentPeriodEnd!).getTime() - 1000));
    const change = handle.executeUpdate(changeSubscriptionUpdate, { args: [{ plan: PRO, quantity: 1, when: 'now' }] });
    const advanced = advanceTo(stubbed.env, subscription.currentPeriodEnd!);
    const [answer] = await Promise.all([change, advanced]);
    assert.ok(answer.proration!.net <= 2 * 1, `at most a second prorated: ${JSON.stringify(answer.proration)}`);
    await waitForState(stubbed.env.client, subscriptionId, (s) => s.cycle === 2);
    assert.deepEqual(charges(subscriptionId).at(-1), [3000, '/cycle-2/attempt-1']);
    await endSub(subscriptionId);
  });
});
