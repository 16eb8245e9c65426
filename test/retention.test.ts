import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { inArray, sql } from 'drizzle-orm';
import { createRetentionActivities } from '../activities/retention';
import { idempotencyRecords, webhookEvents } from '../db/schema';
import { ensureRetentionSchedule, RETENTION_SCHEDULE_ID } from '../platform/schedules';
import { createTestUser } from './support/api';
import { startPaymentStack, type PaymentStack } from './support/payment-fixtures';

let stack: PaymentStack;

before(async () => {
  stack = await startPaymentStack();
});

after(() => stack?.close());

test('purgeExpiredRecords deletes webhook events and idempotency records older than the retention, and only those', async () => {
  const { db, logger } = stack.deps;
  const user = await createTestUser(stack.deps);
  const old = sql`now() - interval '31 days'`;
  const recent = sql`now() - interval '29 days'`;
  const events = { old: `evt_old_${randomUUID()}`, recent: `evt_recent_${randomUUID()}` };
  await db.insert(webhookEvents).values([
    { id: events.old, type: 'test', payload: {}, receivedAt: old },
    { id: events.recent, type: 'test', payload: {}, receivedAt: recent },
  ]);
  const keys = { old: `old-${randomUUID()}`, recent: `recent-${randomUUID()}` };
  await db.insert(idempotencyRecords).values([
    { userId: user.user.id, key: keys.old, route: 'test', requestHash: 'x', createdAt: old },
    { userId: user.user.id, key: keys.recent, route: 'test', requestHash: 'x', createdAt: recent },
  ]);

  const { purgeExpiredRecords } = createRetentionActivities({ db, logger });
  const counts = await purgeExpiredRecords({ olderThanDays: 30 });
  // Other test files may have left old rows too; ours are among those counted.
  assert.ok(counts.webhookEvents >= 1 && counts.idempotencyRecords >= 1, JSON.stringify(counts));
  const eventsLeft = await db
    .select({ id: webhookEvents.id })
    .from(webhookEvents)
    .where(inArray(webhookEvents.id, Object.values(events)));
  assert.deepEqual(
    eventsLeft.map((e) => e.id),
    [events.recent],
  );
  const keysLeft = await db
    .select({ key: idempotencyRecords.key })
    .from(idempotencyRecords)
    .where(inArray(idempotencyRecords.key, Object.values(keys)));
  assert.deepEqual(
    keysLeft.map((k) => k.key),
    [keys.recent],
  );
  assert.deepEqual(await purgeExpiredRecords({ olderThanDays: 30 }), { webhookEvents: 0, idempotencyRecords: 0 });
});

test('the retention schedule is created once: daily, skipping overlaps, starting the purge workflow', async () => {
  const client = stack.deps.temporal;
  const options = { taskQueue: stack.deps.taskQueues!.billing, workflowType: 'purgeExpiredRecordsWorkflow', args: [{ olderThanDays: 30 }] };
  await client.schedule
    .getHandle(RETENTION_SCHEDULE_ID)
    .delete()
    .catch(() => undefined);
  try {
    assert.equal(await ensureRetentionSchedule(client, options), true);
    assert.equal(await ensureRetentionSchedule(client, options), false, 'an existing schedule is left as it is');
    const described = await client.schedule.getHandle(RETENTION_SCHEDULE_ID).describe();
    assert.equal(described.policies.overlap, 'SKIP');
    assert.deepEqual(
      described.spec.intervals?.map((i) => i.every),
      [86_400_000],
    );
    assert.equal(described.action.type, 'startWorkflow');
    if (described.action.type === 'startWorkflow') {
      assert.equal(described.action.workflowType, 'purgeExpiredRecordsWorkflow');
      assert.equal(described.action.taskQueue, options.taskQueue);
    }
  } finally {
    await client.schedule.getHandle(RETENTION_SCHEDULE_ID).delete();
  }
});
