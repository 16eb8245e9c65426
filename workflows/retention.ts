/**
 * The retention purge, started daily by the `retention-purge` schedule (platform/schedules.ts):
 * one activity deletes webhook events and idempotency records past their retention.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { RetentionActivities } from '../activities/retention';
import { RETENTION_DAYS, type PurgeCounts } from '../domain/retention';

const { purgeExpiredRecords } = proxyActivities<RetentionActivities>({
  // Batched deletes of a day's rows; retried until the database takes them (each batch is safe to repeat).
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '10 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes' },
});

export interface PurgeExpiredRecordsInput {
  /** RETENTION_DAYS when absent. */
  olderThanDays?: number;
}

export async function purgeExpiredRecordsWorkflow(input: PurgeExpiredRecordsInput = {}): Promise<PurgeCounts> {
  return purgeExpiredRecords({ olderThanDays: input.olderThanDays ?? RETENTION_DAYS });
}
