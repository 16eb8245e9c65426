import type { Redis } from 'ioredis';
import type { Database } from '../db/client';
import type { Mailer } from '../domain/notification';
import type { PaymentGateway } from '../domain/payment';
import type { Config } from '../platform/config';
import type { Logger } from '../platform/logger';
import { createBookingActivities } from './booking';
import { createCouponActivities } from './coupon';
import { createCreditActivities } from './credits';
import { createHoldActivities } from './hold';
import { createInvoiceActivities } from './invoice';
import { createMailer, createNotificationActivities } from './notification';
import { createOfferingActivities } from './offering';
import { createPaymentActivities } from './payment';
import { createPaymentGateway } from './gateway';
import { createReferralActivities } from './referral';
import { createRetentionActivities } from './retention';
import { createSubscriptionActivities } from './subscription';
import { createWaitlistActivities } from './waitlist';

export interface ActivityDeps {
  db: Database;
  gateway: PaymentGateway;
  mailer: Mailer;
  logger: Logger;
  /** The holds' fast gate and live-availability events; without it holds go to PostgreSQL alone. */
  redis?: Redis;
}

/** Every activity the workers register, built from real dependencies (tests pass loopback ones). */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createSubscriptionActivities(deps),
    ...createPaymentActivities(deps),
    ...createNotificationActivities(deps),
    ...createHoldActivities(deps),
    ...createBookingActivities(deps),
    ...createOfferingActivities(deps),
    ...createCreditActivities(deps),
    ...createInvoiceActivities(deps),
    ...createCouponActivities(deps),
    ...createReferralActivities(deps),
    ...createRetentionActivities(deps),
    ...createWaitlistActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;

type WiringConfig = Pick<Config, 'PAYMENT_GATEWAY' | 'STRIPE_SECRET_KEY' | 'STRIPE_API_URL' | 'SMTP_URL' | 'MAIL_FROM'>;

/**
 * The activities wired as the worker process wires them: the gateway and the mailer chosen by the
 * configuration (Stripe or the sandbox, SMTP or the log). The bench, scripts and tests use it too,
 * passing a `gateway` or `mailer` of their own only where they record or script its answers.
 */
export function activitiesFromConfig(
  config: WiringConfig,
  deps: Omit<ActivityDeps, 'gateway' | 'mailer'> & Partial<Pick<ActivityDeps, 'gateway' | 'mailer'>>,
): Activities {
  return createActivities({
    ...deps,
    gateway: deps.gateway ?? createPaymentGateway(config, { db: deps.db, logger: deps.logger }),
    mailer: deps.mailer ?? createMailer(config, deps.logger),
  });
}
