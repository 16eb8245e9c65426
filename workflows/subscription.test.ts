/**
 * The subscription workflow on the time-skipping server with the real activities: PostgreSQL,
 * the sandbox gateway and the notification outbox (log mailer). Months and grace periods pass
 * in milliseconds; every date asserted is the workflow's own clock.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { WorkflowUpdateHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, type Worker } from '@temporalio/worker';
import { asc, eq } from 'drizzle-orm';
import { activitiesFromConfig } from '../activities';
import { SandboxGateway } from '../activities/gateway';
import { connectDatabase, migrateDatabase, type DatabaseHandle } from '../db/client';
import { notifications, payments, subscriptions } from '../db/schema';
import type { NotificationInput } from '../domain/notification';
import type { ChargeRequest } from '../domain/payment';
import { addPeriods } from '../domain/period';
import type { PlanTerms, SubscriptionSnapshot } from '../domain/subscription';
import { countingGateway, insertTestUser } from '../test/support/payment-fixtures';
import { advanceTo as advanceClockTo, eventually, insertTestPlan, waitForState as waitForStateOf } from '../test/support/subscription-fixtures';
import { createTimeSkippingEnv, uniqueTaskQueue } from '../test/support/temporal';
import { createLogger } from '../platform/logger';
import { bundleWorkflows, createWorkers, runWorkers } from '../platform/worker';
import { paymentSettledSignal } from './payment';
import { cancelSubscription, changePaymentMethod, startSubscription, subscriptionHandle } from '../api/subscription-client';
import { cancelSubscriptionUpdate, extendGraceSignal, paymentMethodUpdatedSignal, retryPaymentNowSignal } from './subscription';

const DAY = 86_400_000;
const VISA = 'pm_card_visa';
const DECLINED = 'pm_card_chargeDeclined';
const SHORT_OF_FUNDS = 'pm_card_chargeDeclinedInsufficientFunds';
const STOLEN = 'pm_card_chargeDeclinedStolenCard';
const NEEDS_AUTHENTICATION = 'pm_card_authenticationRequired';

/**
 * The sandbox, except that a customer's account can be topped up: Stripe's test cards always
 * answer the same, and real accounts short of funds do not.
 */
class TopUpGateway extends SandboxGateway {
  private readonly funded = new Set<string>();

  topUp(customerRef: string): void {
    this.funded.add(customerRef);
  }

  override charge(request: ChargeRequest) {
    const toppedUp = request.paymentMethod === SHORT_OF_FUNDS && this.funded.has(request.customerRef);
    return super.charge(toppedUp ? { ...request, paymentMethod: VISA } : request);
  }
}

let env: TestWorkflowEnvironment;
// Opened with the module: the sandbox gateway below keeps its records in it. Connecting is lazy,
// so the migration in `before` still runs first.
const database: DatabaseHandle = connectDatabase(process.env.DATABASE_URL!, { max: 5 });
let workers: Worker[];
let running: Promise<void>;
const gateway = new TopUpGateway(database.db);
/** Gateway payment ids whose customer authenticates just before the timeout's cancel reaches the gateway. */
const authenticatedLate = new Set<string>();
const { gateway: scriptedGateway, calls: gatewayCalls } = countingGateway(gateway, {
  cancelAnswer: ({ gatewayPaymentId }) => (authenticatedLate.has(gatewayPaymentId) ? { status: 'succeeded' } : undefined),
});
const taskQueue = uniqueTaskQueue('billing');
// Paid subscriptions continue on a queue of their own (TaskQueues.renewals).
const renewalsQueue = uniqueTaskQueue('renewals');
/** Called after each real `notify`, so a test can act at an exact point of the workflow. */
let afterNotify: ((input: NotificationInput) => Promise<void>) | null = null;
let activities: ReturnType<typeof activitiesFromConfig>;
let workflowBundle: Awaited<ReturnType<typeof bundleWorkflows>>;

before(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  await migrateDatabase(process.env.DATABASE_URL!);
  const logger = createLogger({ LOG_LEVEL: 'silent', NODE_ENV: 'test' });
  activities = activitiesFromConfig(
    { PAYMENT_GATEWAY: 'sandbox', MAIL_FROM: 'billing@example.test' },
    { db: database.db, gateway: scriptedGateway, logger },
  );
  const realNotify = activities.notify;
  activities.notify = async (input) => {
    const result = await realNotify(input);
    await afterNotify?.(input);
    return result;
  };
  workflowBundle = await bundleWorkflows();
});

/**
 * A time-skipping server per test: what one test leaves running (subscriptions renewing as later
 * tests move the clock by months, a run continuing as new) cannot reach the next, and a shared
 * server was seen to wedge on such leftovers. About a second a test.
 */
beforeEach(async () => {
  env = await createTimeSkippingEnv();
  workers = await createWorkers({ connection: env.nativeConnection, taskQueues: [taskQueue, renewalsQueue], activities, workflowBundle });
  running = runWorkers(workers);
});

afterEach(async () => {
  afterNotify = null;
  for (const worker of workers ?? []) worker.shutdown();
  await running;
  await env?.teardown();
});

after(async () => {
  await database.close();
});

// -----------------------------------------------------------------------------------------------
// Helpers

async function isClosed(subscriptionId: string): Promise<boolean> {
  return (await subscriptionHandle(env.client, subscriptionId).describe()).status.name !== 'RUNNING';
}

/**
 * Waits in real time for a workflow that a cancel is ending. Not `result()`: that lets the test
 * server skip time, and a timer firing while the workflow cancels it can wedge that server.
 */
async function closed(subscriptionId: string): Promise<void> {
  await eventually(async () => assert.ok(await isClosed(subscriptionId), 'still running'));
}

async function subscribe(paymentMethod: string, planOverrides: Partial<Omit<PlanTerms, 'planId' | 'code'>> = {}) {
  const user = await insertTestUser(database.db);
  const plan = await insertTestPlan(database.db, planOverrides);
  const subscriptionId = randomUUID();
  const activation = await startSubscription(env.client, taskQueue, {
    subscriptionId,
    userId: user.id,
    plan,
    paymentMethod,
    pendingPaymentTimeout: 'P1D',
    paymentsTaskQueue: taskQueue,
    renewalsTaskQueue: renewalsQueue,
  });
  return { subscriptionId, userId: user.id, plan, activation, handle: subscriptionHandle(env.client, subscriptionId) };
}

function waitForState(subscriptionId: string, ready: (s: SubscriptionSnapshot) => boolean): Promise<SubscriptionSnapshot> {
  return waitForStateOf(env.client, subscriptionId, ready);
}

function advanceTo(at: Date | string): Promise<void> {
  return advanceClockTo(env, at);
}

async function paymentsOf(subscriptionId: string) {
  return database.db.select().from(payments).where(eq(payments.subscriptionId, subscriptionId)).orderBy(asc(payments.cycle), asc(payments.attempt));
}

async function notificationsOf(subscriptionId: string) {
  return database.db.select().from(notifications).where(eq(notifications.subscriptionId, subscriptionId)).orderBy(asc(notifications.createdAt));
}

async function rowOf(subscriptionId: string) {
  const [row] = await database.db.select().from(subscriptions).where(eq(subscriptions.id, subscriptionId));
  return row;
}

/** Days between two instants, to the minute: activities take real milliseconds after a timer fires. */
const days = (from: string, to: string) => Math.round((new Date(to).getTime() - new Date(from).getTime()) / 60_000) / 1440;

/** Subscribes, switches to `card` while active, and lets the first renewal fail on it. */
async function subscribeAndFailRenewal(card: string) {
  const subscription = await subscribe(VISA);
  const { subscriptionId } = subscription;
  await changePaymentMethod(env.client, subscriptionId, card);
  const renewal = subscription.activation.subscription.nextBillingDate!;
  await advanceTo(renewal);
  const pastDue = await waitForState(subscriptionId, (s) => s.status === 'past_due' && s.dunning !== null);
  return { ...subscription, renewal, pastDue };
}

// -----------------------------------------------------------------------------------------------

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
    const now = new Date(await env.currentTimeMs());
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

    const answer = await changePaymentMethod(env.client, subscriptionId, VISA);

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

    const answer = await changePaymentMethod(env.client, subscriptionId, VISA);
    assert.equal(answer.status, 'active');
    assert.equal(days(failedAt, answer.lastPayment!.at), 6);
  });

  test('a charge still awaiting authentication when grace ends counts as failed, and the subscription expires on time', async () => {
    const { subscriptionId, handle, pastDue } = await subscribeAndFailRenewal(DECLINED);
    const failedAt = pastDue.dunning!.failedAt;
    await advanceTo(new Date(new Date(failedAt).getTime() + 6.5 * DAY));
    await waitForState(subscriptionId, (s) => s.dunning!.attempts === 4);

    const answer = await changePaymentMethod(env.client, subscriptionId, NEEDS_AUTHENTICATION);
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

    const answer = await cancelSubscription(env.client, subscriptionId, false);

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

    const answer = await cancelSubscription(env.client, subscriptionId, true);
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
    const answer = await cancelSubscription(env.client, subscriptionId, true);
    assert.equal(answer.status, 'canceled');
    await closed(subscriptionId);
    await assert.rejects(cancelSubscription(env.client, subscriptionId, false));
  });
});

describe('pending payments', () => {
  test('a first charge awaiting authentication activates when the webhook signals success', async () => {
    const { subscriptionId, activation, handle } = await subscribe(NEEDS_AUTHENTICATION);
    assert.equal(activation.outcome, 'pending');
    assert.equal(activation.subscription.status, 'incomplete');
    const paymentId = activation.payment!.paymentId;
    const pending = await waitForState(subscriptionId, (s) => s.pendingPayment !== null);
    assert.equal(days(pending.pendingPayment!.since, pending.pendingPayment!.expiresAt), 1);

    const [row] = await paymentsOf(subscriptionId);
    await handle.signal(paymentSettledSignal, { paymentId, gatewayPaymentId: row.gatewayPaymentId!, status: 'succeeded', failureCode: null });

    const active = await waitForState(subscriptionId, (s) => s.status === 'active');
    assert.equal(active.cycle, 1);
    assert.equal(active.pendingPayment, null);
    assert.equal((await paymentsOf(subscriptionId))[0].status, 'succeeded');
    await eventually(async () => {
      assert.deepEqual((await notificationsOf(subscriptionId)).map((n) => n.kind).sort(), ['payment_action_required', 'payment_succeeded']);
    });
  });

  test('a renewal still pending after the timeout is canceled at the gateway and counts as a failed attempt; dunning goes on', async () => {
    const { subscriptionId, activation } = await subscribe(VISA);
    await changePaymentMethod(env.client, subscriptionId, NEEDS_AUTHENTICATION);
    await advanceTo(activation.subscription.nextBillingDate!);
    const pending = await waitForState(subscriptionId, (s) => s.pendingPayment !== null);
    assert.equal(pending.status, 'active');

    const cancelsBefore = gatewayCalls.cancel;
    await advanceTo(pending.pendingPayment!.expiresAt);
    const pastDue = await waitForState(subscriptionId, (s) => s.status === 'past_due');
    assert.equal(gatewayCalls.cancel - cancelsBefore, 1);
    assert.equal(pastDue.dunning?.lastFailureCode, 'payment_pending_timeout');
    assert.equal(pastDue.dunning?.lastDecline, 'soft');
    const renewalPayment = (await paymentsOf(subscriptionId)).find((p) => p.cycle === 2)!;
    assert.deepEqual([renewalPayment.status, renewalPayment.failureCode], ['failed', 'payment_pending_timeout']);

    // The first retry charges again, on the day the timeline says.
    await advanceTo(pastDue.dunning.nextRetryAt!);
    const retried = await waitForState(subscriptionId, (s) => s.pendingPayment?.attempt === 2);
    assert.equal(days(pastDue.dunning.failedAt, retried.pendingPayment!.since), 1);
  });

  test('a renewal that succeeded before its timeout could cancel it renews the subscription', async () => {
    const { subscriptionId, activation } = await subscribe(VISA);
    await changePaymentMethod(env.client, subscriptionId, NEEDS_AUTHENTICATION);
    await advanceTo(activation.subscription.nextBillingDate!);
    const pending = await waitForState(subscriptionId, (s) => s.pendingPayment !== null);
    const [, renewal] = await paymentsOf(subscriptionId);
    authenticatedLate.add(renewal.gatewayPaymentId!);

    await advanceTo(pending.pendingPayment!.expiresAt);
    const renewed = await waitForState(subscriptionId, (s) => s.cycle === 2);
    assert.deepEqual([renewed.status, renewed.dunning, renewed.pendingPayment], ['active', null, null]);
    assert.equal(renewed.nextBillingDate, addPeriods(new Date(activation.subscription.anchorDate), 'P1M', 2).toISOString());
    assert.deepEqual([(await paymentsOf(subscriptionId))[1].status, (await paymentsOf(subscriptionId)).length], ['succeeded', 2]);
  });

  test('a first charge still pending after the timeout is canceled and the subscription never starts', async () => {
    const { subscriptionId, activation, handle } = await subscribe(NEEDS_AUTHENTICATION);
    assert.equal(activation.outcome, 'pending');
    const pending = await waitForState(subscriptionId, (s) => s.pendingPayment !== null);

    await advanceTo(pending.pendingPayment!.expiresAt);
    await closed(subscriptionId);
    const final = await handle.result();
    assert.deepEqual([final.status, final.cycle, final.lastPayment?.status], ['incomplete', 0, 'failed']);
    const [payment] = await paymentsOf(subscriptionId);
    assert.deepEqual([payment.status, payment.failureCode], ['failed', 'payment_pending_timeout']);
  });

  test('a first charge that succeeded before its timeout could cancel it activates the subscription', async () => {
    const { subscriptionId, activation } = await subscribe(NEEDS_AUTHENTICATION);
    const pending = await waitForState(subscriptionId, (s) => s.pendingPayment !== null);
    authenticatedLate.add((await paymentsOf(subscriptionId))[0].gatewayPaymentId!);

    await advanceTo(pending.pendingPayment!.expiresAt);
    const active = await waitForState(subscriptionId, (s) => s.status === 'active');
    assert.equal(active.cycle, 1);
    assert.equal(active.currentPeriodStart, activation.subscription.anchorDate);
    assert.equal((await paymentsOf(subscriptionId))[0].status, 'succeeded');
  });

  test('a cancel while the first charge awaits authentication cancels that charge at the gateway', async () => {
    const { subscriptionId, activation } = await subscribe(NEEDS_AUTHENTICATION);
    assert.equal(activation.outcome, 'pending');
    await waitForState(subscriptionId, (s) => s.pendingPayment !== null);

    const cancelsBefore = gatewayCalls.cancel;
    const answer = await cancelSubscription(env.client, subscriptionId, false);
    assert.equal(answer.status, 'canceled');
    assert.equal(gatewayCalls.cancel - cancelsBefore, 1);
    const charges = await paymentsOf(subscriptionId);
    assert.deepEqual(
      charges.map((p) => [p.kind, p.status]),
      [['subscription', 'failed']],
      'nothing left pending, nothing refunded',
    );
  });

  test('a charge that went through as the customer canceled is refunded once, with a notice', async () => {
    const { subscriptionId } = await subscribe(NEEDS_AUTHENTICATION);
    await waitForState(subscriptionId, (s) => s.pendingPayment !== null);
    const [charge] = await paymentsOf(subscriptionId);
    authenticatedLate.add(charge.gatewayPaymentId!);

    const refundsBefore = gatewayCalls.refund;
    assert.equal((await cancelSubscription(env.client, subscriptionId, false)).status, 'canceled');
    await closed(subscriptionId);
    const rows = await paymentsOf(subscriptionId);
    assert.deepEqual(
      rows.map((p) => [p.kind, p.status, p.amount, p.refundOf]),
      [
        ['subscription', 'refunded', charge.amount, null],
        ['refund', 'succeeded', charge.amount, charge.id],
      ],
    );
    assert.equal(gatewayCalls.refund - refundsBefore, 1);
    assert.ok((await notificationsOf(subscriptionId)).some((n) => n.kind === 'payment_refunded'));
  });

  test('a renewal the webhook reports as failed starts dunning with its decline code', async () => {
    const { subscriptionId, activation, handle } = await subscribe(VISA);
    await changePaymentMethod(env.client, subscriptionId, NEEDS_AUTHENTICATION);
    await advanceTo(activation.subscription.nextBillingDate!);
    const pending = await waitForState(subscriptionId, (s) => s.pendingPayment !== null);

    const { paymentId } = pending.pendingPayment!;
    await handle.signal(paymentSettledSignal, { paymentId, gatewayPaymentId: 'pi_sandbox_x', status: 'failed', failureCode: 'fraudulent' });

    const pastDue = await waitForState(subscriptionId, (s) => s.status === 'past_due');
    assert.deepEqual(
      [pastDue.dunning?.lastFailureCode, pastDue.dunning?.lastDecline, pastDue.dunning?.automaticRetriesStopped],
      ['fraudulent', 'hard', true],
    );
  });
});

describe('continue-as-new', () => {
  test('a signal and an update arriving as the workflow continues as new are not lost', async () => {
    const { subscriptionId, activation, handle } = await subscribe(VISA);
    const firstRunId = (await handle.describe()).runId;
    let cancel: Promise<WorkflowUpdateHandle<SubscriptionSnapshot>> | undefined;
    // The renewal receipt is the last activity before the hop: the signal is in the history and
    // the update's handler is running by the time the workflow sees the receipt delivered.
    afterNotify = async (input) => {
      if (input.kind !== 'payment_succeeded' || !input.dedupeKey.endsWith('/notify/2:paid')) return;
      await handle.signal(paymentMethodUpdatedSignal, { paymentMethod: 'pm_card_mastercard' });
      cancel = handle.startUpdate(cancelSubscriptionUpdate, { args: [{ atPeriodEnd: true }], waitForStage: 'ACCEPTED' });
      await cancel;
    };

    await advanceTo(activation.subscription.nextBillingDate!);
    const renewed = await waitForState(subscriptionId, (s) => s.cycle === 2 && s.cancelAtPeriodEnd);
    const answer = await (await cancel!).result();

    assert.equal(answer.cancelAtPeriodEnd, true);
    assert.equal(renewed.paymentMethod, 'pm_card_mastercard');
    assert.notEqual((await handle.describe()).runId, firstRunId, 'continued as new');
    const row = await rowOf(subscriptionId);
    assert.deepEqual([row.paymentMethod, row.cancelAtPeriodEnd, row.cycle], ['pm_card_mastercard', true, 2]);

    // To the period end on the clock, then waited for in real time (see `closed`): `result()` on
    // the running workflow would let the test server skip time as it cancels, which can wedge it.
    await advanceTo(renewed.currentPeriodEnd!);
    await closed(subscriptionId);
    const final = await handle.result();
    assert.equal(final.status, 'canceled');
    assert.equal(final.endedAt, renewed.currentPeriodEnd);
    assert.equal((await paymentsOf(subscriptionId)).length, 2, 'no charge after the cancel');
  });
});
