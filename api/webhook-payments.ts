import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type Stripe from 'stripe';
import type { Transaction } from '../db/client';
import { recordDispute } from '../db/disputes';
import { cardChargedAmount, chargeOfGatewayPayment, recordGatewayRefundTotal, type GatewayChargeMatch, type PaymentRow } from '../db/payments';
import type { WebhookOutcome } from '../db/webhook-events';
import { bookingWorkflowId } from '../domain/booking';
import { formatMoney } from '../domain/money';
import { oneTimePaymentWorkflowId, orphanedPaymentRefundWorkflowId, PAYMENT_ID_METADATA_KEY, type PaymentSettlement } from '../domain/payment';
import { subscriptionWorkflowId } from '../domain/subscription';
import { gatewayRefundRecordedSignal, paymentSettledSignal, refundOrphanedPaymentWorkflow } from '../workflows/payment';
import { staffAlertWorkflow } from '../workflows/staff-alert';
import { taskQueuesOf, type AppDeps } from './deps';
import { ignored, PROCESSED, retryLater, signalIfRunning, withTemporalDeadline, type WebhookLog } from './webhook-support';

/**
 * The payment events: a PaymentIntent settled, a charge refunded, a charge disputed. Each finds
 * its charge by the intent id we recorded (never by metadata alone) and checks the event's amount
 * and currency against it; each action is safe to repeat, since a failed or interrupted attempt
 * is acted on again when the gateway retries.
 */

/**
 * The workflow waiting for each kind of charge. The booking saga receives `paymentSettledSignal`
 * like the others once it charges through the payment activities; refunds have no waiting workflow.
 */
const OWNING_WORKFLOW: Record<PaymentRow['kind'], (payment: PaymentRow) => string | null> = {
  subscription: (p) => (p.subscriptionId ? subscriptionWorkflowId(p.subscriptionId) : null),
  one_time: (p) => oneTimePaymentWorkflowId(p.id),
  booking: (p) => (p.bookingId ? bookingWorkflowId(p.bookingId) : null),
  refund: () => null,
};

type SettlementEvent = Stripe.PaymentIntentSucceededEvent | Stripe.PaymentIntentPaymentFailedEvent;

export async function actOnPaymentIntent(event: SettlementEvent, deps: AppDeps, log: WebhookLog): Promise<WebhookOutcome> {
  const intent = event.data.object;
  const paymentId = intent.metadata?.[PAYMENT_ID_METADATA_KEY];
  // A short transaction: its lock waits out a cancel of the charge in flight, then is released
  // before Temporal is called.
  const match = await deps.db.transaction((tx) => chargeOfGatewayPayment(tx, intent.id, paymentId));
  const payment = chargeOf(match, intent.id, log);
  if (!payment) return ignored('foreign_intent');
  const mismatch = amountMismatch(intent, payment);
  if (mismatch) return mismatch;

  const settlement = settlementOf(event.type, intent, payment);
  const succeeded = settlement.status === 'succeeded';
  // Counted as failed already (its pending timeout won): no workflow will account for this money.
  if (succeeded && payment.status === 'failed') {
    await refundOrphanedPayment(payment, intent.id, deps, log);
    return PROCESSED;
  }
  const delivered = await signalOwner(payment, settlement, deps, log);
  // Still pending, but nothing waits for it any more (a subscription canceled meanwhile, say).
  if (!delivered && succeeded && payment.status === 'pending') await refundOrphanedPayment(payment, intent.id, deps, log);
  return PROCESSED;
}

/** The charge the event is for, or undefined (foreign); throws a 503 when it outran our write. */
function chargeOf(match: GatewayChargeMatch, gatewayPaymentId: string, log: WebhookLog): PaymentRow | undefined {
  if (match.match === 'found') return match.payment;
  if (match.match === 'not_recorded_yet') {
    log.info({ gatewayPaymentId, paymentId: match.paymentId }, 'payment event before its intent id was recorded; the gateway will retry it');
    throw retryLater('The payment this event names has not recorded its intent yet; retry shortly.');
  }
  return undefined;
}

/**
 * The event's money must be the charge's: a different amount or currency is not our charge. The
 * gateway charged what the credit balance left of it (amount - credit_applied).
 */
function amountMismatch(money: { amount?: number | null; currency?: string | null }, payment: PaymentRow): WebhookOutcome | undefined {
  if (money.amount !== cardChargedAmount(payment)) return ignored('amount_mismatch');
  if (money.currency?.toLowerCase() !== payment.currency.toLowerCase()) return ignored('currency_mismatch');
  return undefined;
}

function settlementOf(type: SettlementEvent['type'], intent: Stripe.PaymentIntent, payment: PaymentRow): PaymentSettlement {
  if (type === 'payment_intent.succeeded') {
    return { paymentId: payment.id, gatewayPaymentId: intent.id, status: 'succeeded', failureCode: null };
  }
  const lastError = intent.last_payment_error;
  return {
    paymentId: payment.id,
    gatewayPaymentId: intent.id,
    status: 'failed',
    failureCode: lastError?.decline_code ?? lastError?.code ?? 'payment_failed',
  };
}

/** False when no running workflow owns the payment, so nothing received the settlement. */
async function signalOwner(payment: PaymentRow, settlement: PaymentSettlement, deps: AppDeps, log: WebhookLog): Promise<boolean> {
  const workflowId = OWNING_WORKFLOW[payment.kind](payment);
  if (!workflowId) {
    log.warn({ paymentId: payment.id, kind: payment.kind }, 'no workflow owns this payment; settlement not delivered');
    return false;
  }
  // A repeated settlement is ignored by the workflow, so a retried event may signal again.
  const delivered = await signalIfRunning(deps, workflowId, paymentSettledSignal, settlement);
  if (delivered) log.info({ paymentId: payment.id, workflowId, status: settlement.status }, 'payment settlement signalled');
  else log.warn({ paymentId: payment.id, workflowId, status: settlement.status }, 'settlement for a workflow that has ended');
  return delivered;
}

/**
 * The money was taken for something the customer did not get: a workflow refunds it and tells
 * them. One per charge (`refund-<paymentId>`, never started twice) however often Stripe repeats it.
 */
async function refundOrphanedPayment(payment: PaymentRow, gatewayPaymentId: string, deps: AppDeps, log: WebhookLog): Promise<void> {
  const workflowId = orphanedPaymentRefundWorkflowId(payment.id);
  try {
    await withTemporalDeadline(deps, () =>
      deps.temporal.workflow.start(refundOrphanedPaymentWorkflow, {
        workflowId,
        taskQueue: taskQueuesOf(deps).billing,
        args: [{ paymentId: payment.id, gatewayPaymentId, paymentsTaskQueue: taskQueuesOf(deps).payments }],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        staticSummary: `Refund of ${formatMoney(payment.amount, payment.currency)}: payment ${payment.id} succeeded after it was given up`,
      }),
    );
    log.warn({ paymentId: payment.id, workflowId, paymentStatus: payment.status }, 'payment succeeded after it was given up; refunding it');
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    log.info({ paymentId: payment.id, workflowId }, 'refund of this payment already started');
  }
}

/** The charge of a refund or dispute event: by the intent id we recorded only. */
async function chargeOfIntent(deps: AppDeps, intent: string | { id: string } | null): Promise<PaymentRow | undefined> {
  const intentId = typeof intent === 'string' ? intent : intent?.id;
  if (!intentId) return undefined;
  const match = await deps.db.transaction((tx: Transaction) => chargeOfGatewayPayment(tx, intentId, undefined));
  return match.match === 'found' ? match.payment : undefined;
}

/**
 * `charge.refunded`: records the gateway's refunded total on the charge (a refund made in its
 * dashboard, say) and tells a booking's workflow, so its later refunds give back only what is
 * left. Subscriptions and one-time payments refund only orphaned charges, reading what is left
 * from the row, so their workflows need no telling.
 */
export async function actOnChargeRefunded(event: Stripe.ChargeRefundedEvent, deps: AppDeps, log: WebhookLog): Promise<WebhookOutcome> {
  const charge = event.data.object;
  const payment = await chargeOfIntent(deps, charge.payment_intent);
  if (!payment) return ignored('foreign_intent');
  const mismatch = amountMismatch(charge, payment);
  if (mismatch) return mismatch;

  await recordGatewayRefundTotal(deps.db, payment.id, charge.amount_refunded);
  log.info({ paymentId: payment.id, refundedTotal: charge.amount_refunded }, 'refund recorded from webhook');
  if (payment.kind === 'booking' && payment.bookingId) {
    const workflowId = bookingWorkflowId(payment.bookingId);
    const told = await signalIfRunning(deps, workflowId, gatewayRefundRecordedSignal, {
      paymentId: payment.id,
      refundedTotal: charge.amount_refunded,
    });
    log.info({ paymentId: payment.id, workflowId, told }, told ? 'gateway refund signalled' : 'gateway refund for a booking workflow that has ended');
  }
  return PROCESSED;
}

/**
 * `charge.dispute.created`: the charge becomes `disputed`, an audit row records it and staff are
 * told: the notices are recorded with it (recordDispute) and delivered by a staffAlertWorkflow.
 * A dispute may be for less than the charge, so only its currency is checked.
 */
export async function actOnDispute(event: Stripe.ChargeDisputeCreatedEvent, deps: AppDeps, log: WebhookLog): Promise<WebhookOutcome> {
  const dispute = event.data.object;
  const payment = await chargeOfIntent(deps, dispute.payment_intent);
  if (!payment) return ignored('foreign_intent');
  if (dispute.currency?.toLowerCase() !== payment.currency.toLowerCase()) return ignored('currency_mismatch');

  const { recorded, staffNoticeKeys } = await recordDispute(deps.db, {
    disputeId: dispute.id,
    paymentId: payment.id,
    reason: dispute.reason,
    amount: dispute.amount,
    currency: dispute.currency,
  });
  if (recorded) {
    log.warn({ paymentId: payment.id, disputeId: dispute.id, reason: dispute.reason, amount: dispute.amount }, 'payment disputed; telling staff');
  }
  await alertStaff(deps, staffAlertWorkflowId(dispute.id), staffNoticeKeys, log);
  return PROCESSED;
}

/** The workflow delivering the staff notices of a dispute: one per dispute, however often it is reported. */
function staffAlertWorkflowId(disputeId: string): string {
  return `staff-alert-${disputeId}`;
}

async function alertStaff(deps: AppDeps, workflowId: string, dedupeKeys: string[], log: WebhookLog): Promise<void> {
  if (dedupeKeys.length === 0) return;
  try {
    await withTemporalDeadline(deps, () =>
      deps.temporal.workflow.start(staffAlertWorkflow, {
        workflowId,
        taskQueue: taskQueuesOf(deps).billing,
        args: [{ dedupeKeys }],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        staticSummary: `Staff alert: ${dedupeKeys.length} notice(s)`,
      }),
    );
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    log.info({ workflowId }, 'staff already alerted');
  }
}
