/** Retention purge histories: one with nothing to delete, one that deletes an expired event. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { webhookEvents } from '../../db/schema';
import { purgeExpiredRecordsWorkflow } from '../../workflows/retention';
import type { Recorder, Scenario } from './recorder';

async function purge(r: Recorder, file: string) {
  const workflowId = `retention-purge-${randomUUID()}`;
  const counts = await r.env.client.workflow.execute(purgeExpiredRecordsWorkflow, {
    workflowId,
    taskQueue: r.taskQueue,
    args: [{ olderThanDays: 30 }],
  });
  return { counts, run: { file, workflowId } };
}

export const RETENTION_SCENARIOS: Record<string, Scenario> = {
  'retention-purge-expired': async (r) => {
    await r.db.insert(webhookEvents).values({ id: `evt_${randomUUID()}`, type: 'test', payload: {}, receivedAt: sql`now() - interval '40 days'` });
    const { counts, run } = await purge(r, 'retention-purge-expired');
    assert.ok(counts.webhookEvents >= 1);
    return [run];
  },
  'retention-purge-nothing': async (r) => {
    await purge(r, 'retention-purge-first');
    const { counts, run } = await purge(r, 'retention-purge-nothing');
    assert.deepEqual(counts, { webhookEvents: 0, idempotencyRecords: 0 });
    return [run];
  },
};
