import { sql, type SQL } from 'drizzle-orm';
import type { Database } from '../db/client';
import type { PurgeCounts } from '../domain/retention';
import type { Logger } from '../platform/logger';

// Small enough that a delete holds its locks briefly and never one long transaction.
const PURGE_BATCH = 1_000;

export interface RetentionActivityDeps {
  db: Database;
  logger: Logger;
}

export type RetentionActivities = ReturnType<typeof createRetentionActivities>;

export function createRetentionActivities({ db, logger }: RetentionActivityDeps) {
  /**
   * Deletes webhook events (by `received_at`) and idempotency records (by `created_at`) older
   * than `olderThanDays`, a batch per statement. Repeating it deletes only what has aged since.
   */
  async function purgeExpiredRecords({ olderThanDays }: { olderThanDays: number }): Promise<PurgeCounts> {
    if (!Number.isSafeInteger(olderThanDays) || olderThanDays < 1) throw new Error(`olderThanDays must be a positive integer, got ${olderThanDays}`);
    // By the database's clock, which wrote the timestamps.
    const cutoff = sql`now() - make_interval(days => ${olderThanDays})`;
    const webhookEvents = await deleteInBatches(
      db,
      sql`delete from webhook_events where id in (select id from webhook_events where received_at < ${cutoff} limit ${PURGE_BATCH})`,
    );
    const idempotencyRecords = await deleteInBatches(
      db,
      sql`delete from idempotency_records where ctid in (select ctid from idempotency_records where created_at < ${cutoff} limit ${PURGE_BATCH})`,
    );
    logger.info({ olderThanDays, webhookEvents, idempotencyRecords }, 'expired records purged');
    return { webhookEvents, idempotencyRecords };
  }

  return { purgeExpiredRecords };
}

/** Runs a delete of at most PURGE_BATCH rows until one deletes fewer; answers how many went. */
async function deleteInBatches(db: Database, deleteBatch: SQL): Promise<number> {
  let deleted = 0;
  for (;;) {
    const result = await db.execute(deleteBatch);
    deleted += result.count;
    if (result.count < PURGE_BATCH) return deleted;
  }
}
