import type { Database } from '../db/client';
import { subscriptions } from '../db/schema';
import type { SubscriptionStatus } from '../domain/subscription';
import type { Logger } from '../platform/logger';

/**
 * A subscription's row as its workflow sees it. The workflow is the authority; this row is a
 * projection for listing, reporting and support. Dates are ISO-8601 strings (workflow payloads are JSON).
 */
export interface SubscriptionProjection {
  subscriptionId: string;
  userId: string;
  planId: string;
  workflowId: string;
  status: SubscriptionStatus;
  paymentMethod: string;
  anchorDate: string;
  cycle: number;
  currentPeriodStart: string | null;
  currentPeriodEnd: string | null;
  nextBillingDate: string | null;
  trialEnd: string | null;
  cancelAtPeriodEnd: boolean;
  canceledAt: string | null;
  graceEndsAt: string | null;
  attemptCount: number;
}

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
