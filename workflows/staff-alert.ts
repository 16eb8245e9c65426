/**
 * Tells staff of something that needs a person (a dispute opened by a customer's bank): the
 * notices are recorded in the outbox with the event that caused them, and this workflow delivers
 * each one with the NOTIFICATION preset's retries. Started by the payment webhook as
 * `staff-alert-<event>`, never twice, so each staff member gets one email however often the
 * gateway repeats the event.
 */
import { log } from '@temporalio/workflow';
import { deliverNotification } from './activity-options';

export interface StaffAlertInput {
  /** The outbox rows to deliver, one per staff member. */
  dedupeKeys: string[];
}

/** Answers how many of the notices were delivered (a notice that still fails is logged and dropped). */
export async function staffAlertWorkflow({ dedupeKeys }: StaffAlertInput): Promise<{ delivered: number }> {
  const results = await Promise.allSettled(dedupeKeys.map((dedupeKey) => deliverNotification({ dedupeKey })));
  results.forEach((result, i) => {
    if (result.status === 'rejected') log.error('staff notice not delivered', { dedupeKey: dedupeKeys[i], error: String(result.reason) });
  });
  return { delivered: results.filter((r) => r.status === 'fulfilled').length };
}
