import Stripe from 'stripe';
import { classifyDecline, type CancelOutcome, type ChargeOutcome, type NextAction, type RefundOutcome, type SavedCard } from '../../domain/payment';

/**
 * How Stripe's answers (PaymentIntents, PaymentMethods, errors) become the gateway's outcomes.
 * Pure functions: the Stripe gateway maps its responses with them, and the sandbox maps the
 * Stripe-shaped intents it keeps, so both gateways answer the same way for the same intent.
 */

/** Stripe's code for a payment method that may not be used again (used once without a customer, or detached). */
export const PAYMENT_METHOD_UNEXPECTED_STATE = 'payment_method_unexpected_state';

/** A pending charge that cannot be canceled yet: asking again later is the only way on. */
export class PaymentStillProcessingError extends Error {
  override readonly name = 'PaymentStillProcessingError';
  constructor(readonly gatewayPaymentId: string) {
    super(`payment ${gatewayPaymentId} is still processing and cannot be canceled yet`);
  }
}

/**
 * What the customer's app must do for an intent awaiting them: a bank's page to visit
 * (`redirect_to_url`), else Stripe.js with the client secret (`use_stripe_sdk`, 3-D Secure).
 * Null without a client secret: nothing the app could confirm.
 */
export function nextActionOf(intent: Pick<Stripe.PaymentIntent, 'client_secret' | 'next_action'>): NextAction | null {
  const clientSecret = intent.client_secret;
  if (!clientSecret) return null;
  const redirectUrl = intent.next_action?.type === 'redirect_to_url' ? intent.next_action.redirect_to_url?.url : null;
  if (redirectUrl) return { type: 'redirect_to_url', clientSecret, redirectUrl };
  return { type: 'use_stripe_sdk', clientSecret };
}

/** Maps a PaymentIntent returned by a confirming create to our outcome. */
export function chargeOutcomeFromIntent(intent: Stripe.PaymentIntent): ChargeOutcome {
  switch (intent.status) {
    case 'succeeded':
      return { status: 'succeeded', gatewayPaymentId: intent.id };
    case 'processing':
    case 'requires_capture':
      return { status: 'pending', gatewayPaymentId: intent.id, reason: 'processing', nextAction: null };
    case 'requires_action':
    case 'requires_confirmation':
      return { status: 'pending', gatewayPaymentId: intent.id, reason: 'requires_action', nextAction: nextActionOf(intent) };
    default: {
      // requires_payment_method after a confirm means the attempt failed; canceled is final.
      const lastError = intent.last_payment_error;
      const failureCode = lastError?.decline_code ?? lastError?.code ?? intent.status;
      return { status: 'declined', gatewayPaymentId: intent.id, decline: classifyDecline(failureCode), failureCode };
    }
  }
}

/**
 * A card decline, or a request Stripe refused outright, is an answer: it becomes a declined
 * outcome. Anything else (network, 5xx, rate limit, auth) is a fault and is re-thrown so the
 * activity retries with the same idempotency key.
 *
 * One decline is not one: an off-session charge the bank wants authenticated fails with
 * `authentication_required`, and the intent it carries can still be confirmed by the customer
 * once they are back. It is pending `requires_action` on that same intent.
 */
export function chargeOutcomeFromStripeError(error: unknown): ChargeOutcome {
  if (error instanceof Stripe.errors.StripeCardError) {
    const intent = error.payment_intent;
    if (error.code === 'authentication_required' && intent?.client_secret) {
      return {
        status: 'pending',
        gatewayPaymentId: intent.id,
        reason: 'requires_action',
        nextAction: { type: 'use_stripe_sdk', clientSecret: intent.client_secret },
      };
    }
    const failureCode = error.decline_code || error.code || 'card_declined';
    return { status: 'declined', gatewayPaymentId: intent?.id ?? null, decline: classifyDecline(failureCode), failureCode };
  }
  if (isRejectedRequest(error)) {
    const failureCode = rejectedChargeFailureCode(error);
    return {
      status: 'declined',
      gatewayPaymentId: error.payment_intent?.id ?? null,
      decline: classifyDecline(failureCode),
      failureCode,
    };
  }
  throw error;
}

function rejectedChargeFailureCode(error: Stripe.errors.StripeInvalidRequestError): string {
  if (error.code === PAYMENT_METHOD_UNEXPECTED_STATE) return PAYMENT_METHOD_UNEXPECTED_STATE;
  if (error.param === 'payment_method' || error.code === 'resource_missing') return 'invalid_payment_method';
  return 'invalid_request';
}

/**
 * What an intent that Stripe refused to cancel says: succeeded or canceled are final answers;
 * processing throws so the caller retries; null means it can be canceled after all.
 */
export function cancelOutcomeOfUncancelableIntent(intent: Stripe.PaymentIntent): CancelOutcome | null {
  switch (intent.status) {
    case 'succeeded':
      return { status: 'succeeded' };
    case 'canceled':
      return { status: 'canceled' };
    case 'processing':
      throw new PaymentStillProcessingError(intent.id);
    default:
      return null;
  }
}

/** The card of a PaymentMethod as it may be shown; null for a method that is not a card. */
export function savedCardOf(method: Stripe.PaymentMethod): SavedCard | null {
  if (!method.card) return null;
  const customer = method.customer;
  return {
    id: method.id,
    brand: method.card.brand,
    last4: method.card.last4,
    expMonth: method.card.exp_month,
    expYear: method.card.exp_year,
    customerId: typeof customer === 'string' ? customer : (customer?.id ?? null),
  };
}

// 409 (idempotency key in use by a concurrent request) and 429 are worth retrying; 400/404 are not.
export function isRejectedRequest(error: unknown): error is Stripe.errors.StripeInvalidRequestError {
  return error instanceof Stripe.errors.StripeInvalidRequestError && (error.statusCode === 400 || error.statusCode === 404);
}

export function stripeCode(error: unknown): string | undefined {
  return error instanceof Stripe.errors.StripeError ? error.code : undefined;
}

export function refundStatus(status: string | null): RefundOutcome['status'] {
  if (status === 'succeeded') return 'succeeded';
  if (status === 'failed' || status === 'canceled') return 'failed';
  return 'pending';
}
