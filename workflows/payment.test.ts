import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { eq, like } from 'drizzle-orm';
import { activitiesFromConfig } from '../activities';
import { SandboxGateway } from '../activities/gateway';
import { connectDatabase, migrateDatabase, type DatabaseHandle } from '../db/client';
import { notifications, payments } from '../db/schema';
import { oneTimePaymentWorkflowId, orphanedPaymentRefundWorkflowId, PAYMENT_TIMEOUT_FAILURE_CODE } from '../domain/payment';
import { createLogger } from '../platform/logger';
import { countingGateway, insertTestUser } from '../test/support/payment-fixtures';
import { createTimeSkippingEnv } from '../test/support/temporal';
import { bundleWorkflows } from '../platform/worker';
import {
  chargeAttemptedUpdate,
  oneTimePaymentWorkflow,
  paymentSettledSignal,
  refundOrphanedPaymentWorkflow,
  type OneTimePaymentInput,
} from './payment';

const logger = createLogger({ LOG_LEVEL: 'silent', NODE_ENV: 'test' });
const taskQueue = `payments-test-${randomUUID()}`;
let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
// Opened with the module: the sandbox gateway below keeps its records in it (connecting is lazy).
const handle: DatabaseHandle = connectDatabase(process.env.DATABASE_URL!);
let userId: string;
/** Gateway payment ids the customer authenticates just before the timeout's cancel reaches the gateway. */
const authenticatedLate = new Set<string>();
const { gateway, calls } = countingGateway(new SandboxGateway(handle.db), {
  cancelAnswer: ({ gatewayPaymentId }) => (authenticatedLate.has(gatewayPaymentId) ? { status: 'succeeded' } : undefined),
});

before(async () => {
  const url = process.env.DATABASE_URL;
  assert.ok(url, 'DATABASE_URL must be set');
  await migrateDatabase(url);
  userId = (await insertTestUser(handle.db)).id;
  env = await createTimeSkippingEnv();
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await bundleWorkflows(),
    activities: activitiesFromConfig({ PAYMENT_GATEWAY: 'sandbox', MAIL_FROM: 'billing@example.test' }, { db: handle.db, gateway, logger }),
  });
  running = worker.run();
});

after(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
  await handle.close();
});

function paymentInput(paymentMethod: string): OneTimePaymentInput {
  return {
    paymentId: randomUUID(),
    userId,
    amount: 4200,
    currency: 'usd',
    paymentMethod,
    description: 'Workshop ticket',
    pendingTimeout: 'P1D',
    paymentsTaskQueue: taskQueue,
  };
}

function start(input: OneTimePaymentInput) {
  return env.client.workflow.start(oneTimePaymentWorkflow, {
    taskQueue,
    workflowId: oneTimePaymentWorkflowId(input.paymentId),
    args: [input],
  });
}

async function paymentRow(id: string) {
  const [row] = await handle.db.select().from(payments).where(eq(payments.id, id));
  return row;
}

/** The kinds of notification the payment's workflow recorded. */
async function notificationKinds(paymentId: string): Promise<string[]> {
  const rows = await handle.db
    .select({ kind: notifications.kind })
    .from(notifications)
    .where(like(notifications.dedupeKey, `${oneTimePaymentWorkflowId(paymentId)}/%`));
  return rows.map((r) => r.kind);
}

describe('oneTimePaymentWorkflow', () => {
  test('a good card is charged once and the customer told', async () => {
    const input = paymentInput('pm_card_visa');
    const wf = await start(input);
    const attempted = await wf.executeUpdate(chargeAttemptedUpdate);
    const result = await wf.result();
    assert.equal(attempted.status, 'succeeded');
    assert.deepEqual(result, attempted);
    assert.equal(result.paymentId, input.paymentId);
    const row = await paymentRow(input.paymentId);
    assert.equal(row.status, 'succeeded');
    assert.equal(row.idempotencyKey, `${oneTimePaymentWorkflowId(input.paymentId)}/cycle-1/attempt-1`);
    assert.deepEqual(await notificationKinds(input.paymentId), ['payment_succeeded']);
  });

  test('a declined card fails with its code and the customer is told', async () => {
    const input = paymentInput('pm_card_chargeDeclinedInsufficientFunds');
    const result = await (await start(input)).result();
    assert.deepEqual(
      { status: result.status, failureCode: result.failureCode, decline: result.decline },
      { status: 'failed', failureCode: 'insufficient_funds', decline: 'soft' },
    );
    assert.deepEqual(await notificationKinds(input.paymentId), ['payment_failed']);
  });

  test('a pending charge is settled by the webhook signal', async () => {
    const input = paymentInput('pm_card_authenticationRequired');
    const wf = await start(input);
    const attempted = await wf.executeUpdate(chargeAttemptedUpdate);
    assert.equal(attempted.status, 'pending');
    assert.equal((await paymentRow(input.paymentId)).status, 'pending');

    await wf.signal(paymentSettledSignal, {
      paymentId: input.paymentId,
      gatewayPaymentId: attempted.gatewayPaymentId!,
      status: 'succeeded',
      failureCode: null,
    });
    const result = await wf.result();
    assert.equal(result.status, 'succeeded');
    assert.equal((await paymentRow(input.paymentId)).status, 'succeeded');
    assert.deepEqual(await notificationKinds(input.paymentId), ['payment_succeeded']);
  });

  test('a pending charge with no webhook is canceled at the gateway and fails when its timeout passes', async () => {
    const input = paymentInput('pm_card_authenticationRequired');
    const cancelsBefore = calls.cancel;
    const result = await (await start(input)).result();
    assert.deepEqual({ status: result.status, failureCode: result.failureCode }, { status: 'failed', failureCode: PAYMENT_TIMEOUT_FAILURE_CODE });
    assert.equal(calls.cancel - cancelsBefore, 1);
    const row = await paymentRow(input.paymentId);
    assert.equal(row.status, 'failed');
    assert.equal(row.failureCode, PAYMENT_TIMEOUT_FAILURE_CODE);
    assert.deepEqual(await notificationKinds(input.paymentId), ['payment_failed']);
  });

  test('a pending charge that succeeded before the timeout could cancel it is a success', async () => {
    const input = paymentInput('pm_card_authenticationRequired');
    const wf = await start(input);
    const attempted = await wf.executeUpdate(chargeAttemptedUpdate);
    authenticatedLate.add(attempted.gatewayPaymentId!);
    const result = await wf.result();
    assert.deepEqual([result.status, result.failureCode, result.decline], ['succeeded', null, null]);
    assert.equal((await paymentRow(input.paymentId)).status, 'succeeded');
    assert.deepEqual(await notificationKinds(input.paymentId), ['payment_succeeded']);
  });
});

describe('refundOrphanedPaymentWorkflow', () => {
  test('refunds a charge that succeeded after it had been counted as failed, and tells the customer', async () => {
    const input = paymentInput('pm_card_authenticationRequired');
    const failed = await (await start(input)).result();
    assert.equal(failed.status, 'failed');

    const orphan = { paymentId: input.paymentId, gatewayPaymentId: failed.gatewayPaymentId!, paymentsTaskQueue: taskQueue };
    const refund = await env.client.workflow.execute(refundOrphanedPaymentWorkflow, {
      taskQueue,
      workflowId: orphanedPaymentRefundWorkflowId(input.paymentId),
      args: [orphan],
    });
    assert.equal(refund?.status, 'succeeded');
    const row = await paymentRow(input.paymentId);
    assert.deepEqual([row.status, row.refundedAmount], ['refunded', input.amount]);
    const [refundRow] = await handle.db.select().from(payments).where(eq(payments.refundOf, input.paymentId));
    assert.deepEqual([refundRow.kind, refundRow.amount, refundRow.status], ['refund', input.amount, 'succeeded']);
    const told = await handle.db
      .select({ kind: notifications.kind })
      .from(notifications)
      .where(like(notifications.dedupeKey, `${orphanedPaymentRefundWorkflowId(input.paymentId)}/%`));
    assert.deepEqual(told, [{ kind: 'payment_refunded' }]);
  });
});
