import { and, eq, notInArray } from 'drizzle-orm';
import { FINAL_STATUSES } from '../domain/subscription';
import type { Database } from './client';
import { subscriptions } from './schema';

/**
 * The user's subscriptions that have not ended (all, or those charging the card `charging`), as
 * their workflows: what a change of the user's cards must tell.
 */
export async function liveSubscriptionsOf(db: Database, userId: string, charging?: string): Promise<{ id: string; workflowId: string }[]> {
  return db
    .select({ id: subscriptions.id, workflowId: subscriptions.workflowId })
    .from(subscriptions)
    .where(
      and(
        eq(subscriptions.userId, userId),
        notInArray(subscriptions.status, [...FINAL_STATUSES]),
        charging === undefined ? undefined : eq(subscriptions.paymentMethod, charging),
      ),
    );
}
