import type { Database } from '../db/client';
import type { Mailer } from '../domain/notification';
import type { PaymentGateway } from '../domain/payment';
import type { Logger } from '../workers/logger';
import { createNotificationActivities } from './notification';
import { createPaymentActivities } from './payment';
import { createSubscriptionActivities } from './subscription';

export interface ActivityDeps {
  db: Database;
  gateway: PaymentGateway;
  mailer: Mailer;
  logger: Logger;
}

/** Every activity the workers register, built from real dependencies (tests pass loopback ones). */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createSubscriptionActivities(deps),
    ...createPaymentActivities(deps),
    ...createNotificationActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
