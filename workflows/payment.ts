import {
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  patched,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { formatMoney } from '../domain/money';
import { notificationDedupeKey, type NotificationInput } from '../domain/notification';
import {
  chargeIdempotencyKey,
  orphanedPaymentRefundWorkflowId,
  type ChargeResult,
  type ChargeSession,
  type OrphanedPayment,
  type PaymentSettlement,
  type RefundResult,
} from '../domain/payment';
import { durationToMilliseconds } from '../domain/period';
import { oneTimePaymentDetails, type OneTimePaymentPhase } from '../domain/workflow-descriptions';
import { gatewayActivities, recordLatePaymentSuccess, type GatewayActivities } from './activity-options';
import { APPLY_CREDIT_PATCH, chargeOnce, settlePendingCharge } from './charge';
import { notifyQuietly } from './notify';

/** Sent by the payment webhook to whichever workflow owns a pending charge. */
export const paymentSettledSignal = defineSignal<[PaymentSettlement]>('paymentSettled');

/**
 * Sent by the `charge.refunded` webhook to the workflow that owns a charge: the gateway now
 * reports `refundedTotal` refunded of it in all (our refunds and any made in its dashboard), so
 * a later refund gives back only what is left.
 */
export const gatewayRefundRecordedSignal = defineSignal<[{ paymentId: string; refundedTotal: number }]>('gatewayRefundRecorded');

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
  /** A card saved to the user's customer. */
  paymentMethod: string;
  /** The customer is at the app (absent in runs from before: charged off-session). */
  session?: ChargeSession;
  description: string;
  /** ISO-8601 duration a pending charge may wait for its webhook before it counts as failed. */
  pendingTimeout: string;
  /** The task queue of gateway calls; `payments` when absent. */
  paymentsTaskQueue?: string;
}

/**
 * One charge outside any subscription: charged once, a pending charge settled by the payment
 * webhook (or, after `pendingTimeout`, canceled at the gateway unless it succeeded meanwhile),
 * the customer notified. Returns the final result.
 */
export async function oneTimePaymentWorkflow(input: OneTimePaymentInput): Promise<ChargeResult> {
  const { workflowId } = workflowInfo();
  // What the gateway answered first, and the payment's final result: the query reads both.
  const outcome: { charged?: ChargeResult; result?: ChargeResult } = {};
  let settlement: PaymentSettlement | undefined;
  const state = (): OneTimePaymentState => {
    const latest = outcome.result ?? outcome.charged;
    const phase: OneTimePaymentPhase = !latest ? 'charging' : latest.status === 'pending' ? 'awaiting_confirmation' : latest.status;
    const { paymentId, amount, currency, description } = input;
    return {
      paymentId,
      phase,
      amount,
      currency,
      description,
      gatewayPaymentId: latest?.gatewayPaymentId ?? null,
      failureCode: latest?.failureCode ?? null,
    };
  };
  setHandler(oneTimePaymentStateQuery, state);

  // Registered before the charge: Stripe's webhook can arrive before the charge activity returns.
  setHandler(paymentSettledSignal, (incoming) => {
    if (incoming.paymentId === input.paymentId && settlement === undefined) settlement = incoming;
  });
  setHandler(chargeAttemptedUpdate, async () => {
    await condition(() => outcome.charged !== undefined);
    return outcome.charged!;
  });

  const gateway = gatewayActivities(input.paymentsTaskQueue);
  const charged = await chargeOnce(gateway, {
    paymentId: input.paymentId,
    kind: 'one_time',
    userId: input.userId,
    amount: input.amount,
    currency: input.currency,
    paymentMethod: input.paymentMethod,
    ...(input.session ? { session: input.session } : {}),
    idempotencyKey: chargeIdempotencyKey(workflowId, 1, 1),
    cycle: 1,
    attempt: 1,
    description: input.description,
    // The customer's credit balance pays first; runs from before it charge the card for it all.
    applyCredit: patched(APPLY_CREDIT_PATCH),
  });
  outcome.charged = charged;
  setCurrentDetails(oneTimePaymentDetails(state()));

  // Waits at least a millisecond, as runs from before the shared charge module did.
  const waitMs = Math.max(1, durationToMilliseconds(input.pendingTimeout));
  const result = charged.status === 'pending' ? await settlePendingCharge(gateway, charged, { waitMs, settlement: () => settlement }) : charged;
  outcome.result = result;
  setCurrentDetails(oneTimePaymentDetails(state()));
  await notifyQuietly(paymentNotification(input, result, workflowId));
  return result;
}

/**
 * A charge that succeeded at the gateway after it had been counted as failed (its pending
 * timeout won), or after the workflow waiting for it had ended: the customer got nothing for it,
 * so it is recorded, refunded in full and the customer told. Started by the payment webhook as
 * `refund-<paymentId>`; the refund's idempotency key makes a second start refund nothing more.
 */
export async function refundOrphanedPaymentWorkflow(orphan: OrphanedPayment & { paymentsTaskQueue?: string }): Promise<RefundResult | null> {
  const state: OrphanedPaymentRefundState = { paymentId: orphan.paymentId, refundable: null, refund: null };
  setHandler(orphanedPaymentRefundStateQuery, () => state);
  return refundOrphanedCharge(gatewayActivities(orphan.paymentsTaskQueue), orphan, state);
}

/**
 * Refunds a charge that went through for something the customer no longer gets, and tells them.
 * Keyed by the charge (`refund-<paymentId>`), not by the calling workflow, so the webhook's
 * refund workflow and a subscription canceled as its charge went through refund it once between
 * them. A refund the gateway refuses fails the calling workflow, which puts the charge in front
 * of a person (Web UI, failed-workflow alerts).
 */
export async function refundOrphanedCharge(
  gateway: GatewayActivities,
  orphan: OrphanedPayment,
  progress: OrphanedPaymentRefundState = { paymentId: orphan.paymentId, refundable: null, refund: null },
): Promise<RefundResult | null> {
  const key = orphanedPaymentRefundWorkflowId(orphan.paymentId);
  const charge = await recordLatePaymentSuccess(orphan);
  progress.refundable = charge.refundable;
  if (charge.refundable === 0) return null;
  const refund = await gateway.refundPayment({
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
  await notifyQuietly({
    userId: charge.userId,
    kind: 'payment_refunded',
    subject: `Refund of ${amount}`,
    body: `Your payment of ${amount}${what} went through after we had stopped waiting for it, so we are refunding it.`,
    dedupeKey: notificationDedupeKey(key, 'refunded'),
    ...(charge.subscriptionId ? { subscriptionId: charge.subscriptionId } : {}),
    ...(charge.bookingId ? { bookingId: charge.bookingId } : {}),
  });
  return refund;
}

function paymentNotification(input: OneTimePaymentInput, result: ChargeResult, workflowId: string): NotificationInput {
  const amount = formatMoney(input.amount, input.currency);
  const succeeded = result.status === 'succeeded';
  return {
    userId: input.userId,
    kind: succeeded ? ('payment_succeeded' as const) : ('payment_failed' as const),
    subject: succeeded ? `Payment of ${amount} received` : `Payment of ${amount} failed`,
    body: succeeded
      ? `We received your payment of ${amount} for "${input.description}"${fromCredit(result, input.currency)}.`
      : `Your payment of ${amount} for "${input.description}" did not go through (${result.failureCode}).`,
    dedupeKey: notificationDedupeKey(workflowId, result.status),
  };
}

// Results recorded before the credit balance carry no creditApplied: nothing to say then.
function fromCredit(result: ChargeResult, currency: string): string {
  return result.creditApplied > 0 ? ` (${formatMoney(result.creditApplied, currency)} of it from your credit balance)` : '';
}
