/**
 * How workflows call their activities: one named preset per kind of side effect, used by every
 * workflow, so a charge or a notification is retried the same way whoever makes it.
 *
 * - GATEWAY_CALL (charge, refund): each call carries an idempotency key that the gateway and the
 *   unique `payments.idempotency_key` column both honour, so attempts are unlimited: a retry can
 *   never charge or refund twice. One minute start-to-close stays above the gateway client's own
 *   request timeout, so a slow gateway fails the request, not the attempt. A request the gateway
 *   refuses outright (GatewayRequestRejectedError) can never succeed and is not retried.
 * - CANCEL_PENDING_CHARGE: every fault is retried without limit, rejections included: a charge
 *   the gateway can neither cancel nor settle yet must not be counted as failed, and one it
 *   refuses to cancel needs a person, who sees the retrying activity in the Web UI.
 * - PROJECTION (rows in PostgreSQL): idempotent upserts, retried until the database takes them.
 * - NOTIFICATION: bounded, about 35 minutes of attempts (5 s doubling to 10 min, 9 attempts). A
 *   mail outage must never hold up billing or a booking, and an outbox must not grow without
 *   bound; a notice that still fails is logged and dropped (the dedupe key makes a resend safe).
 *
 * - BOOKING_UPDATE (an offering's cancellation sending each booking its cancelByBusiness update):
 *   the attempt waits for the booking's refunds, so it heartbeats and a dead worker's attempt is
 *   retried after HEARTBEAT seconds, not after the long start-to-close; the fixed updateId makes a
 *   retry attach to the same update, so attempts are unlimited.
 *
 * - LOCAL_PROJECTION, LOCAL_NOTIFICATION: the same two as local activities, run by the worker
 *   inside the workflow task that asks for them. No task queue, no activity task, no workflow task
 *   to hear back: the checkout saga is two workflow tasks and one activity task (the charge)
 *   instead of five and four, a renewal three and one instead of five and three (bench/README.md;
 *   the subscription's behind the subscription-local-steps patch). The retries are the same; past a minute between
 *   attempts the SDK waits on a durable timer. Only short, idempotent writes go here, never a
 *   gateway call (its queue's rate limit is the gateway's, and only the server can enforce it
 *   across workers).
 *
 * Gateway calls run on their own task queue (`payments`), so the server's per-queue activity
 * rate limit (GATEWAY_MAX_CALLS_PER_SECOND) is the gateway's request limit for every workflow,
 * and projections and mail are never throttled by it.
 */
import { proxyActivities, proxyLocalActivities, type ActivityOptions, type LocalActivityOptions, type RetryPolicy } from '@temporalio/workflow';
import type { BookingActivities } from '../activities/booking';
import type { CouponActivities } from '../activities/coupon';
import type { CreditActivities } from '../activities/credits';
import type { HoldActivities } from '../activities/hold';
import type { InvoiceActivities } from '../activities/invoice';
import type { NotificationActivities } from '../activities/notification';
import type { OfferingActivities } from '../activities/offering';
import type { PaymentActivities } from '../activities/payment';
import type { ReferralActivities } from '../activities/referral';
import type { SubscriptionActivities } from '../activities/subscription';
import { TASK_QUEUES } from '../platform/task-queues';

const UNTIL_IT_WORKS: RetryPolicy = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' };

export const GATEWAY_CALL: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { ...UNTIL_IT_WORKS, nonRetryableErrorTypes: ['GatewayRequestRejectedError'] },
};

export const CANCEL_PENDING_CHARGE: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 minutes' },
};

export const PROJECTION: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: UNTIL_IT_WORKS,
};

export const NOTIFICATION: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumInterval: '10 minutes',
    maximumAttempts: 9,
    nonRetryableErrorTypes: ['UserNotFound', 'NotificationNotFound'],
  },
};

export const LOCAL_PROJECTION: LocalActivityOptions = { startToCloseTimeout: PROJECTION.startToCloseTimeout, retry: UNTIL_IT_WORKS };

export const LOCAL_NOTIFICATION: LocalActivityOptions = { startToCloseTimeout: NOTIFICATION.startToCloseTimeout, retry: NOTIFICATION.retry };

export const BOOKING_UPDATE: ActivityOptions = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '10 seconds',
  retry: UNTIL_IT_WORKS,
};

/** Errors of the booking steps that no retry can mend (the hold or booking is gone, bad units). */
const BOOKING_STEP_FAILURES = ['HoldNotFound', 'BookingNotFound', 'BookingNotConfirmed', 'UnknownUnits', 'MixedCurrencyError'];

/**
 * The gateway's activities on the payments queue. Starters name that queue in the workflow's
 * input (tests use queues of their own); runs started before it was named use `payments`.
 */
export function gatewayActivities(paymentsTaskQueue: string = TASK_QUEUES.payments) {
  const { chargePayment, refundPayment } = proxyActivities<PaymentActivities>({ ...GATEWAY_CALL, taskQueue: paymentsTaskQueue });
  const { cancelPendingPayment } = proxyActivities<PaymentActivities>({ ...CANCEL_PENDING_CHARGE, taskQueue: paymentsTaskQueue });
  return { chargePayment, refundPayment, cancelPendingPayment };
}

export type GatewayActivities = ReturnType<typeof gatewayActivities>;

/** Payment rows written without the gateway (settlements the webhook reported, late successes). */
export const { settlePayment, recordLatePaymentSuccess } = proxyActivities<PaymentActivities>(PROJECTION);
export const { recordSubscription } = proxyActivities<SubscriptionActivities>(PROJECTION);
/** The subscription's projection and notices in the workflow task itself (runs with the subscription-local-steps patch). */
export const { recordSubscription: recordSubscriptionLocally } = proxyLocalActivities<SubscriptionActivities>(LOCAL_PROJECTION);
/** Credit for a customer's balance, once per idempotency key (a proration, the credit part of a refund). */
export const { grantCredit } = proxyActivities<CreditActivities>(PROJECTION);
/** A coupon's place given back when the subscribe it was redeemed for is declined (idempotent by redemption id). */
export const { releaseCouponRedemption } = proxyActivities<CouponActivities>(PROJECTION);
/** The referrer's credit once the referred customer's first period is paid (once per referred customer). */
export const { rewardReferral } = proxyActivities<ReferralActivities>(PROJECTION);
/** A failed renewal's invoice: open while dunning, then void (paid by a retry) or uncollectible (expired). */
export const { recordChargeInvoice } = proxyActivities<InvoiceActivities>({
  ...PROJECTION,
  retry: { ...UNTIL_IT_WORKS, nonRetryableErrorTypes: ['InvoiceRefused'] },
});
export const { claimUnits, releaseHold, extendHold } = proxyActivities<HoldActivities>(PROJECTION);
export const bookingSteps = proxyActivities<BookingActivities>({
  ...PROJECTION,
  retry: { ...UNTIL_IT_WORKS, nonRetryableErrorTypes: BOOKING_STEP_FAILURES },
});
/** The checkout saga's own steps in the workflow task itself (runs with the booking-local-steps patch). */
export const bookingStepsLocally = proxyLocalActivities<BookingActivities>({
  ...LOCAL_PROJECTION,
  retry: { ...UNTIL_IT_WORKS, nonRetryableErrorTypes: BOOKING_STEP_FAILURES },
});
export const { notify, deliverNotification } = proxyActivities<NotificationActivities>(NOTIFICATION);
/** A notice in the workflow task that asks for it (callers behind a patch: workflows/notify.ts). */
export const { notify: notifyLocally } = proxyLocalActivities<NotificationActivities>(LOCAL_NOTIFICATION);
/** An offering's cancellation: its row, holds, waitlist and the pages of its bookings (rows in PostgreSQL). */
export const offeringSteps = proxyActivities<OfferingActivities>({
  ...PROJECTION,
  retry: { ...UNTIL_IT_WORKS, nonRetryableErrorTypes: ['OfferingNotFound'] },
});
export const { cancelBookingOfOffering } = proxyActivities<OfferingActivities>(BOOKING_UPDATE);
