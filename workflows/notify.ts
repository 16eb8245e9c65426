import { log } from '@temporalio/workflow';
import type { NotificationInput } from '../domain/notification';
import { notify, notifyLocally } from './activity-options';

/**
 * Delivers a notice with the NOTIFICATION preset's bounded retries, then gives up with a log
 * line: a notice never fails or undoes the business step it tells of. `locally`: as a local
 * activity, in the workflow task that asks for it (a caller behind a patch says so).
 */
export async function notifyQuietly(notice: NotificationInput, { locally = false } = {}): Promise<void> {
  try {
    await (locally ? notifyLocally : notify)(notice);
  } catch (err) {
    log.error('notification not delivered', { kind: notice.kind, dedupeKey: notice.dedupeKey, error: String(err) });
  }
}
