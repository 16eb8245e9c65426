/**
 * How long records that hold personal data or one-off answers are kept: gateway webhook payloads
 * and idempotency records. The retention schedule deletes older ones daily.
 */
export const RETENTION_DAYS = 30;

/** Rows deleted by one purge, by table. */
export interface PurgeCounts {
  webhookEvents: number;
  idempotencyRecords: number;
}
