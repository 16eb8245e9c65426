/** Staff refund histories: a one-time payment in full, a subscription payment in part (its workflow told), a refusal. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { and, eq } from 'drizzle-orm';
import { cancelSubscription, startSubscription, subscriptionHandle } from '../../api/subscription-client';
import { payments } from '../../db/schema';
import { oneTimePaymentWorkflowId, staffRefundWorkflowId } from '../../domain/payment';
import { insertTestUser } from '../../test/support/payment-fixtures';
import { insertTestPlan } from '../../test/support/subscription-fixtures';
import { oneTimePaymentWorkflow } from '../../workflows/payment';
import { paymentRefundWorkflow, type PaymentRefundInput } from '../../workflows/payment-refund';
import type { RecordedRun, Recorder, Scenario } from './recorder';

export const PAYMENT_REFUND_SCENARIOS: Record<string, Scenario> = {
  // A one-time payment refunded in full: refunded, the customer told; no workflow to tell.
  'paymentrefund-one-time-full': async (r) => {
    const charge = await oneTimeCharge(r, 4200);
    const { result, run } = await refund(r, 'paymentrefund-one-time-full', { ...charge, amount: 4200 });
    assert.equal(result.refundedTotal, 4200);
    return [run];
  },

  // Part of a subscription's first charge: refunded, the customer told, the subscription's
  // workflow signalled the refunded total (it has no handler for it yet); then canceled.
  'paymentrefund-subscription-partial': async (r) => {
    const user = await insertTestUser(r.db);
    const plan = await insertTestPlan(r.db);
    const subscriptionId = randomUUID();
    await startSubscription(r.env.client, r.taskQueue, {
      subscriptionId,
      userId: user.id,
      plan,
      paymentMethod: 'pm_card_visa',
      pendingPaymentTimeout: 'P1D',
      paymentsTaskQueue: r.taskQueue,
    });
    const [charge] = await r.db
      .select()
      .from(payments)
      .where(and(eq(payments.subscriptionId, subscriptionId), eq(payments.kind, 'subscription')));
    const { result, run } = await refund(r, 'paymentrefund-subscription-partial', {
      paymentId: charge.id,
      userId: user.id,
      subscriptionId,
      amount: 100,
      currency: charge.currency,
      description: charge.description,
    });
    assert.equal(result.refundedTotal, 100);
    await cancelSubscription(r.env.client, subscriptionId, false);
    await subscriptionHandle(r.env.client, subscriptionId).result();
    return [run];
  },

  // More than the charge: the refund activity refuses, the workflow fails with its type.
  'paymentrefund-refused': async (r) => {
    const charge = await oneTimeCharge(r, 1000);
    const workflowId = staffRefundWorkflowId(charge.paymentId, randomUUID());
    const handle = await r.env.client.workflow.start(paymentRefundWorkflow, {
      taskQueue: r.taskQueue,
      workflowId,
      args: [refundInput(r, { ...charge, amount: 1001 })],
    });
    await assert.rejects(
      handle.result(),
      (error: unknown) =>
        error instanceof WorkflowFailedError && error.cause instanceof ApplicationFailure && error.cause.type === 'RefundExceedsPayment',
    );
    return [{ file: 'paymentrefund-refused', workflowId, runId: handle.firstExecutionRunId }];
  },
};

type ChargeToRefund = Omit<PaymentRefundInput, 'reason' | 'paymentsTaskQueue'>;

/** A one-time payment that succeeded, charged by its workflow. */
async function oneTimeCharge(r: Recorder, amount: number): Promise<Omit<ChargeToRefund, 'amount'>> {
  const user = await insertTestUser(r.db);
  const paymentId = randomUUID();
  const description = 'Workshop ticket';
  const charged = await r.env.client.workflow.execute(oneTimePaymentWorkflow, {
    taskQueue: r.taskQueue,
    workflowId: oneTimePaymentWorkflowId(paymentId),
    args: [
      {
        paymentId,
        userId: user.id,
        amount,
        currency: 'usd',
        paymentMethod: 'pm_card_visa',
        description,
        pendingTimeout: 'PT1H',
        paymentsTaskQueue: r.taskQueue,
      },
    ],
  });
  assert.equal(charged.status, 'succeeded');
  return { paymentId, userId: user.id, subscriptionId: null, currency: 'usd', description };
}

function refundInput(r: Recorder, charge: ChargeToRefund): PaymentRefundInput {
  return { ...charge, reason: 'Recorded staff refund', paymentsTaskQueue: r.taskQueue };
}

async function refund(r: Recorder, file: string, charge: ChargeToRefund) {
  const workflowId = staffRefundWorkflowId(charge.paymentId, randomUUID());
  const handle = await r.env.client.workflow.start(paymentRefundWorkflow, { taskQueue: r.taskQueue, workflowId, args: [refundInput(r, charge)] });
  const result = await handle.result();
  assert.equal(result.status, 'succeeded');
  const run: RecordedRun = { file, workflowId, runId: handle.firstExecutionRunId };
  return { result, run };
}
