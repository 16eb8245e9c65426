import { log } from '@temporalio/workflow';
import type { NotificationInput } from '../domain/notification';
import { notify } from './activity-options';

/**
 * Delivers a notice with the NOTIFICATION preset's bounded retries, then gives up with a log
 * line: a notice never fails or undoes the business step it tells of.
 */
export async function notifyQuietly(notice: NotificationInput): Promise<void> {
  try {
    await notify(notice);
  } catch (err) {
    log.error('notification not delivered', { kind: notice.kind, dedupeKey: notice.dedupeKey, error: String(err) });
  }
}
