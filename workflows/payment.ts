import { condition, defineSignal, defineUpdate, log, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { NotificationActivities } from '../activities/notification';
import type { PaymentActivities } from '../activities/payment';
import { formatMoney } from '../domain/money';
import {
  chargeIdempotencyKey,
  classifyDecline,
  PAYMENT_TIMEOUT_FAILURE_CODE,
  type ChargeResult,
  type PaymentSettlement,
} from '../domain/payment';
import { durationToMilliseconds } from '../domain/period';

/** Sent by the payment webhook to whichever workflow owns a pending charge. */
export const paymentSettledSignal = defineSignal<[PaymentSettlement]>('paymentSettled');

/** Answers once the gateway has answered the charge (succeeded, failed or pending). */
export const chargeAttemptedUpdate = defineUpdate<ChargeResult>('chargeAttempted');

export interface OneTimePaymentInput {
  /** The `payments` row id; the workflow id is `payment-<paymentId>`. */
  paymentId: string;
  userId: string;
  amount: number;
  currency: string;
  paymentMethod: string;
  description: string;
  /** ISO-8601 duration a pending charge may wait for its webhook before it counts as failed. */
  pendingTimeout: string;
}

const { chargePayment, settlePayment } = proxyActivities<PaymentActivities>({
  // Above the gateway's own request timeout, so a slow gateway fails the request, not the attempt.
  startToCloseTimeout: '1 minute',
  // Unlimited attempts: every retry carries the same idempotency key, so it cannot charge twice.
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: ['GatewayRequestRejectedError'],
  },
});

const { notify } = proxyActivities<NotificationActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes', nonRetryableErrorTypes: ['UserNotFound'] },
});

/**
 * One charge outside any subscription: charged once, a pending charge settled by the payment
 * webhook (or failed after `pendingTimeout`), the customer notified. Returns the final result.
 */
export async function oneTimePaymentWorkflow(input: OneTimePaymentInput): Promise<ChargeResult> {
  const { workflowId } = workflowInfo();
  let charged: ChargeResult | undefined;
  let settlement: PaymentSettlement | undefined;

  // Registered before the charge: Stripe's webhook can arrive before the charge activity returns.
  setHandler(paymentSettledSignal, (incoming) => {
    if (incoming.paymentId === input.paymentId && settlement === undefined) settlement = incoming;
  });
  setHandler(chargeAttemptedUpdate, async () => {
    await condition(() => charged !== undefined);
    return charged!;
  });

  charged = await chargePayment({
    paymentId: input.paymentId,
    kind: 'one_time',
    userId: input.userId,
    amount: input.amount,
    currency: input.currency,
    paymentMethod: input.paymentMethod,
    idempotencyKey: chargeIdempotencyKey(workflowId, 1, 1),
    cycle: 1,
    attempt: 1,
    description: input.description,
  });

  const result = charged.status === 'pending' ? await awaitSettlement(charged) : charged;
  await notify(paymentNotification(input, result, workflowId));
  return result;

  async function awaitSettlement(pending: ChargeResult): Promise<ChargeResult> {
    const settledInTime = await condition(() => settlement !== undefined, durationToMilliseconds(input.pendingTimeout));
    const final: PaymentSettlement = settledInTime
      ? settlement!
      : {
          paymentId: pending.paymentId,
          gatewayPaymentId: pending.gatewayPaymentId!,
          status: 'failed',
          failureCode: PAYMENT_TIMEOUT_FAILURE_CODE,
        };
    if (!settledInTime) log.warn('pending payment timed out', { paymentId: pending.paymentId });
    await settlePayment(final);
    return {
      ...pending,
      status: final.status,
      failureCode: final.status === 'failed' ? final.failureCode : null,
      decline: final.status === 'failed' ? classifyDecline(final.failureCode) : null,
    };
  }
}

function paymentNotification(input: OneTimePaymentInput, result: ChargeResult, workflowId: string) {
  const amount = formatMoney(input.amount, input.currency);
  const succeeded = result.status === 'succeeded';
  return {
    userId: input.userId,
    kind: succeeded ? ('payment_succeeded' as const) : ('payment_failed' as const),
    subject: succeeded ? `Payment of ${amount} received` : `Payment of ${amount} failed`,
    body: succeeded
      ? `We received your payment of ${amount} for "${input.description}".`
      : `Your payment of ${amount} for "${input.description}" did not go through (${result.failureCode}).`,
    dedupeKey: `${workflowId}/notify/${result.status}`,
  };
}
