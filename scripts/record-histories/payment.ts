/** One-time payment and orphaned-payment refund histories. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { oneTimePaymentWorkflowId, orphanedPaymentRefundWorkflowId, PAYMENT_TIMEOUT_FAILURE_CODE } from '../../domain/payment';
import { insertTestUser } from '../../test/support/payment-fixtures';
import {
  chargeAttemptedUpdate,
  oneTimePaymentStateQuery,
  oneTimePaymentWorkflow,
  paymentSettledSignal,
  refundOrphanedPaymentWorkflow,
} from '../../workflows/payment';
import type { RecordedRun, Recorder, Scenario } from './recorder';

export const PAYMENT_SCENARIOS: Record<string, Scenario> = {
  // A good card: charged, the customer told.
  'payment-succeeded': async (r) => {
    const { handle, file } = await pay(r, 'pm_card_visa', 'payment-succeeded');
    await handle.executeUpdate(chargeAttemptedUpdate);
    assert.equal((await handle.result()).status, 'succeeded');
    return [file];
  },

  // A declined card: the failure recorded, the customer told.
  'payment-declined': async (r) => {
    const { handle, file } = await pay(r, 'pm_card_chargeDeclinedInsufficientFunds', 'payment-declined');
    assert.equal((await handle.result()).status, 'failed');
    return [file];
  },

  // A charge awaiting authentication, settled by the payment webhook's signal (queried meanwhile).
  'payment-pending-settled': async (r) => {
    const { handle, file, paymentId } = await pay(r, 'pm_card_authenticationRequired', 'payment-pending-settled');
    const attempted = await handle.executeUpdate(chargeAttemptedUpdate);
    await handle.query(oneTimePaymentStateQuery);
    assert.equal(attempted.status, 'pending');
    await handle.signal(paymentSettledSignal, { paymentId, gatewayPaymentId: attempted.gatewayPaymentId!, status: 'succeeded', failureCode: null });
    assert.equal((await handle.result()).status, 'succeeded');
    return [file];
  },

  // A charge nobody authenticates: canceled at the gateway at its timeout. The charge then
  // succeeds late after all, so the webhook's refund workflow refunds it; started again, it
  // finds nothing left to refund.
  'payment-pending-timeout-then-refunded': async (r) => {
    const { handle, file, paymentId } = await pay(r, 'pm_card_authenticationRequired', 'payment-pending-timeout');
    const failed = await handle.result();
    assert.equal(failed.failureCode, PAYMENT_TIMEOUT_FAILURE_CODE);
    const refunds: RecordedRun[] = [];
    for (const name of ['refund-orphaned-payment', 'refund-orphaned-payment-again']) {
      const refund = await r.env.client.workflow.start(refundOrphanedPaymentWorkflow, {
        taskQueue: r.taskQueue,
        workflowId: orphanedPaymentRefundWorkflowId(paymentId),
        args: [{ paymentId, gatewayPaymentId: failed.gatewayPaymentId!, paymentsTaskQueue: r.taskQueue }],
      });
      const refunded = await refund.result();
      assert.equal(refunded?.status ?? 'nothing left', refunds.length === 0 ? 'succeeded' : 'nothing left');
      refunds.push({ file: name, workflowId: refund.workflowId, runId: refund.firstExecutionRunId });
    }
    return [file, ...refunds];
  },
};

async function pay(r: Recorder, paymentMethod: string, name: string) {
  const user = await insertTestUser(r.db);
  const paymentId = randomUUID();
  const handle = await r.env.client.workflow.start(oneTimePaymentWorkflow, {
    taskQueue: r.taskQueue,
    workflowId: oneTimePaymentWorkflowId(paymentId),
    // A short pending timeout keeps the timed-out history small.
    args: [
      {
        paymentId,
        userId: user.id,
        amount: 4200,
        currency: 'usd',
        paymentMethod,
        description: 'Workshop ticket',
        pendingTimeout: 'PT1H',
        paymentsTaskQueue: r.taskQueue,
      },
    ],
  });
  const file: RecordedRun = { file: name, workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
  return { handle, file, paymentId };
}
