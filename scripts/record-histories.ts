/**
 * Regenerates test/histories/*.json: real subscription workflow histories (time-skipping server,
 * real activities against DATABASE_URL, sandbox gateway) that test/replay.test.ts replays against
 * the current workflow code. Re-record only when a change is meant to break running workflows
 * (and then guard the old path with `patched()`); otherwise keep the old histories.
 *
 *   npx tsx scripts/record-histories.ts [scenario …]   (all scenarios when none is named)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { activitiesFromConfig } from '../activities';
import { eq } from 'drizzle-orm';
import { connectDatabase, migrateDatabase, type Database } from '../db/client';
import { payments } from '../db/schema';
import { insertTestUser } from '../test/support/payment-fixtures';
import { advanceTo, eventually, insertTestPlan, waitForState } from '../test/support/subscription-fixtures';
import { createTimeSkippingEnv, uniqueTaskQueue } from '../test/support/temporal';
import { createLogger } from '../platform/logger';
import { useLocalEndpoints } from './local-endpoints';
import { bundleWorkflows, createWorkers } from '../platform/worker';
import { paymentSettledSignal } from '../workflows/payment';
import { extendGraceSignal } from '../workflows/subscription';
import { cancelSubscription, changePaymentMethod, startSubscription, subscriptionHandle } from '../api/subscription-client';

export const HISTORIES_DIR = path.join(__dirname, '..', 'test', 'histories');
const DAY = 86_400_000;

interface Recorder {
  env: TestWorkflowEnvironment;
  db: Database;
  taskQueue: string;
}

/** Scenario name → the runs to keep, oldest first; each run becomes `<name>-run<n>.json`. */
const SCENARIOS: Record<string, (r: Recorder) => Promise<{ subscriptionId: string; runIds: string[] }>> = {
  // Activation, a renewal and continue-as-new; then a carried-over run doing the same.
  'renewal-continue-as-new': async (r) => {
    const { subscriptionId, activation } = await subscribe(r, 'pm_card_visa');
    const runIds = [await currentRunId(r, subscriptionId)];
    let next = activation.subscription.nextBillingDate!;
    for (const cycle of [2, 3]) {
      await advanceTo(r.env, next);
      next = (await waitForState(r.env.client, subscriptionId, (s) => s.cycle === cycle)).nextBillingDate!;
      runIds.push(await nextRunId(r, subscriptionId, runIds.at(-1)!));
    }
    await cancelSubscription(r.env.client, subscriptionId, false);
    return { subscriptionId, runIds: runIds.slice(0, 2) };
  },

  // A card change while active, a failed renewal, retries, reminders, a staff grace extension, expiry.
  'dunning-expired': async (r) => {
    const { subscriptionId, activation } = await subscribe(r, 'pm_card_visa');
    await changePaymentMethod(r.env.client, subscriptionId, 'pm_card_chargeDeclined');
    await advanceTo(r.env, activation.subscription.nextBillingDate!);
    const pastDue = await waitForState(r.env.client, subscriptionId, (s) => s.status === 'past_due');
    await subscriptionHandle(r.env.client, subscriptionId).signal(extendGraceSignal, { by: 'P1D' });
    await waitForState(r.env.client, subscriptionId, (s) => s.dunning?.graceEndsAt !== pastDue.dunning?.graceEndsAt);
    await subscriptionHandle(r.env.client, subscriptionId).result();
    return { subscriptionId, runIds: [await currentRunId(r, subscriptionId)] };
  },

  // A hard decline, then a new card mid-grace recovers; the next run is canceled at period end.
  'recovered-then-canceled': async (r) => {
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
    return { subscriptionId, runIds: [firstRun, secondRun] };
  },

  // A first charge awaiting authentication, settled by the payment webhook's signal; then canceled now.
  'pending-settled-then-canceled': async (r) => {
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
    return { subscriptionId, runIds: [await currentRunId(r, subscriptionId)] };
  },

  // A renewal awaiting authentication until its pending timeout passes, dunning; then canceled now.
  'renewal-pending-timeout': async (r) => {
    const { subscriptionId, activation } = await subscribe(r, 'pm_card_visa');
    await changePaymentMethod(r.env.client, subscriptionId, 'pm_card_authenticationRequired');
    await advanceTo(r.env, activation.subscription.nextBillingDate!);
    const pending = await waitForState(r.env.client, subscriptionId, (s) => s.pendingPayment !== null);
    await advanceTo(r.env, pending.pendingPayment!.expiresAt);
    await waitForState(r.env.client, subscriptionId, (s) => s.status === 'past_due');
    await cancelSubscription(r.env.client, subscriptionId, false);
    await subscriptionHandle(r.env.client, subscriptionId).result();
    return { subscriptionId, runIds: [await currentRunId(r, subscriptionId)] };
  },
};

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

/** The scenarios named on the command line, or all of them; an unknown name is an error. */
function chosenScenarios(names: string[]): [string, (typeof SCENARIOS)[string]][] {
  const unknown = names.filter((name) => !(name in SCENARIOS));
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  return Object.entries(SCENARIOS).filter(([name]) => names.length === 0 || names.includes(name));
}

/** Workers and clients name themselves pid@host; the committed files should not. */
function anonymousIdentity(key: string, value: unknown): unknown {
  return key === 'identity' ? 'history-recorder' : value;
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  useLocalEndpoints();
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set (nor is an `npm start` running to take it from)');
  await migrateDatabase(url);
  const database = connectDatabase(url, { max: 4 });
  const env = await createTimeSkippingEnv();
  const logger = createLogger({ LOG_LEVEL: 'warn', NODE_ENV: 'test' });
  const taskQueue = uniqueTaskQueue('billing-record');
  const [worker] = await createWorkers({
    connection: env.nativeConnection,
    taskQueues: [taskQueue],
    workflowBundle: await bundleWorkflows(),
    activities: activitiesFromConfig({ MAIL_FROM: 'billing@example.test' }, { db: database.db, logger }),
  });
  try {
    await mkdir(HISTORIES_DIR, { recursive: true });
    await worker.runUntil(async () => {
      for (const [name, scenario] of chosenScenarios(process.argv.slice(2))) {
        const { subscriptionId, runIds } = await scenario({ env, db: database.db, taskQueue });
        for (const [index, runId] of runIds.entries()) {
          const history = await env.client.workflow.getHandle(`subscription-${subscriptionId}`, runId).fetchHistory();
          const file = path.join(HISTORIES_DIR, `${name}-run${index + 1}.json`);
          // protobufjs' JSON form of the History message; the replay test reads it back with
          // History.fromObject. (historyToJSON from @temporalio/common refuses these objects: with the
          // installed packages it holds a second copy of protobufjs.)
          await writeFile(file, `${JSON.stringify(history, anonymousIdentity, 1)}\n`);
          console.log(`recorded ${path.relative(process.cwd(), file)} (${history.events?.length} events)`);
        }
      }
    });
  } finally {
    await env.teardown();
    await database.close();
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
