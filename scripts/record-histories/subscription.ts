/** Subscription histories: renewals and continue-as-new, dunning, recovery, pending charges. */
import { randomUUID } from 'node:crypto';
import { WorkflowUpdateStage } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import { payments } from '../../db/schema';
import { subscriptionWorkflowId } from '../../domain/subscription';
import { insertTestUser } from '../../test/support/payment-fixtures';
import { advanceTo, eventually, insertTestPlan, waitForState } from '../../test/support/subscription-fixtures';
import { paymentSettledSignal } from '../../workflows/payment';
import {
  cancelScheduledChangeUpdate,
  changeSubscriptionUpdate,
  extendGraceSignal,
  pauseSubscriptionUpdate,
  reactivateSubscriptionUpdate,
  resumeSubscriptionUpdate,
} from '../../workflows/subscription';
import { cancelSubscription, changePaymentMethod, startSubscription, subscriptionHandle } from '../../api/subscription-client';
import type { RecordedRun, Recorder, Scenario } from './recorder';

const DAY = 86_400_000;

export const SUBSCRIPTION_SCENARIOS: Record<string, Scenario> = {
  // Activation, a renewal and continue-as-new; then a carried-over run doing the same. Recorded
  // before the subscription-local-steps patch: its projection and notices are activity tasks.
  'subscription-renewal-continue-as-new': (r) => renewTwiceThenCancel(r, 'subscription-renewal-continue-as-new'),

  // The same with the patch: the projection and notices as local activities (workflows/subscription/run.ts).
  'subscription-local-steps-renewal-continue-as-new': (r) => renewTwiceThenCancel(r, 'subscription-local-steps-renewal-continue-as-new'),

  // A card change while active, a failed renewal, retries, reminders, a staff grace extension, expiry.
  'subscription-dunning-expired': async (r) => {
    const { subscriptionId, activation } = await subscribe(r, 'pm_card_visa');
    await changePaymentMethod(r.env.client, subscriptionId, 'pm_card_chargeDeclined');
    await advanceTo(r.env, activation.subscription.nextBillingDate!);
    const pastDue = await waitForState(r.env.client, subscriptionId, (s) => s.status === 'past_due');
    await subscriptionHandle(r.env.client, subscriptionId).signal(extendGraceSignal, { by: 'P1D' });
    await waitForState(r.env.client, subscriptionId, (s) => s.dunning?.graceEndsAt !== pastDue.dunning?.graceEndsAt);
    await subscriptionHandle(r.env.client, subscriptionId).result();
    return runs('subscription-dunning-expired', subscriptionId, [await currentRunId(r, subscriptionId)]);
  },

  // A hard decline, then a new card mid-grace recovers; the next run is canceled at period end.
  'subscription-recovered-then-canceled': async (r) => {
    const { subscriptionId, activation } = await subscribe(r, 'pm_card_visa');
    const firstRun = await currentRunId(r, subscriptionId);
    await changePaymentMethod(r.env.client, subscriptionId, 'pm_card_chargeDeclinedStolenCard');
    await advanceTo(r.env, activation.subscription.nextBillingDate!);
    const pastDue = await waitForState(r.env.client, subscriptionId, (s) => s.status === 'past_due');
    await advanceTo(r.env, new Date(new Date(pastDue.dunning!.failedAt).getTime() + 2 * DAY));
    await waitForState(r.env.client, subscriptionId, (s) => s.dunning?.retriesDone === 1);
    await changePaymentMethod(r.env.client, subscriptionId, 'pm_card_visa');
    const secondRun = await nextRunId(r, subscriptionId, firstRun);
    await cancelSubscription(r.env.client, subscriptionId, true);
    await subscriptionHandle(r.env.client, subscriptionId).result();
    return runs('subscription-recovered-then-canceled', subscriptionId, [firstRun, secondRun]);
  },

  // A first charge awaiting authentication, settled by the payment webhook's signal; then canceled now.
  'subscription-pending-settled-then-canceled': async (r) => {
    const { subscriptionId } = await subscribe(r, 'pm_card_authenticationRequired');
    const pending = await waitForState(r.env.client, subscriptionId, (s) => s.pendingPayment !== null);
    const { paymentId } = pending.pendingPayment!;
    const [payment] = await r.db.select().from(payments).where(eq(payments.id, paymentId));
    await subscriptionHandle(r.env.client, subscriptionId).signal(paymentSettledSignal, {
      paymentId,
      gatewayPaymentId: payment.gatewayPaymentId!,
      status: 'succeeded',
      failureCode: null,
    });
    await waitForState(r.env.client, subscriptionId, (s) => s.status === 'active');
    await cancelSubscription(r.env.client, subscriptionId, false);
    await subscriptionHandle(r.env.client, subscriptionId).result();
    return runs('subscription-pending-settled-then-canceled', subscriptionId, [await currentRunId(r, subscriptionId)]);
  },

  // A renewal awaiting authentication until its pending timeout passes, dunning; then canceled now.
  'subscription-renewal-pending-timeout': async (r) => {
    const { subscriptionId, activation } = await subscribe(r, 'pm_card_visa');
    await changePaymentMethod(r.env.client, subscriptionId, 'pm_card_authenticationRequired');
    await advanceTo(r.env, activation.subscription.nextBillingDate!);
    const pending = await waitForState(r.env.client, subscriptionId, (s) => s.pendingPayment !== null);
    await advanceTo(r.env, pending.pendingPayment!.expiresAt);
    await waitForState(r.env.client, subscriptionId, (s) => s.status === 'past_due');
    await cancelSubscription(r.env.client, subscriptionId, false);
    await subscriptionHandle(r.env.client, subscriptionId).result();
    return runs('subscription-renewal-pending-timeout', subscriptionId, [await currentRunId(r, subscriptionId)]);
  },
};

/** Plan changes, pauses and resumes: the paths the subscription-changes update handlers take. */
const CHANGE_SCENARIOS: Record<string, Scenario> = {
  // An upgrade now (prorated charge), a downgrade scheduled then withdrawn, a pause that takes
  // effect at the period end, a resume that charges a new period, and the run it continues into.
  'subscription-upgraded-paused-resumed': async (r) => {
    const { subscriptionId, activation } = await subscribe(r, 'pm_card_visa');
    const handle = subscriptionHandle(r.env.client, subscriptionId);
    const firstRun = await currentRunId(r, subscriptionId);
    const pro = await insertTestPlan(r.db, { amount: 4999 });
    await advanceTo(r.env, new Date(new Date(activation.subscription.currentPeriodStart!).getTime() + 10 * DAY));
    await handle.executeUpdate(changeSubscriptionUpdate, { args: [{ plan: pro, quantity: 2, when: 'now' }] });
    await handle.executeUpdate(changeSubscriptionUpdate, { args: [{ quantity: 1, when: 'period_end' }] });
    await handle.executeUpdate(cancelScheduledChangeUpdate);
    await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{}] });
    await advanceTo(r.env, activation.subscription.currentPeriodEnd!);
    await waitForState(r.env.client, subscriptionId, (s) => s.status === 'paused');
    await advanceTo(r.env, new Date(new Date(activation.subscription.currentPeriodEnd!).getTime() + 20 * DAY));
    await handle.startUpdate(resumeSubscriptionUpdate, { waitForStage: WorkflowUpdateStage.ACCEPTED });
    const secondRun = await nextRunId(r, subscriptionId, firstRun);
    await cancelSubscription(r.env.client, subscriptionId, false);
    await handle.result();
    return runs('subscription-upgraded-paused-resumed', subscriptionId, [firstRun, secondRun]);
  },

  // A downgrade now (credited to the balance), a cancel at period end withdrawn by reactivate, a
  // pause until a date, resumed by the workflow's timer; then canceled now.
  'subscription-downgraded-reactivated-resumed-by-timer': async (r) => {
    const { subscriptionId, activation } = await subscribe(r, 'pm_card_visa');
    const handle = subscriptionHandle(r.env.client, subscriptionId);
    const firstRun = await currentRunId(r, subscriptionId);
    const basic = await insertTestPlan(r.db, { amount: 999 });
    await handle.executeUpdate(changeSubscriptionUpdate, { args: [{ plan: basic, quantity: 1, when: 'now' }] });
    await cancelSubscription(r.env.client, subscriptionId, true);
    await handle.executeUpdate(reactivateSubscriptionUpdate);
    const end = new Date(activation.subscription.currentPeriodEnd!);
    await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ resumesAt: new Date(end.getTime() + 15 * DAY).toISOString() }] });
    await advanceTo(r.env, new Date(end.getTime() + 15 * DAY));
    const secondRun = await nextRunId(r, subscriptionId, firstRun);
    await cancelSubscription(r.env.client, subscriptionId, false);
    await handle.result();
    return runs('subscription-downgraded-reactivated-resumed-by-timer', subscriptionId, [firstRun, secondRun]);
  },
};

Object.assign(SUBSCRIPTION_SCENARIOS, CHANGE_SCENARIOS);

async function subscribe(r: Recorder, paymentMethod: string) {
  const user = await insertTestUser(r.db);
  const plan = await insertTestPlan(r.db);
  const subscriptionId = randomUUID();
  const activation = await startSubscription(r.env.client, r.taskQueue, {
    subscriptionId,
    userId: user.id,
    plan,
    paymentMethod,
    pendingPaymentTimeout: 'P1D',
    paymentsTaskQueue: r.taskQueue,
  });
  return { subscriptionId, activation };
}

/** The runs to keep, oldest first; each becomes `<name>-run<n>.json`. */
function runs(name: string, subscriptionId: string, runIds: string[]): RecordedRun[] {
  return runIds.map((runId, index) => ({ file: `${name}-run${index + 1}`, workflowId: subscriptionWorkflowId(subscriptionId), runId }));
}

/**
 * Two renewals, then a cancel; keeps the first two runs. Each state is read once the next run has
 * begun: on the time-skipping server a query that reaches a run as its local activities run and it
 * continues as new is never answered, and it leaves the server's clock locked.
 */
async function renewTwiceThenCancel(r: Recorder, name: string): Promise<RecordedRun[]> {
  const { subscriptionId, activation } = await subscribe(r, 'pm_card_visa');
  const runIds = [await currentRunId(r, subscriptionId)];
  let next = activation.subscription.nextBillingDate!;
  for (const cycle of [2, 3]) {
    await advanceTo(r.env, next);
    runIds.push(await nextRunId(r, subscriptionId, runIds.at(-1)!));
    next = (await waitForState(r.env.client, subscriptionId, (s) => s.cycle === cycle)).nextBillingDate!;
  }
  await cancelSubscription(r.env.client, subscriptionId, false);
  return runs(name, subscriptionId, runIds.slice(0, 2));
}

async function currentRunId(r: Recorder, subscriptionId: string): Promise<string> {
  return (await subscriptionHandle(r.env.client, subscriptionId).describe()).runId;
}

/** The run after `previous`, once the workflow has continued as new. */
function nextRunId(r: Recorder, subscriptionId: string, previous: string): Promise<string> {
  return eventually(async () => {
    const runId = await currentRunId(r, subscriptionId);
    if (runId === previous) throw new Error(`subscription ${subscriptionId} has not continued as new`);
    return runId;
  });
}
