import type { Redis } from 'ioredis';
import type { Database } from '../db/client';
import type { Mailer } from '../domain/notification';
import type { PaymentGateway } from '../domain/payment';
import type { Logger } from '../workers/logger';
import { createBookingActivities } from './booking';
import { createHoldActivities } from './hold';
import { createNotificationActivities } from './notification';
import { createPaymentActivities } from './payment';
import { createSubscriptionActivities } from './subscription';

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
  };
}

export type Activities = ReturnType<typeof createActivities>;
