import {
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { NotificationActivities } from '../activities/notification';
import type { PaymentActivities } from '../activities/payment';
import { formatMoney } from '../domain/money';
import {
  chargeIdempotencyKey,
  classifyDecline,
  orphanedPaymentRefundWorkflowId,
  PAYMENT_TIMEOUT_FAILURE_CODE,
  type ChargeResult,
  type OrphanedPayment,
  type PaymentSettlement,
  type RefundResult,
} from '../domain/payment';
import { durationToMilliseconds } from '../domain/period';
import { oneTimePaymentDetails, type OneTimePaymentPhase } from '../domain/workflow-descriptions';

/** Sent by the payment webhook to whichever workflow owns a pending charge. */
export const paymentSettledSignal = defineSignal<[PaymentSettlement]>('paymentSettled');

/** Answers once the gateway has answered the charge (succeeded, failed or pending). */
export const chargeAttemptedUpdate = defineUpdate<ChargeResult>('chargeAttempted');

/** What a person needs to know about a one-time payment right now. */
export interface OneTimePaymentState {
  paymentId: string;
  phase: OneTimePaymentPhase;
  amount: number;
  currency: string;
  description: string;
  gatewayPaymentId: string | null;
  failureCode: string | null;
}

export const oneTimePaymentStateQuery = defineQuery<OneTimePaymentState>('state');

/** What a person needs to know about the refund of an orphaned payment right now. */
export interface OrphanedPaymentRefundState {
  paymentId: string;
  /** What is left to refund, once the late success is recorded. */
  refundable: number | null;
  refund: RefundResult | null;
}

export const orphanedPaymentRefundStateQuery = defineQuery<OrphanedPaymentRefundState>('state');

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

/**
 * Workflows that started before a pending charge was canceled at its timeout keep recording it
 * failed without asking the gateway, as their histories say they did.
 */
export const CANCEL_PENDING_AT_TIMEOUT_PATCH = 'cancel-pending-at-timeout';

/**
 * Workflows that started before a cancel-now withdrew the charge it interrupted leave that charge
 * pending at the gateway, as their histories say they did.
 */
export const WITHDRAW_PENDING_ON_CANCEL_PATCH = 'withdraw-pending-on-cancel';

/**
 * For `cancelPendingPayment`. Every fault is retried, without limit: a charge the gateway can
 * neither cancel nor settle yet (still processing) must not be counted as failed, and one it
 * refuses to cancel needs a person, who sees the retrying activity in the Web UI.
 */
export const CANCEL_PENDING_PAYMENT_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 minutes' },
};

const { cancelPendingPayment } = proxyActivities<PaymentActivities>(CANCEL_PENDING_PAYMENT_OPTIONS);

const { chargePayment, settlePayment, refundPayment, recordLatePaymentSuccess } = proxyActivities<PaymentActivities>({
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
 * webhook (or, after `pendingTimeout`, canceled at the gateway unless it succeeded meanwhile),
 * the customer notified. Returns the final result.
 */
export async function oneTimePaymentWorkflow(input: OneTimePaymentInput): Promise<ChargeResult> {
  const { workflowId } = workflowInfo();
  let charged: ChargeResult | undefined;
  let settlement: PaymentSettlement | undefined;
  let result: ChargeResult | undefined;
  const state = (): OneTimePaymentState => {
    const latest = result ?? charged;
    const phase: OneTimePaymentPhase = !latest ? 'charging' : latest.status === 'pending' ? 'awaiting_confirmation' : latest.status;
    const { paymentId, amount, currency, description } = input;
    return { paymentId, phase, amount, currency, description, gatewayPaymentId: latest?.gatewayPaymentId ?? null, failureCode: latest?.failureCode ?? null };
  };
  setHandler(oneTimePaymentStateQuery, state);

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
  setCurrentDetails(oneTimePaymentDetails(state()));

  result = charged.status === 'pending' ? await awaitSettlement(charged) : charged;
  setCurrentDetails(oneTimePaymentDetails(state()));
  await notify(paymentNotification(input, result, workflowId));
  return result;

  async function awaitSettlement(pending: ChargeResult): Promise<ChargeResult> {
    const settledInTime = await condition(() => settlement !== undefined, durationToMilliseconds(input.pendingTimeout));
    if (!settledInTime && patched(CANCEL_PENDING_AT_TIMEOUT_PATCH)) {
      // Canceled so a late authentication cannot take the money; the gateway's answer decides.
      log.warn('pending payment timed out; canceling it', { paymentId: pending.paymentId });
      return cancelPendingPayment({ paymentId: pending.paymentId });
    }
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

/**
 * A charge that succeeded at the gateway after it had been counted as failed (its pending
 * timeout won), or after the workflow waiting for it had ended: the customer got nothing for it,
 * so it is recorded, refunded in full and the customer told. Started by the payment webhook as
 * `refund-<paymentId>`; the refund's idempotency key makes a second start refund nothing more.
 */
export async function refundOrphanedPaymentWorkflow(orphan: OrphanedPayment): Promise<RefundResult | null> {
  const state: OrphanedPaymentRefundState = { paymentId: orphan.paymentId, refundable: null, refund: null };
  setHandler(orphanedPaymentRefundStateQuery, () => state);
  return refundOrphanedCharge(orphan, state);
}

/**
 * Refunds a charge that went through for something the customer no longer gets, and tells them.
 * Keyed by the charge (`refund-<paymentId>`), not by the calling workflow, so the webhook's
 * refund workflow and a subscription canceled as its charge went through refund it once between
 * them. A refund the gateway refuses fails the calling workflow, which puts the charge in front
 * of a person (Web UI, failed-workflow alerts).
 */
export async function refundOrphanedCharge(
  orphan: OrphanedPayment,
  progress: OrphanedPaymentRefundState = { paymentId: orphan.paymentId, refundable: null, refund: null },
): Promise<RefundResult | null> {
  const key = orphanedPaymentRefundWorkflowId(orphan.paymentId);
  const charge = await recordLatePaymentSuccess(orphan);
  progress.refundable = charge.refundable;
  if (charge.refundable === 0) return null;
  const refund = await refundPayment({
    paymentId: orphan.paymentId,
    amount: charge.refundable,
    idempotencyKey: `${key}/refund`,
    reason: 'Payment completed after it had been given up',
  });
  progress.refund = refund;
  if (refund.status === 'failed') {
    throw ApplicationFailure.nonRetryable(`the gateway refused to refund payment ${orphan.paymentId}`, 'RefundFailed');
  }
  const amount = formatMoney(charge.refundable, charge.currency);
  const what = charge.description ? ` for "${charge.description}"` : '';
  await notify({
    userId: charge.userId,
    kind: 'payment_refunded',
    subject: `Refund of ${amount}`,
    body: `Your payment of ${amount}${what} went through after we had stopped waiting for it, so we are refunding it.`,
    dedupeKey: `${key}/notify/refunded`,
    ...(charge.subscriptionId ? { subscriptionId: charge.subscriptionId } : {}),
    ...(charge.bookingId ? { bookingId: charge.bookingId } : {}),
  });
  return refund;
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
