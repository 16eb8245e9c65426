/**
 * The harness of the subscription workflow tests that run on the time-skipping server with the
 * real activities (workflows/subscription*.test.ts): PostgreSQL, a sandbox gateway whose
 * customers can be topped up, and the notification outbox (log mailer). Months and grace periods
 * pass in milliseconds; every date the tests assert is the workflow's own clock.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, beforeEach } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, type Worker } from '@temporalio/worker';
import { asc, eq } from 'drizzle-orm';
import { activitiesFromConfig } from '../../activities';
import { SandboxGateway } from '../../activities/gateway';
import { changePaymentMethod, startSubscription, subscriptionHandle } from '../../api/subscription-client';
import { connectDatabase, migrateDatabase, type DatabaseHandle } from '../../db/client';
import { notifications, payments, subscriptions } from '../../db/schema';
import type { NotificationInput } from '../../domain/notification';
import type { ChargeRequest } from '../../domain/payment';
import type { PlanTerms, SubscriptionSnapshot } from '../../domain/subscription';
import { createLogger } from '../../platform/logger';
import { bundleWorkflows, createWorkers, runWorkers } from '../../platform/worker';
import { countingGateway, insertTestUser } from './payment-fixtures';
import { advanceTo as advanceClockTo, eventually, insertTestPlan, waitForState as waitForStateOf } from './subscription-fixtures';
import { createTimeSkippingEnv, uniqueTaskQueue } from './temporal';

export const DAY = 86_400_000;
export const VISA = 'pm_card_visa';
export const DECLINED = 'pm_card_chargeDeclined';
export const SHORT_OF_FUNDS = 'pm_card_chargeDeclinedInsufficientFunds';
export const STOLEN = 'pm_card_chargeDeclinedStolenCard';
export const NEEDS_AUTHENTICATION = 'pm_card_authenticationRequired';

/** Days between two instants, to the minute: activities take real milliseconds after a timer fires. */
export const days = (from: string, to: string) => Math.round((new Date(to).getTime() - new Date(from).getTime()) / 60_000) / 1440;

/**
 * The sandbox, except that a customer's account can be topped up: Stripe's test cards always
 * answer the same, and real accounts short of funds do not.
 */
export class TopUpGateway extends SandboxGateway {
  private readonly funded = new Set<string>();

  topUp(customerRef: string): void {
    this.funded.add(customerRef);
  }

  override charge(request: ChargeRequest) {
    const toppedUp = request.paymentMethod === SHORT_OF_FUNDS && this.funded.has(request.customerRef);
    return super.charge(toppedUp ? { ...request, paymentMethod: VISA } : request);
  }
}

type NotifyHook = (input: NotificationInput) => Promise<void>;

/**
 * Registers the test file's node:test hooks (call it once, at the top level of the file) and
 * returns what its tests use. `env` is the current test's server: read it inside a test, never
 * before, since each test gets a new one in `beforeEach`.
 */
export function useSubscriptionHarness() {
  // Opened with the module: the sandbox gateway below keeps its records in it. Connecting is lazy,
  // so the migration in `before` still runs first.
  const database: DatabaseHandle = connectDatabase(process.env.DATABASE_URL!, { max: 5 });
  const gateway = new TopUpGateway(database.db);
  /** Gateway payment ids whose customer authenticates just before the timeout's cancel reaches the gateway. */
  const authenticatedLate = new Set<string>();
  const { gateway: scriptedGateway, calls: gatewayCalls } = countingGateway(gateway, {
    cancelAnswer: ({ gatewayPaymentId }) => (authenticatedLate.has(gatewayPaymentId) ? { status: 'succeeded' } : undefined),
  });
  const taskQueue = uniqueTaskQueue('billing');
  // Paid subscriptions continue on a queue of their own (TaskQueues.renewals).
  const renewalsQueue = uniqueTaskQueue('renewals');
  const state: {
    env?: TestWorkflowEnvironment;
    workers?: Worker[];
    running?: Promise<void>;
    activities?: ReturnType<typeof activitiesFromConfig>;
    workflowBundle?: Awaited<ReturnType<typeof bundleWorkflows>>;
    /** Called after each real `notify`, so a test can act at an exact point of the workflow. */
    afterNotify: NotifyHook | null;
  } = { afterNotify: null };

  before(async () => {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    await migrateDatabase(process.env.DATABASE_URL!);
    const logger = createLogger({ LOG_LEVEL: 'silent', NODE_ENV: 'test' });
    const activities = activitiesFromConfig(
      { PAYMENT_GATEWAY: 'sandbox', MAIL_FROM: 'billing@example.test' },
      { db: database.db, gateway: scriptedGateway, logger },
    );
    const realNotify = activities.notify;
    activities.notify = async (input) => {
      const result = await realNotify(input);
      await state.afterNotify?.(input);
      return result;
    };
    state.activities = activities;
    state.workflowBundle = await bundleWorkflows();
  });

  /**
   * A time-skipping server per test: what one test leaves running (subscriptions renewing as later
   * tests move the clock by months, a run continuing as new) cannot reach the next, and a shared
   * server was seen to wedge on such leftovers. About a second a test.
   */
  beforeEach(async () => {
    state.env = await createTimeSkippingEnv();
    state.workers = await createWorkers({
      connection: state.env.nativeConnection,
      taskQueues: [taskQueue, renewalsQueue],
      activities: state.activities!,
      workflowBundle: state.workflowBundle!,
    });
    state.running = runWorkers(state.workers);
  });

  afterEach(async () => {
    state.afterNotify = null;
    for (const worker of state.workers ?? []) worker.shutdown();
    await state.running;
    await state.env?.teardown();
  });

  after(async () => {
    await database.close();
  });

  const currentEnv = (): TestWorkflowEnvironment => {
    if (!state.env) throw new Error('the time-skipping server starts in beforeEach()');
    return state.env;
  };

  async function isClosed(subscriptionId: string): Promise<boolean> {
    return (await subscriptionHandle(currentEnv().client, subscriptionId).describe()).status.name !== 'RUNNING';
  }

  /**
   * Waits in real time for a workflow that a cancel is ending. Not `result()`: that lets the test
   * server skip time, and a timer firing while the workflow cancels it can wedge that server.
   */
  async function closed(subscriptionId: string): Promise<void> {
    await eventually(async () => assert.ok(await isClosed(subscriptionId), 'still running'));
  }

  async function subscribe(paymentMethod: string, planOverrides: Partial<Omit<PlanTerms, 'planId' | 'code'>> = {}) {
    const { client } = currentEnv();
    const user = await insertTestUser(database.db);
    const plan = await insertTestPlan(database.db, planOverrides);
    const subscriptionId = randomUUID();
    const activation = await startSubscription(client, taskQueue, {
      subscriptionId,
      userId: user.id,
      plan,
      paymentMethod,
      pendingPaymentTimeout: 'P1D',
      paymentsTaskQueue: taskQueue,
      renewalsTaskQueue: renewalsQueue,
    });
    return { subscriptionId, userId: user.id, plan, activation, handle: subscriptionHandle(client, subscriptionId) };
  }

  function waitForState(subscriptionId: string, ready: (s: SubscriptionSnapshot) => boolean): Promise<SubscriptionSnapshot> {
    return waitForStateOf(currentEnv().client, subscriptionId, ready);
  }

  function advanceTo(at: Date | string): Promise<void> {
    return advanceClockTo(currentEnv(), at);
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

  /** Subscribes, switches to `card` while active, and lets the first renewal fail on it. */
  async function subscribeAndFailRenewal(card: string) {
    const subscription = await subscribe(VISA);
    const { subscriptionId } = subscription;
    await changePaymentMethod(currentEnv().client, subscriptionId, card);
    const renewal = subscription.activation.subscription.nextBillingDate!;
    await advanceTo(renewal);
    const pastDue = await waitForState(subscriptionId, (s) => s.status === 'past_due' && s.dunning !== null);
    return { ...subscription, renewal, pastDue };
  }

  return {
    /** The current test's time-skipping server (a new one each test). */
    get env(): TestWorkflowEnvironment {
      return currentEnv();
    },
    gateway,
    /** The charges, refunds and cancels that reached the gateway, counted across the test file. */
    gatewayCalls,
    /** Gateway payment ids whose customer authenticates just before the timeout's cancel reaches the gateway. */
    authenticatedLate,
    renewalsQueue,
    /** Runs `hook` after each real `notify` until the test ends, so a test can act at an exact point of the workflow. */
    onNotified: (hook: NotifyHook): void => {
      state.afterNotify = hook;
    },
    subscribe,
    subscribeAndFailRenewal,
    waitForState,
    advanceTo,
    closed,
    isClosed,
    paymentsOf,
    notificationsOf,
    rowOf,
  };
}
