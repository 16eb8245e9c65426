/**
 * Data for benchmarks and drills on a stack of their own: connections from the bench process,
 * and subscriptions that fall due at one chosen instant.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSubscriptionActivities, type SubscriptionProjection } from '../activities/subscription';
import type { AppDeps } from '../api/app';
import { durationToMilliseconds } from '../domain/period';
import { subscriptionWorkflowId, type PlanTerms } from '../domain/subscription';
import { connectTestDeps } from '../test/support/api';
import { loadConfig } from '../platform/config';
import { TASK_QUEUES } from '../platform/task-queues';
import { initialState, type subscriptionWorkflow, type SubscriptionState } from '../workflows/subscription';
import type { LocalStack } from './stack';
import { runBounded } from './stats';

export interface StackClients {
  deps: AppDeps;
  close: () => Promise<void>;
}

/** PostgreSQL, Redis and Temporal clients in this process, configured as the stack's own processes are. */
export async function connectToStack(stack: LocalStack, options: { poolSize?: number } = {}): Promise<StackClients> {
  const config = loadConfig({ ...stack.env, LOG_LEVEL: 'silent', ...(options.poolSize ? { DATABASE_POOL_SIZE: String(options.poolSize) } : {}) });
  const clients = await connectTestDeps({ config });
  // A drill stops Redis on purpose; nothing here depends on it.
  clients.deps.redis.on('error', () => undefined);
  return clients;
}

export interface DueSubscriptionsOptions {
  plan: PlanTerms;
  userIds: readonly string[];
  count: number;
  /** When every one of them renews: the end of their first paid period. */
  dueAt: Date;
  paymentMethod?: string;
  concurrency?: number;
}

export interface SeededSubscription {
  subscriptionId: string;
  userId: string;
  workflowId: string;
  /** The run that will renew at `dueAt` (it then continues as new). */
  firstRunId: string;
}

/**
 * Subscriptions in their first paid period, all due at `dueAt`: each one's row, and its workflow
 * started with the state it would carry over a continue-as-new (active, cycle 1, anchored one
 * interval before `dueAt`). Subscribing through the API cannot line renewals up: each anchor is
 * the moment its own first charge succeeded.
 */
export async function seedDueSubscriptions(deps: AppDeps, options: DueSubscriptionsOptions): Promise<SeededSubscription[]> {
  const { plan, dueAt } = options;
  const anchor = anchorOneIntervalBefore(dueAt, plan.interval);
  const { recordSubscription } = createSubscriptionActivities({ db: deps.db, logger: deps.logger });
  const results = await runBounded(options.count, options.concurrency ?? 20, async (i) => {
    const subscriptionId = randomUUID();
    const userId = options.userIds[i % options.userIds.length];
    const paymentMethod = options.paymentMethod ?? 'pm_card_visa';
    const workflowId = subscriptionWorkflowId(subscriptionId);
    await recordSubscription(activeProjection({ subscriptionId, userId, plan, workflowId, paymentMethod, anchor, dueAt }));
    const handle = await deps.temporal.workflow.start<typeof subscriptionWorkflow>('subscriptionWorkflow', {
      workflowId,
      // A continued run, so on the queue the product continues subscriptions on.
      taskQueue: deps.taskQueues?.renewals ?? TASK_QUEUES.renewals,
      args: [{ subscriptionId, userId, plan, paymentMethod, pendingPaymentTimeout: 'P1D', carried: activeState(paymentMethod, anchor) }],
    });
    return { subscriptionId, userId, workflowId, firstRunId: handle.firstExecutionRunId };
  });
  const failed = results.find((r) => !r.ok);
  if (failed && !failed.ok) throw failed.error;
  return results.map((r) => (r as { ok: true; value: SeededSubscription }).value);
}

/** History length once a run's first workflow task is done: started, task scheduled, started, completed. */
export const FIRST_TASK_DONE = 4;

/**
 * Waits until the workflows started last have run their first workflow task (their timer is set).
 * A start returns once the server has accepted it, long before the worker has caught up; task
 * queues are served about in order, so when the last ones are asleep the rest are too.
 */
export async function waitUntilAsleep(
  deps: AppDeps,
  seeded: readonly SeededSubscription[],
  options: { sample?: number; timeoutMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000);
  const sample = seeded.slice(-(options.sample ?? 25));
  for (const s of sample) {
    const handle = deps.temporal.workflow.getHandle(s.workflowId, s.firstRunId);
    while ((await handle.describe()).historyLength < FIRST_TASK_DONE) {
      if (Date.now() > deadline) throw new Error(`workflow ${s.workflowId} never ran its first task`);
      await sleep(250);
    }
  }
}

/** Fixed-length intervals only (days, hours, seconds): a month has no single "one before". */
function anchorOneIntervalBefore(dueAt: Date, interval: string): Date {
  return new Date(dueAt.getTime() - durationToMilliseconds(interval));
}

function activeState(paymentMethod: string, anchor: Date): SubscriptionState {
  return { ...initialState(paymentMethod, anchor), status: 'active', cycle: 1 };
}

function activeProjection(s: {
  subscriptionId: string;
  userId: string;
  plan: PlanTerms;
  workflowId: string;
  paymentMethod: string;
  anchor: Date;
  dueAt: Date;
}): SubscriptionProjection {
  return {
    subscriptionId: s.subscriptionId,
    userId: s.userId,
    planId: s.plan.planId,
    workflowId: s.workflowId,
    status: 'active',
    paymentMethod: s.paymentMethod,
    anchorDate: s.anchor.toISOString(),
    cycle: 1,
    currentPeriodStart: s.anchor.toISOString(),
    currentPeriodEnd: s.dueAt.toISOString(),
    nextBillingDate: s.dueAt.toISOString(),
    trialEnd: null,
    cancelAtPeriodEnd: false,
    canceledAt: null,
    graceEndsAt: null,
    attemptCount: 0,
    quantity: 1,
    scheduledChange: null,
    pauseAt: null,
    pausedAt: null,
    resumesAt: null,
    discount: null,
  };
}
