/**
 * The payment gateway seen by activities: Stripe in production, a sandbox that answers like
 * Stripe's test payment methods when no key is configured. Amounts are integer minor units.
 */
export type DeclineKind = 'soft' | 'hard';

export type ChargeOutcome =
  | { status: 'succeeded'; gatewayPaymentId: string }
  | { status: 'pending'; gatewayPaymentId: string; reason: 'requires_action' | 'processing' }
  | { status: 'declined'; gatewayPaymentId: string | null; decline: DeclineKind; failureCode: string };

export interface ChargeRequest {
  amount: number;
  currency: string;
  paymentMethod: string;
  /** Same key, same charge: the gateway replays the first answer. */
  idempotencyKey: string;
  customerRef: string;
  description: string;
  metadata?: Record<string, string>;
}

export interface RefundRequest {
  gatewayPaymentId: string;
  amount: number;
  idempotencyKey: string;
}

export interface RefundOutcome {
  gatewayRefundId: string;
  status: 'succeeded' | 'pending' | 'failed';
}

export interface CancelRequest {
  gatewayPaymentId: string;
  idempotencyKey: string;
}

/** `succeeded`: the charge went through before it could be canceled; the money was taken. */
export type CancelOutcome = { status: 'canceled' } | { status: 'succeeded' };

export interface PaymentGateway {
  readonly name: 'stripe' | 'sandbox';
  charge(request: ChargeRequest): Promise<ChargeOutcome>;
  refund(request: RefundRequest): Promise<RefundOutcome>;
  /**
   * Cancels a pending charge so it can no longer take money. Throws (a fault worth retrying)
   * while the gateway can neither cancel nor settle it yet, e.g. a payment still processing.
   */
  cancel(request: CancelRequest): Promise<CancelOutcome>;
}

/** Decline codes after which retrying the same card is pointless (Stripe's "do not try again"). */
const HARD_DECLINE_CODES = new Set([
  'stolen_card',
  'lost_card',
  'pickup_card',
  'restricted_card',
  'fraudulent',
  'merchant_blacklist',
  'revocation_of_authorization',
  'revocation_of_all_authorizations',
  'security_violation',
  'invalid_account',
  // Our own codes for a request the gateway refused outright (unknown payment method, bad
  // parameters): the same request can never succeed, so it is treated like a hard decline.
  'invalid_payment_method',
  'invalid_request',
]);

export function classifyDecline(code: string | null | undefined): DeclineKind {
  return code && HARD_DECLINE_CODES.has(code) ? 'hard' : 'soft';
}

/**
 * The gateway refused a request that is not a charge (a refund of an unknown payment, say):
 * retrying cannot help, so workflows list its name in `nonRetryableErrorTypes`.
 */
export class GatewayRequestRejectedError extends Error {
  override readonly name = 'GatewayRequestRejectedError';
  constructor(
    message: string,
    readonly code: string | null,
  ) {
    super(message);
  }
}

/** Gateway metadata naming our `payments` row, so a webhook can find a charge by it. */
export const PAYMENT_ID_METADATA_KEY = 'payment_id';

/**
 * A pending charge whose webhook did not come within its timeout is canceled at the gateway and
 * counts as failed with this code.
 */
export const PAYMENT_TIMEOUT_FAILURE_CODE = 'payment_pending_timeout';

/** Workflow id of a one-time payment, named after its `payments` row. */
export function oneTimePaymentWorkflowId(paymentId: string): string {
  return `payment-${paymentId}`;
}

/** Workflow id of the refund of a charge that succeeded after it had been counted as failed. */
export function orphanedPaymentRefundWorkflowId(paymentId: string): string {
  return `refund-${paymentId}`;
}

/** Idempotency key of one charge attempt: the same (workflow, cycle, attempt) is the same charge. */
export function chargeIdempotencyKey(workflowId: string, cycle: number, attempt: number): string {
  return `${workflowId}/cycle-${cycle}/attempt-${attempt}`;
}

/** What a workflow asks the payment activities to charge; every charge is recorded in `payments`. */
export interface ChargeInput {
  /** The `payments` row id to use; one-time payments name their workflow after it. */
  paymentId?: string;
  kind: 'subscription' | 'one_time' | 'booking';
  userId: string;
  subscriptionId?: string;
  bookingId?: string;
  amount: number;
  currency: string;
  paymentMethod: string;
  /** Derived from (workflow id, cycle, attempt); unique in `payments` and sent to the gateway. */
  idempotencyKey: string;
  cycle?: number;
  attempt: number;
  description: string;
}

export interface ChargeResult {
  paymentId: string;
  status: 'succeeded' | 'pending' | 'failed';
  gatewayPaymentId: string | null;
  failureCode: string | null;
  decline: DeclineKind | null;
}

export interface RefundInput {
  /** The `payments` row of the charge being refunded. */
  paymentId: string;
  amount: number;
  idempotencyKey: string;
  reason: string;
}

export interface RefundResult {
  refundPaymentId: string;
  status: 'succeeded' | 'pending' | 'failed';
}

/** A charge that succeeded at the gateway after its workflow had counted it as failed (or had ended). */
export interface OrphanedPayment {
  paymentId: string;
  gatewayPaymentId: string;
}

/** What a payment webhook tells the workflow that owns a pending charge. */
export interface PaymentSettlement {
  paymentId: string;
  gatewayPaymentId: string;
  status: 'succeeded' | 'failed';
  failureCode: string | null;
}
