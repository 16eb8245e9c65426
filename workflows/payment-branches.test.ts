/**
 * The branches of the one-time payment and orphan-refund workflows with stubbed activities on a
 * time-skipping server: fast, and asserted only through the workflows' names, signals, updates,
 * queries and results, plus the activity calls they make. workflows/payment.test.ts covers the
 * same workflows with the real activities.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { LatePaymentSuccess } from '../activities/payment';
import type { NotificationInput } from '../domain/notification';
import {
  oneTimePaymentWorkflowId,
  orphanedPaymentRefundWorkflowId,
  PAYMENT_TIMEOUT_FAILURE_CODE,
  type ChargeInput,
  type ChargeResult,
  type OrphanedPayment,
  type PaymentSettlement,
  type RefundInput,
  type RefundResult,
} from '../domain/payment';
import { ActivityCalls, gatewayTimeout, runStubbedWorker, stubActivities, stubChargeResult } from '../test/support/stubbed-activities';
import { uniqueTaskQueue } from '../test/support/temporal';
import {
  chargeAttemptedUpdate,
  oneTimePaymentStateQuery,
  oneTimePaymentWorkflow,
  orphanedPaymentRefundStateQuery,
  paymentSettledSignal,
  refundOrphanedPaymentWorkflow,
} from './payment';

/** How the stubbed gateway answers one payment: its charge attempts in order, its cancel, its refund. */
interface Script {
  charges: (ChargeResult['status'] | 'timeout')[];
  failureCode?: string;
  cancel?: ChargeResult['status'];
  refundable?: number;
  refund?: RefundResult['status'];
}

const HOUR = 60 * 60 * 1000;
const taskQueue = uniqueTaskQueue('payment-branches');
const calls = new ActivityCalls();
const scripts = new Map<string, Script>();

const chargeResult = stubChargeResult;

const activities = stubActivities(calls, {
  chargePayment: (input: ChargeInput): ChargeResult => {
    const script = scripts.get(input.paymentId!)!;
    const answer = script.charges.shift() ?? 'succeeded';
    if (answer === 'timeout') throw gatewayTimeout();
    return chargeResult(input.paymentId!, answer, script.failureCode);
  },
  settlePayment: (_: PaymentSettlement): void => undefined,
  cancelPendingPayment: ({ paymentId }: { paymentId: string }): ChargeResult => {
    const status = scripts.get(paymentId)!.cancel ?? 'failed';
    return chargeResult(paymentId, status, PAYMENT_TIMEOUT_FAILURE_CODE);
  },
  recordLatePaymentSuccess: ({ paymentId }: OrphanedPayment): LatePaymentSuccess => ({
    userId: 'user-1',
    amount: 4200,
    currency: 'usd',
    refundable: scripts.get(paymentId)!.refundable ?? 4200,
    description: 'Workshop ticket',
    subscriptionId: null,
    bookingId: null,
  }),
  refundPayment: ({ paymentId }: RefundInput): RefundResult => ({
    refundPaymentId: `re_${paymentId}`,
    status: scripts.get(paymentId)!.refund ?? 'succeeded',
  }),
  notify: (_: NotificationInput) => ({ notificationId: randomUUID(), sent: true }),
});

const stubbed = runStubbedWorker(taskQueue, activities);

function startPayment(script: Script) {
  const paymentId = randomUUID();
  scripts.set(paymentId, script);
  return stubbed.env.client.workflow.start(oneTimePaymentWorkflow, {
    taskQueue,
    workflowId: oneTimePaymentWorkflowId(paymentId),
    args: [
      {
        paymentId,
        userId: 'user-1',
        amount: 4200,
        currency: 'usd',
        paymentMethod: 'pm_test',
        description: 'Workshop ticket',
        pendingTimeout: 'PT1H',
        paymentsTaskQueue: taskQueue,
      },
    ],
  });
}

const notices = (workflowId: string) => calls.inputs<NotificationInput>(workflowId, 'notify').map((n) => n.kind);

describe('oneTimePaymentWorkflow branches (stubbed activities)', () => {
  test('a declined charge is the result, with its code; the customer is told and nothing is settled or canceled', async () => {
    const wf = await startPayment({ charges: ['failed'], failureCode: 'card_declined' });
    const result = await wf.result();
    assert.deepEqual([result.status, result.failureCode], ['failed', 'card_declined']);
    assert.deepEqual(calls.names(wf.workflowId), ['chargePayment', 'notify']);
    assert.deepEqual(notices(wf.workflowId), ['payment_failed']);
    assert.equal((await wf.query(oneTimePaymentStateQuery)).phase, 'failed');
  });

  test('a gateway timeout is retried with the same idempotency key until the gateway answers', async () => {
    const wf = await startPayment({ charges: ['timeout', 'timeout', 'succeeded'] });
    const result = await wf.result();
    assert.equal(result.status, 'succeeded');
    const keys = calls.inputs<ChargeInput>(wf.workflowId, 'chargePayment').map((c) => c.idempotencyKey);
    assert.equal(keys.length, 3);
    assert.equal(new Set(keys).size, 1, 'every attempt carries the same key, so the customer is charged once');
    assert.deepEqual(notices(wf.workflowId), ['payment_succeeded']);
  });

  test('a pending charge waits for its own settlement signal, then records it and succeeds', async () => {
    const wf = await startPayment({ charges: ['pending'] });
    const attempted = await wf.executeUpdate(chargeAttemptedUpdate);
    assert.equal(attempted.status, 'pending');
    assert.equal((await wf.query(oneTimePaymentStateQuery)).phase, 'awaiting_confirmation');

    const settlement: PaymentSettlement = {
      paymentId: attempted.paymentId,
      gatewayPaymentId: attempted.gatewayPaymentId!,
      status: 'succeeded',
      failureCode: null,
    };
    await wf.signal(paymentSettledSignal, { ...settlement, paymentId: randomUUID(), status: 'failed', failureCode: 'not_mine' });
    await wf.signal(paymentSettledSignal, settlement);
    const result = await wf.result();
    assert.deepEqual([result.status, result.failureCode], ['succeeded', null]);
    assert.deepEqual(calls.names(wf.workflowId), ['chargePayment', 'settlePayment', 'notify']);
    assert.deepEqual(calls.inputs(wf.workflowId, 'settlePayment'), [settlement]);
    assert.deepEqual(notices(wf.workflowId), ['payment_succeeded']);
  });

  test('a pending charge with no settlement is canceled at the gateway when its timeout passes and fails', async () => {
    const wf = await startPayment({ charges: ['pending'], cancel: 'failed' });
    const startedAt = await stubbed.env.currentTimeMs();
    const result = await wf.result();
    assert.ok((await stubbed.env.currentTimeMs()) - startedAt >= HOUR, 'canceled on the workflow clock, at the pending timeout');
    assert.deepEqual([result.status, result.failureCode], ['failed', PAYMENT_TIMEOUT_FAILURE_CODE]);
    assert.deepEqual(calls.names(wf.workflowId), ['chargePayment', 'cancelPendingPayment', 'notify']);
    assert.deepEqual(notices(wf.workflowId), ['payment_failed']);
  });

  test('a pending charge the customer completed just before the cancel is a success', async () => {
    const wf = await startPayment({ charges: ['pending'], cancel: 'succeeded' });
    const result = await wf.result();
    assert.equal(result.status, 'succeeded');
    assert.deepEqual(calls.names(wf.workflowId), ['chargePayment', 'cancelPendingPayment', 'notify']);
    assert.deepEqual(notices(wf.workflowId), ['payment_succeeded']);
  });
});

describe('refundOrphanedPaymentWorkflow branches (stubbed activities)', () => {
  function startRefund(script: Omit<Script, 'charges'>) {
    const paymentId = randomUUID();
    scripts.set(paymentId, { charges: [], ...script });
    return stubbed.env.client.workflow.start(refundOrphanedPaymentWorkflow, {
      taskQueue,
      workflowId: orphanedPaymentRefundWorkflowId(paymentId),
      args: [{ paymentId, gatewayPaymentId: `pi_${paymentId}`, paymentsTaskQueue: taskQueue }],
    });
  }

  test('refunds what is left of the charge under a key of its own and tells the customer', async () => {
    const wf = await startRefund({ refundable: 3000 });
    const refund = await wf.result();
    assert.equal(refund?.status, 'succeeded');
    assert.deepEqual(calls.names(wf.workflowId), ['recordLatePaymentSuccess', 'refundPayment', 'notify']);
    const [request] = calls.inputs<RefundInput>(wf.workflowId, 'refundPayment');
    assert.deepEqual([request.amount, request.idempotencyKey], [3000, `${wf.workflowId}/refund`]);
    assert.deepEqual(notices(wf.workflowId), ['payment_refunded']);
    assert.deepEqual((await wf.query(orphanedPaymentRefundStateQuery)).refundable, 3000);
  });

  test('a charge already refunded in full is left alone', async () => {
    const wf = await startRefund({ refundable: 0 });
    assert.equal(await wf.result(), null);
    assert.deepEqual(calls.names(wf.workflowId), ['recordLatePaymentSuccess']);
  });

  test('a refund the gateway refuses fails the workflow, for a person to see, and the customer is not told', async () => {
    const wf = await startRefund({ refund: 'failed' });
    await assert.rejects(wf.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(String(err.cause?.message), /refuse/);
      return true;
    });
    assert.deepEqual(calls.names(wf.workflowId), ['recordLatePaymentSuccess', 'refundPayment']);
  });
});
