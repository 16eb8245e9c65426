import type { Database } from '../../db/client';
import type { PaymentGateway } from '../../domain/payment';
import type { Config } from '../../platform/config';
import type { Logger } from '../../platform/logger';
import { SandboxGateway } from './sandbox';
import { StripeGateway } from './stripe';

export { SandboxGateway, SandboxIntentStateError } from './sandbox';
export { StripeGateway, type StripeGatewayOptions } from './stripe';
export { PaymentStillProcessingError } from './stripe-answers';

export type GatewayConfig = Pick<Config, 'PAYMENT_GATEWAY' | 'STRIPE_SECRET_KEY' | 'STRIPE_API_URL'>;

/**
 * The gateway PAYMENT_GATEWAY names: Stripe, or the sandbox that keeps Stripe's records in our
 * own PostgreSQL (so it needs the database). Config validation refuses stripe without a key.
 */
export function createPaymentGateway(config: GatewayConfig, deps: { db: Database; logger?: Logger }): PaymentGateway {
  if (config.PAYMENT_GATEWAY === 'stripe') {
    if (!config.STRIPE_SECRET_KEY) throw new Error('PAYMENT_GATEWAY=stripe needs STRIPE_SECRET_KEY');
    return new StripeGateway(config.STRIPE_SECRET_KEY, { apiUrl: config.STRIPE_API_URL, logger: deps.logger });
  }
  deps.logger?.info('PAYMENT_GATEWAY=sandbox: payments go to the sandbox gateway, no money moves');
  return new SandboxGateway(deps.db);
}
