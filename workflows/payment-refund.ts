/**
 * A staff refund of a subscription or one-time payment: refunded at the gateway once, the
 * customer told, and the subscription's workflow told the charge's new refunded total. Started
 * by POST /api/v1/admin/payments/{id}/refund as `payment-refund-<paymentId>-<requestId>`
 * (domain/payment.ts staffRefundWorkflowId); booking payments are refunded through their own
 * workflow instead (POST /api/v1/admin/bookings/{id}/refund).
 *
 * Money is refunded once: the workflow id derives from the request's Idempotency-Key, so a
 * repeated request reaches this same workflow; the refund activity's idempotency key is that
 * workflow id, so its retries claim one `payments` row (unique key) and make one refund at the
 * gateway (same key); and its claim reserves the amount on the charge under the charge's row
 * lock, so refunds racing for one charge never exceed what is left of it.
 */
import { ActivityFailure, ApplicationFailure, defineQuery, getExternalWorkflowHandle, log, setHandler, workflowInfo } from '@temporalio/workflow';
import { formatMoney } from '../domain/money';
import { notificationDedupeKey } from '../domain/notification';
import type { RefundResult } from '../domain/payment';
import { subscriptionWorkflowId } from '../domain/subscription';
import { gatewayActivities } from './activity-options';
import { notifyQuietly } from './notify';
import { gatewayRefundRecordedSignal } from './payment';

export interface PaymentRefundInput {
  /** The charge to refund: a `payments` row of kind `subscription` or `one_time` that succeeded. */
  paymentId: string;
  /** The customer who paid it (and is told of the refund). */
  userId: string;
  /** The charge's subscription, whose workflow is told the refunded total; null for a one-time payment. */
  subscriptionId: string | null;
  /** Minor units, at most what is left of the charge (the refund activity refuses more). */
  amount: number;
  currency: string;
  /** The charge's description, for the customer's notice. */
  description: string | null;
  /** Why staff refund it; kept on the refund's `payments` row (and in the audit log by the API). */
  reason: string;
  /** The task queue of gateway calls; `payments` when absent. */
  paymentsTaskQueue?: string;
}

export interface PaymentRefundResult {
  /** The refund's own `payments` row (kind `refund`). */
  refundPaymentId: string;
  amount: number;
  /** `pending`: the gateway accepted the refund and settles it later (its webhook says when). */
  status: 'succeeded' | 'pending';
  /** What the charge has refunded in all once this refund was recorded. */
  refundedTotal: number | null;
}

/** What a person needs to know about a staff refund right now. */
export interface PaymentRefundState {
  paymentId: string;
  amount: number;
  phase: 'refunding' | 'refunded' | 'refused';
  refund: RefundResult | null;
}

export const paymentRefundStateQuery = defineQuery<PaymentRefundState>('state');

/**
 * Refunds `amount` of the charge and answers the refund. Fails (non-retryable ApplicationFailure,
 * which the API maps to a problem) with the refund activity's type when the charge cannot be
 * refunded (`PaymentNotRefundable`, `RefundExceedsPayment`, …), or `RefundFailed` when the
 * gateway refused the refund; nothing is refunded then.
 */
export async function paymentRefundWorkflow(input: PaymentRefundInput): Promise<PaymentRefundResult> {
  const { workflowId } = workflowInfo();
  const state: PaymentRefundState = { paymentId: input.paymentId, amount: input.amount, phase: 'refunding', refund: null };
  setHandler(paymentRefundStateQuery, () => state);

  const refund = await refundAtGateway(input, workflowId).catch((error: unknown) => {
    state.phase = 'refused';
    throw error;
  });
  state.refund = refund;
  if (refund.status === 'failed') {
    // The activity has given the reservation back: nothing was refunded.
    state.phase = 'refused';
    throw ApplicationFailure.nonRetryable(`the gateway refused to refund payment ${input.paymentId}`, 'RefundFailed');
  }
  state.phase = 'refunded';
  await notifyQuietly(refundNotice(input, workflowId));
  if (refund.refundedTotal !== undefined) await tellOwner(input, refund.refundedTotal);
  return { refundPaymentId: refund.refundPaymentId, amount: input.amount, status: refund.status, refundedTotal: refund.refundedTotal ?? null };
}

/**
 * The refund activity, keyed by this workflow's id (one row, one gateway refund, however often
 * it is retried). A refusal it reports (a non-retryable ApplicationFailure) fails this workflow
 * with the same type and message, so the API can tell a 409 from a 422.
 */
async function refundAtGateway(input: PaymentRefundInput, workflowId: string): Promise<RefundResult> {
  const gateway = gatewayActivities(input.paymentsTaskQueue);
  try {
    return await gateway.refundPayment({ paymentId: input.paymentId, amount: input.amount, idempotencyKey: workflowId, reason: input.reason });
  } catch (error) {
    if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure) {
      throw ApplicationFailure.nonRetryable(error.cause.message, error.cause.type ?? 'RefundFailed');
    }
    throw error;
  }
}

function refundNotice(input: PaymentRefundInput, workflowId: string) {
  const amount = formatMoney(input.amount, input.currency);
  const what = input.description ? ` for "${input.description}"` : '';
  return {
    userId: input.userId,
    kind: 'payment_refunded' as const,
    subject: `Refund of ${amount}`,
    body: `We have refunded ${amount} of your payment${what}. It reaches your card within a few days.`,
    // One notice per refund, however often this step is retried or replayed.
    dedupeKey: notificationDedupeKey(workflowId, 'refunded'),
    ...(input.subscriptionId ? { subscriptionId: input.subscriptionId } : {}),
  };
}

/**
 * Tells the subscription's workflow the charge's refunded total (as the `charge.refunded`
 * webhook tells a booking's), so what it refunds later (a cancel, say) gives back only what is
 * left. A workflow that has ended, or has no handler for the signal yet, changes nothing: the
 * signal fails or is dropped, and the `payments` row stays the record of the refund.
 *
 * A one-time payment's workflow is not told: once its charge is final (and only then can it be
 * refunded) it only sends its notice and ends; it has no handler for the signal and never
 * refunds anything itself. The `payments` rows (the charge's refunded_amount and the refund's
 * own row) are the record of the refund.
 */
async function tellOwner(input: PaymentRefundInput, refundedTotal: number): Promise<void> {
  if (!input.subscriptionId) return;
  const owner = subscriptionWorkflowId(input.subscriptionId);
  try {
    await getExternalWorkflowHandle(owner).signal(gatewayRefundRecordedSignal, { paymentId: input.paymentId, refundedTotal });
  } catch (error) {
    log.warn('the subscription workflow was not told of the refund (it has ended)', { workflowId: owner, error: String(error) });
  }
}
