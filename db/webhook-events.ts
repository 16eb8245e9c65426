import { and, eq, sql } from 'drizzle-orm';
import type { Database } from './client';
import { webhookEvents } from './schema';

/**
 * The `webhook_events` rows: each gateway event recorded once as `received`, then marked
 * `processed` or `ignored` once acted on. No transaction spans the acting (Temporal calls,
 * gateway calls): each read and write here is a statement of its own.
 */
export type WebhookEventRow = typeof webhookEvents.$inferSelect;

/** How acting on an event ended; `ignored` says why nothing was done. */
export type WebhookOutcome = { outcome: 'processed' } | { outcome: 'ignored'; reason: string };

/**
 * Set on a row still `received` whose last attempt failed (Temporal unreachable, the payment not
 * recorded yet): the next delivery acts on it at once instead of waiting for a delivery in flight.
 */
export const ATTEMPT_FAILED_REASON = 'attempt_failed';

/** Where a delivery finds an event: new to us (`inserted`), or as an earlier delivery left it. */
export interface RecordedEvent {
  inserted: boolean;
  outcome: WebhookEventRow['outcome'];
  reason: string | null;
  /** Received so recently (by the database's clock) that a delivery may still be acting on it. */
  recent: boolean;
}

/** Inserts the event as `received` unless it is known; answers where it stands. */
export async function recordWebhookEvent(db: Database, event: { id: string; type: string }, recentMs: number): Promise<RecordedEvent> {
  const inserted = await db
    .insert(webhookEvents)
    .values({ id: event.id, type: event.type, payload: event, outcome: 'received' })
    .onConflictDoNothing()
    .returning({ id: webhookEvents.id });
  if (inserted.length > 0) return { inserted: true, outcome: 'received', reason: null, recent: true };
  const known = await webhookEventState(db, event.id, recentMs);
  if (!known) throw new Error(`webhook event ${event.id} is neither new nor recorded`);
  return known;
}

/** The recorded event's outcome now, or undefined when it has no row (deleted by retention meanwhile). */
export async function webhookEventState(db: Database, id: string, recentMs: number): Promise<RecordedEvent | undefined> {
  const [row] = await db
    .select({
      outcome: webhookEvents.outcome,
      reason: webhookEvents.reason,
      recent: sql<boolean>`${webhookEvents.receivedAt} > now() - make_interval(secs => ${recentMs / 1000})`,
    })
    .from(webhookEvents)
    .where(eq(webhookEvents.id, id));
  return row && { inserted: false, ...row };
}

/** Marks a `received` event acted on; an event already marked keeps its first outcome. */
export async function markWebhookEvent(db: Database, id: string, outcome: WebhookOutcome): Promise<void> {
  await db
    .update(webhookEvents)
    .set({ outcome: outcome.outcome, reason: outcome.outcome === 'ignored' ? outcome.reason : null, processedAt: sql`now()` })
    .where(and(eq(webhookEvents.id, id), eq(webhookEvents.outcome, 'received')));
}

/** Leaves the event `received` for the gateway's retry, noting that this attempt failed. */
export async function markWebhookAttemptFailed(db: Database, id: string): Promise<void> {
  await db
    .update(webhookEvents)
    .set({ reason: ATTEMPT_FAILED_REASON })
    .where(and(eq(webhookEvents.id, id), eq(webhookEvents.outcome, 'received')));
}
