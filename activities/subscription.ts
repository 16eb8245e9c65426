import type { Database } from '../db/client';
import { subscriptions } from '../db/schema';
import type { SubscriptionProjection } from '../domain/subscription-state';
import type { Logger } from '../platform/logger';

export type { SubscriptionProjection } from '../domain/subscription-state';

export interface SubscriptionActivityDeps {
  db: Database;
  logger: Logger;
}

export type SubscriptionActivities = ReturnType<typeof createSubscriptionActivities>;

export function createSubscriptionActivities({ db, logger }: SubscriptionActivityDeps) {
  /**
   * Writes the whole row (insert on first sight, overwrite after), so a retried or repeated
   * call leaves the same row. The workflow calls it one at a time, in order.
   */
  async function recordSubscription(projection: SubscriptionProjection): Promise<void> {
    const { subscriptionId, ...fields } = projection;
    const row = {
      ...fields,
      anchorDate: new Date(fields.anchorDate),
      currentPeriodStart: toDate(fields.currentPeriodStart),
      currentPeriodEnd: toDate(fields.currentPeriodEnd),
      nextBillingDate: toDate(fields.nextBillingDate),
      trialEnd: toDate(fields.trialEnd),
      canceledAt: toDate(fields.canceledAt),
      graceEndsAt: toDate(fields.graceEndsAt),
      pauseAt: toDate(fields.pauseAt),
      pausedAt: toDate(fields.pausedAt),
      resumesAt: toDate(fields.resumesAt),
    };
    await db
      .insert(subscriptions)
      .values({ id: subscriptionId, ...row })
      .onConflictDoUpdate({ target: subscriptions.id, set: { ...row, updatedAt: new Date() } });
    logger.debug({ subscriptionId, status: projection.status, cycle: projection.cycle }, 'subscription projected');
  }

  return { recordSubscription };
}

function toDate(iso: string | null): Date | null {
  return iso === null ? null : new Date(iso);
}
