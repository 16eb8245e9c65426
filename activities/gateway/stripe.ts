import Stripe from 'stripe';
import type { Logger } from '../../platform/logger';
import {
  GatewayRequestRejectedError,
  type CancelOutcome,
  type CancelRequest,
  type ChargeOutcome,
  type ChargeRequest,
  type CustomerRequest,
  type PaymentGateway,
  type RefundOutcome,
  type RefundRequest,
  type SavedCard,
  type SetupIntentOutcome,
  type SetupIntentRequest,
} from '../../domain/payment';
import {
  cancelOutcomeOfUncancelableIntent,
  chargeOutcomeFromIntent,
  chargeOutcomeFromStripeError,
  isRejectedRequest,
  refundStatus,
  savedCardOf,
  stripeCode,
} from './stripe-answers';

export interface StripeGatewayOptions {
  /** Overrides Stripe's host, port and protocol (stripe-mock in tests). */
  apiUrl?: string;
  /** Per-request timeout; must stay below the charge activity's start-to-close timeout. */
  timeoutMs?: number;
  logger?: Logger;
}

/** A Stripe account: every money step carries our idempotency key, so a retried activity is one charge. */
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

  async createCustomer(request: CustomerRequest): Promise<{ customerId: string }> {
    const customer = await this.rejecting('customer creation', () =>
      this.stripe.customers.create(
        { email: request.email, name: request.name, metadata: { user_id: request.userId } },
        { idempotencyKey: request.idempotencyKey },
      ),
    );
    return { customerId: customer.id };
  }

  /** Cards only, saved for off-session charges (renewals); the customer's app confirms it with Stripe.js. */
  async createSetupIntent(request: SetupIntentRequest): Promise<SetupIntentOutcome> {
    const intent = await this.rejecting('setup intent', () =>
      this.stripe.setupIntents.create(
        { customer: request.customerId, usage: 'off_session', allowed_payment_method_types: ['card'] },
        { idempotencyKey: request.idempotencyKey },
      ),
    );
    if (!intent.client_secret) throw new Error(`stripe returned setup intent ${intent.id} without a client secret`);
    return { id: intent.id, clientSecret: intent.client_secret, status: intent.status };
  }

  /**
   * Attaching is idempotent by itself: Stripe returns a method already attached to this customer
   * unchanged, and refuses one attached to another customer or used up (400, rejected here).
   */
  async attachPaymentMethod(request: { customerId: string; paymentMethod: string }): Promise<SavedCard> {
    const method = await this.rejecting('attach', () => this.stripe.paymentMethods.attach(request.paymentMethod, { customer: request.customerId }));
    return cardOrRejected(method);
  }

  /** Stripe refuses to detach a method attached to no customer: already detached is done. */
  async detachPaymentMethod(request: { paymentMethod: string }): Promise<void> {
    try {
      await this.stripe.paymentMethods.detach(request.paymentMethod);
    } catch (error) {
      if (!isRejectedRequest(error) || error.code === 'resource_missing') throw rejectedOr(error, 'detach');
      const method = await this.stripe.paymentMethods.retrieve(request.paymentMethod);
      if (method.customer !== null) throw rejectedOr(error, 'detach');
    }
  }

  async retrievePaymentMethod(paymentMethod: string): Promise<SavedCard> {
    return cardOrRejected(await this.rejecting('retrieve', () => this.stripe.paymentMethods.retrieve(paymentMethod)));
  }

  /**
   * Cards only (`allowed_payment_method_types`, the name since API version 2026-10-28 that this
   * client pins; `payment_method_types` is refused there): no method that needs a return URL.
   * On session the customer is present: Stripe may ask them to authenticate and saves the card
   * for later charges (`setup_future_usage`). Off session nobody is: `off_session` asks Stripe to
   * charge without them. Stripe refuses the two together.
   */
  async charge(request: ChargeRequest): Promise<ChargeOutcome> {
    try {
      const intent = await this.stripe.paymentIntents.create(
        {
          amount: request.amount,
          currency: request.currency.toLowerCase(),
          customer: request.customerId,
          payment_method: request.paymentMethod,
          confirm: true,
          allowed_payment_method_types: ['card'],
          description: request.description,
          metadata: { ...request.metadata, customer_ref: request.customerRef },
          ...(request.session === 'off_session' ? { off_session: true } : { setup_future_usage: 'off_session' as const }),
        },
        { idempotencyKey: request.idempotencyKey },
      );
      return chargeOutcomeFromIntent(intent);
    } catch (error) {
      const outcome = chargeOutcomeFromStripeError(error);
      this.logger?.warn(
        { gatewayPaymentId: outcome.gatewayPaymentId, outcome: outcome.status, stripeCode: stripeCode(error) },
        'stripe did not take the charge',
      );
      return outcome;
    }
  }

  async refund(request: RefundRequest): Promise<RefundOutcome> {
    const refund = await this.rejecting('refund', () =>
      this.stripe.refunds.create({ payment_intent: request.gatewayPaymentId, amount: request.amount }, { idempotencyKey: request.idempotencyKey }),
    );
    return { gatewayRefundId: refund.id, status: refundStatus(refund.status) };
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
      if (stripeCode(error) !== 'payment_intent_unexpected_state') throw rejectedOr(error, 'cancel');
    }
    const intent = await this.stripe.paymentIntents.retrieve(request.gatewayPaymentId);
    const outcome = cancelOutcomeOfUncancelableIntent(intent);
    if (outcome) return outcome;
    // Cancelable again (a processing attempt failed since): the key's saved answer is stale.
    this.logger?.info({ gatewayPaymentId: intent.id, status: intent.status }, 'cancel refused earlier; canceling again');
    await this.stripe.paymentIntents.cancel(intent.id, {}, { idempotencyKey: `${request.idempotencyKey}/${intent.status}` });
    return { status: 'canceled' };
  }

  /** Runs a Stripe call whose refusal (400/404) cannot be helped by retrying: it becomes GatewayRequestRejectedError. */
  private async rejecting<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw rejectedOr(error, what);
    }
  }
}

/** A refusal as GatewayRequestRejectedError (workflows do not retry it); any other error unchanged. */
function rejectedOr(error: unknown, what: string): unknown {
  if (isRejectedRequest(error)) return new GatewayRequestRejectedError(`stripe refused the ${what}: ${error.message}`, error.code ?? null);
  return error;
}

function cardOrRejected(method: Stripe.PaymentMethod): SavedCard {
  const card = savedCardOf(method);
  if (!card) throw new GatewayRequestRejectedError(`payment method ${method.id} is a ${method.type}, not a card`, 'payment_method_not_card');
  return card;
}

function hostOptions(apiUrl: string | undefined): Pick<Stripe.StripeConfig, 'host' | 'port' | 'protocol'> {
  if (!apiUrl) return {};
  const url = new URL(apiUrl);
  const protocol = url.protocol === 'http:' ? 'http' : 'https';
  return { host: url.hostname, port: url.port || (protocol === 'http' ? 80 : 443), protocol };
}
