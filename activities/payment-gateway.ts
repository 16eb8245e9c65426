import { createHash } from 'node:crypto';
import Stripe from 'stripe';
import type { Logger } from '../platform/logger';
import {
  classifyDecline,
  GatewayRequestRejectedError,
  type CancelOutcome,
  type CancelRequest,
  type ChargeOutcome,
  type ChargeRequest,
  type PaymentGateway,
  type RefundOutcome,
  type RefundRequest,
} from '../domain/payment';
import type { Config } from '../platform/config';

/** Stripe when a secret key is configured, otherwise the sandbox that needs no account. */
export function createPaymentGateway(config: Pick<Config, 'STRIPE_SECRET_KEY' | 'STRIPE_API_URL'>, logger?: Logger): PaymentGateway {
  if (!config.STRIPE_SECRET_KEY) {
    logger?.info('no STRIPE_SECRET_KEY: payments go to the sandbox gateway');
    return new SandboxGateway();
  }
  return new StripeGateway(config.STRIPE_SECRET_KEY, { apiUrl: config.STRIPE_API_URL, logger });
}

// ---------------------------------------------------------------------------------------------
// Stripe

export interface StripeGatewayOptions {
  /** Overrides Stripe's host, port and protocol (stripe-mock in tests). */
  apiUrl?: string;
  /** Per-request timeout; must stay below the charge activity's start-to-close timeout. */
  timeoutMs?: number;
  logger?: Logger;
}

export class StripeGateway implements PaymentGateway {
  readonly name = 'stripe' as const;
  private readonly stripe: Stripe;
  private readonly logger?: Logger;

  constructor(secretKey: string, options: StripeGatewayOptions = {}) {
    this.stripe = new Stripe(secretKey, {
      ...hostOptions(options.apiUrl),
      timeout: options.timeoutMs ?? 20_000,
      // Temporal's retry policy is the one retry loop; the idempotency key keeps it safe.
      maxNetworkRetries: 0,
      telemetry: false,
    });
    this.logger = options.logger;
  }

  async charge(request: ChargeRequest): Promise<ChargeOutcome> {
    try {
      const intent = await this.stripe.paymentIntents.create(
        {
          amount: request.amount,
          currency: request.currency.toLowerCase(),
          payment_method: request.paymentMethod,
          confirm: true,
          off_session: true,
          description: request.description,
          metadata: { ...request.metadata, customer_ref: request.customerRef },
        },
        { idempotencyKey: request.idempotencyKey },
      );
      return chargeOutcomeFromIntent(intent);
    } catch (error) {
      const outcome = chargeOutcomeFromStripeError(error);
      this.logger?.warn(
        { gatewayPaymentId: outcome.gatewayPaymentId, failureCode: outcome.failureCode, stripeCode: stripeCode(error) },
        'stripe declined the charge',
      );
      return outcome;
    }
  }

  async refund(request: RefundRequest): Promise<RefundOutcome> {
    try {
      const refund = await this.stripe.refunds.create(
        { payment_intent: request.gatewayPaymentId, amount: request.amount },
        { idempotencyKey: request.idempotencyKey },
      );
      return { gatewayRefundId: refund.id, status: refundStatus(refund.status) };
    } catch (error) {
      if (isRejectedRequest(error)) {
        throw new GatewayRequestRejectedError(`stripe refused the refund: ${error.message}`, error.code ?? null);
      }
      throw error;
    }
  }

  /**
   * Stripe cancels an intent only while it awaits the customer or a payment method; otherwise
   * it answers `payment_intent_unexpected_state` and the intent itself says why: succeeded
   * (the money was taken), already canceled, or still processing (wait and ask again).
   */
  async cancel(request: CancelRequest): Promise<CancelOutcome> {
    try {
      await this.stripe.paymentIntents.cancel(request.gatewayPaymentId, {}, { idempotencyKey: request.idempotencyKey });
      return { status: 'canceled' };
    } catch (error) {
      if (stripeCode(error) !== 'payment_intent_unexpected_state') {
        if (isRejectedRequest(error)) {
          throw new GatewayRequestRejectedError(`stripe refused the cancel: ${error.message}`, error.code ?? null);
        }
        throw error;
      }
    }
    const intent = await this.stripe.paymentIntents.retrieve(request.gatewayPaymentId);
    const outcome = cancelOutcomeOfUncancelableIntent(intent);
    if (outcome) return outcome;
    // Cancelable again (a processing attempt failed since): the key's saved answer is stale.
    this.logger?.info({ gatewayPaymentId: intent.id, status: intent.status }, 'cancel refused earlier; canceling again');
    await this.stripe.paymentIntents.cancel(intent.id, {}, { idempotencyKey: `${request.idempotencyKey}/${intent.status}` });
    return { status: 'canceled' };
  }
}

/** A pending charge that cannot be canceled yet: asking again later is the only way on. */
export class PaymentStillProcessingError extends Error {
  override readonly name = 'PaymentStillProcessingError';
  constructor(readonly gatewayPaymentId: string) {
    super(`payment ${gatewayPaymentId} is still processing and cannot be canceled yet`);
  }
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

function hostOptions(apiUrl: string | undefined): Pick<Stripe.StripeConfig, 'host' | 'port' | 'protocol'> {
  if (!apiUrl) return {};
  const url = new URL(apiUrl);
  const protocol = url.protocol === 'http:' ? 'http' : 'https';
  return { host: url.hostname, port: url.port || (protocol === 'http' ? 80 : 443), protocol };
}

/** Maps a PaymentIntent returned by a confirming create to our outcome. */
export function chargeOutcomeFromIntent(intent: Stripe.PaymentIntent): ChargeOutcome {
  switch (intent.status) {
    case 'succeeded':
      return { status: 'succeeded', gatewayPaymentId: intent.id };
    case 'processing':
    case 'requires_capture':
      return { status: 'pending', gatewayPaymentId: intent.id, reason: 'processing' };
    case 'requires_action':
    case 'requires_confirmation':
      return { status: 'pending', gatewayPaymentId: intent.id, reason: 'requires_action' };
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
 */
export function chargeOutcomeFromStripeError(error: unknown): Extract<ChargeOutcome, { status: 'declined' }> {
  if (error instanceof Stripe.errors.StripeCardError) {
    const failureCode = error.decline_code || error.code || 'card_declined';
    return {
      status: 'declined',
      gatewayPaymentId: error.payment_intent?.id ?? null,
      decline: classifyDecline(failureCode),
      failureCode,
    };
  }
  if (isRejectedRequest(error)) {
    const failureCode = error.param === 'payment_method' || error.code === 'resource_missing' ? 'invalid_payment_method' : 'invalid_request';
    return {
      status: 'declined',
      gatewayPaymentId: error.payment_intent?.id ?? null,
      decline: classifyDecline(failureCode),
      failureCode,
    };
  }
  throw error;
}

// 409 (idempotency key in use by a concurrent request) and 429 are worth retrying; 400/404 are not.
function isRejectedRequest(error: unknown): error is Stripe.errors.StripeInvalidRequestError {
  return error instanceof Stripe.errors.StripeInvalidRequestError && (error.statusCode === 400 || error.statusCode === 404);
}

function stripeCode(error: unknown): string | undefined {
  return error instanceof Stripe.errors.StripeError ? error.code : undefined;
}

function refundStatus(status: string | null): RefundOutcome['status'] {
  if (status === 'succeeded') return 'succeeded';
  if (status === 'failed' || status === 'canceled') return 'failed';
  return 'pending';
}

// ---------------------------------------------------------------------------------------------
// Sandbox

type SandboxAnswer =
  { status: 'succeeded' } | { status: 'pending'; reason: 'requires_action' | 'processing' } | { status: 'declined'; failureCode: string };

/** Stripe's test payment methods that do not simply succeed, with Stripe's answer for each. */
const SANDBOX_ANSWERS: ReadonlyMap<string, SandboxAnswer> = new Map(
  Object.entries({
    pm_card_chargeDeclined: { status: 'declined', failureCode: 'generic_decline' },
    pm_card_chargeCustomerFail: { status: 'declined', failureCode: 'generic_decline' },
    pm_card_chargeDeclinedInsufficientFunds: { status: 'declined', failureCode: 'insufficient_funds' },
    pm_card_chargeDeclinedExpiredCard: { status: 'declined', failureCode: 'expired_card' },
    pm_card_chargeDeclinedIncorrectCvc: { status: 'declined', failureCode: 'incorrect_cvc' },
    pm_card_chargeDeclinedProcessingError: { status: 'declined', failureCode: 'processing_error' },
    pm_card_chargeDeclinedVelocityLimitExceeded: { status: 'declined', failureCode: 'card_velocity_exceeded' },
    pm_card_chargeDeclinedStolenCard: { status: 'declined', failureCode: 'stolen_card' },
    pm_card_chargeDeclinedLostCard: { status: 'declined', failureCode: 'lost_card' },
    pm_card_chargeDeclinedFraudulent: { status: 'declined', failureCode: 'fraudulent' },
    pm_card_riskLevelHighest: { status: 'declined', failureCode: 'fraudulent' },
    pm_card_authenticationRequired: { status: 'pending', reason: 'requires_action' },
    pm_card_threeDSecureRequired: { status: 'pending', reason: 'requires_action' },
    pm_card_threeDSecure2Required: { status: 'pending', reason: 'requires_action' },
  } satisfies Record<string, SandboxAnswer>),
);

/**
 * Answers like Stripe's test payment methods, with no account and no network. Any other
 * `pm_card_*` token succeeds (pm_card_visa, pm_card_mastercard, …) except unlisted
 * `pm_card_chargeDeclined*` ones (generic decline); a token that is not a test card is refused
 * like Stripe refuses an unknown payment method: a hard decline `invalid_payment_method`.
 *
 * Ids derive from the idempotency key, so a retry after a worker crash gets the same id and the
 * same outcome without the sandbox keeping any state.
 */
export class SandboxGateway implements PaymentGateway {
  readonly name = 'sandbox' as const;

  async charge(request: ChargeRequest): Promise<ChargeOutcome> {
    const answer = sandboxAnswer(request.paymentMethod);
    if (answer === null) {
      return { status: 'declined', gatewayPaymentId: null, decline: 'hard', failureCode: 'invalid_payment_method' };
    }
    const gatewayPaymentId = sandboxId('pi', request.idempotencyKey);
    switch (answer.status) {
      case 'succeeded':
        return { status: 'succeeded', gatewayPaymentId };
      case 'pending':
        return { status: 'pending', gatewayPaymentId, reason: answer.reason };
      case 'declined':
        return {
          status: 'declined',
          gatewayPaymentId,
          decline: classifyDecline(answer.failureCode),
          failureCode: answer.failureCode,
        };
    }
  }

  async refund(request: RefundRequest): Promise<RefundOutcome> {
    if (!request.gatewayPaymentId.startsWith('pi_sandbox_')) {
      throw new GatewayRequestRejectedError(`no such payment: ${request.gatewayPaymentId}`, 'resource_missing');
    }
    return { gatewayRefundId: sandboxId('re', request.idempotencyKey), status: 'succeeded' };
  }

  /**
   * Holds no state, so it cannot know whether a webhook settled the charge: every sandbox
   * payment it is asked about is canceled (a pending one, which is what callers ask about).
   */
  async cancel(request: CancelRequest): Promise<CancelOutcome> {
    if (!request.gatewayPaymentId.startsWith('pi_sandbox_')) {
      throw new GatewayRequestRejectedError(`no such payment: ${request.gatewayPaymentId}`, 'resource_missing');
    }
    return { status: 'canceled' };
  }
}

function sandboxAnswer(paymentMethod: string): SandboxAnswer | null {
  const listed = SANDBOX_ANSWERS.get(paymentMethod);
  if (listed) return listed;
  if (paymentMethod.startsWith('pm_card_chargeDeclined')) return { status: 'declined', failureCode: 'generic_decline' };
  if (/^pm_card_[A-Za-z0-9_]+$/.test(paymentMethod)) return { status: 'succeeded' };
  return null;
}

function sandboxId(prefix: 'pi' | 're', idempotencyKey: string): string {
  const digest = createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 24);
  return `${prefix}_sandbox_${digest}`;
}
