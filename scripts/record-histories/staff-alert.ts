/** Staff alert histories: one notice delivered; two, one of them sent already. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { notifications, users } from '../../db/schema';
import { insertTestUser } from '../../test/support/payment-fixtures';
import { staffAlertWorkflow } from '../../workflows/staff-alert';
import type { Recorder, Scenario } from './recorder';
import { eq } from 'drizzle-orm';

/** A staff notice in the outbox, as the dispute webhook records it; `sent` marks it delivered already. */
async function staffNotice(r: Recorder, sent = false): Promise<string> {
  const staff = await insertTestUser(r.db);
  await r.db.update(users).set({ role: 'staff' }).where(eq(users.id, staff.id));
  const dedupeKey = `dispute/dp_recorded_${randomUUID()}/${staff.id}`;
  await r.db.insert(notifications).values({
    userId: staff.id,
    kind: 'payment_disputed',
    recipient: staff.email,
    subject: 'Dispute of $12.00',
    body: 'The customer’s bank disputes $12.00.',
    dedupeKey,
    ...(sent ? { sentAt: new Date(), attempts: 1 } : {}),
  });
  return dedupeKey;
}

async function alert(r: Recorder, file: string, dedupeKeys: string[]) {
  const workflowId = `staff-alert-${randomUUID()}`;
  const result = await r.env.client.workflow.execute(staffAlertWorkflow, { workflowId, taskQueue: r.taskQueue, args: [{ dedupeKeys }] });
  return { result, run: { file, workflowId } };
}

export const STAFF_ALERT_SCENARIOS: Record<string, Scenario> = {
  'staff-alert-one-notice': async (r) => {
    const { result, run } = await alert(r, 'staff-alert-one-notice', [await staffNotice(r)]);
    assert.deepEqual(result, { delivered: 1 });
    return [run];
  },
  'staff-alert-one-sent-already': async (r) => {
    const { result, run } = await alert(r, 'staff-alert-one-sent-already', [await staffNotice(r), await staffNotice(r, true)]);
    assert.deepEqual(result, { delivered: 2 });
    return [run];
  },
};
