import type { InvoiceLineInput } from './invoice';

/**
 * The payment gateway seen by activities: Stripe in production, a sandbox that answers like
 * Stripe's test payment methods when no key is configured. Amounts are integer minor units.
 */
export type DeclineKind = 'soft' | 'hard';

/**
 * What the customer's app must do for a charge that awaits them (3-D Secure, a bank's page):
 * confirm it with Stripe.js using `clientSecret`, or send the customer to `redirectUrl`.
 */
export interface NextAction {
  type: 'use_stripe_sdk' | 'redirect_to_url';
  clientSecret: string;
  redirectUrl?: string;
}

export type ChargeOutcome =
  | { status: 'succeeded'; gatewayPaymentId: string }
  | { status: 'pending'; gatewayPaymentId: string; reason: 'requires_action' | 'processing'; nextAction: NextAction | null }
  | { status: 'declined'; gatewayPaymentId: string | null; decline: DeclineKind; failureCode: string };

/**
 * `on_session`: the customer is at the app (subscribe, one-time payment, booking, a card change
 * while past due) and can authenticate; the card is saved for later (`setup_future_usage`).
 * `off_session`: renewals and dunning retries, charged with nobody present.
 */
export type ChargeSession = 'on_session' | 'off_session';

export interface ChargeRequest {
  amount: number;
  currency: string;
  /** The customer's gateway id: Stripe charges a saved payment method only with its customer. */
  customerId: string;
  /** A payment method attached to `customerId`. */
  paymentMethod: string;
  session: ChargeSession;
  /** Same key, same charge: the gateway replays the first answer. */
  idempotencyKey: string;
  /** Our user id, kept in the gateway's metadata. */
  customerRef: string;
  description: string;
  metadata?: Record<string, string>;
}

/** A card saved at the gateway, as much of it as may be shown (never the number). */
export interface SavedCard {
  id: string;
  brand: string;
  last4: string;
  expMonth: number;
  expYear: number;
  /** The customer it is attached to; null once detached. */
  customerId: string | null;
}

export interface CustomerRequest {
  /** Our user id; the gateway keeps it in the customer's metadata. */
  userId: string;
  email: string;
  name: string;
  /** Derived from the user: a retried creation returns the first customer. */
  idempotencyKey: string;
}

export interface SetupIntentRequest {
  customerId: string;
  idempotencyKey: string;
}

/** A SetupIntent the customer's app confirms with Stripe.js; its webhook saves the card. */
export interface SetupIntentOutcome {
  id: string;
  clientSecret: string;
  status: string;
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
  createCustomer(request: CustomerRequest): Promise<{ customerId: string }>;
  createSetupIntent(request: SetupIntentRequest): Promise<SetupIntentOutcome>;
  /**
   * Attaches a payment method to a customer and returns the saved card. A test token such as
   * `pm_card_visa` becomes a new `pm_…` of its own (as Stripe does); attaching a method already
   * attached to this customer returns it unchanged. A method attached elsewhere, detached, or
   * unknown is refused (GatewayRequestRejectedError).
   */
  attachPaymentMethod(request: { customerId: string; paymentMethod: string }): Promise<SavedCard>;
  /** Detaching a method already detached changes nothing. */
  detachPaymentMethod(request: { paymentMethod: string }): Promise<void>;
  /** The card behind a payment method id (a SetupIntent's, say); GatewayRequestRejectedError when unknown. */
  retrievePaymentMethod(paymentMethod: string): Promise<SavedCard>;
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
  // Stripe's refusal of a payment method used once without a customer, or detached: it may
  // never be charged again.
  'payment_method_unexpected_state',
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

/**
 * Workflow id of a staff refund of a charge: one per (charge, request), where the request id
 * derives from the request's Idempotency-Key (api/derived-ids.ts), so a repeated request is the
 * same refund. It is the refund's idempotency key at the gateway and in `payments` too.
 */
export function staffRefundWorkflowId(paymentId: string, requestId: string): string {
  return `payment-refund-${paymentId}-${requestId}`;
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
  /** A payment method saved to the user's customer (the API attaches a token before it starts a workflow). */
  paymentMethod: string;
  /** Absent in runs started before sessions were told apart: those charge off-session. */
  session?: ChargeSession;
  /** Derived from (workflow id, cycle, attempt); unique in `payments` and sent to the gateway. */
  idempotencyKey: string;
  cycle?: number;
  attempt: number;
  description: string;
  /**
   * Pay from the customer's credit balance in the charge's currency first, the card only for the
   * rest (nothing at all when the credit covers it). Absent in runs from before the credit balance
   * (workflows pass `patched(APPLY_CREDIT_PATCH)`): those charge the card for the whole amount.
   */
  applyCredit?: boolean;
  /**
   * What the charge bills, priced with domain/invoice.ts (its total must be `amount`: tax is
   * included in what is charged). Absent: the invoice has one line for the whole amount.
   */
  invoiceLines?: InvoiceLineInput[];
}

export interface ChargeResult {
  paymentId: string;
  status: 'succeeded' | 'pending' | 'failed';
  gatewayPaymentId: string | null;
  failureCode: string | null;
  decline: DeclineKind | null;
  /**
   * What of the amount the credit balance paid (0 when none); the card was charged the rest. Results
   * recorded in histories from before the credit balance lack it: read it only on the patched path.
   */
  creditApplied: number;
  /** While pending: what the customer must do (their app completes it), when the gateway said. */
  nextAction?: NextAction | null;
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
  /**
   * What the charge has refunded in all once this refund was recorded (its `refunded_amount`,
   * which counts the reservations of refunds still in flight). Absent in results recorded before
   * the activity reported it.
   */
  refundedTotal?: number;
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

/**
 * Where the customer completes a payment that awaits them: PAYMENT_ACTION_URL with the payment's
 * id in place of `{paymentId}`. Undefined when no template is known (runs started before it was).
 */
export function paymentActionLink(template: string | undefined, paymentId: string): string | undefined {
  return template?.split('{paymentId}').join(encodeURIComponent(paymentId));
}
