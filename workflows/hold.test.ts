import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { eq } from 'drizzle-orm';
import { createHoldActivities } from '../activities/hold';
import type { DatabaseHandle } from '../db/client';
import { holds } from '../db/schema';
import { holdWorkflowId } from '../domain/hold';
import { insertTestOffering, liveClaims } from '../test/support/booking-fixtures';
import { insertTestUser } from '../test/support/payment-fixtures';
import { uniqueTaskQueue, waitUntilClosed } from '../test/support/temporal';
import { startTimeSkippingWorker, type TimeSkippingWorker } from '../test/support/time-skipping-worker';
import { claimHoldUpdate, holdStateQuery, holdWorkflow, releaseHoldUpdate, type HoldWorkflowInput } from './hold';

const TTL_MS = 5 * 60 * 1000;

describe('hold workflow (time-skipping)', () => {
  let stack: TimeSkippingWorker;
  let env: TestWorkflowEnvironment;
  let database: DatabaseHandle;
  const taskQueue = uniqueTaskQueue('bookings');

  before(async () => {
    stack = await startTimeSkippingWorker({ taskQueue, activities: ({ db, redis, logger }) => createHoldActivities({ db, redis, logger }) });
    ({ env, database } = stack);
  });

  after(() => stack.close());

  async function startHold(input: Omit<HoldWorkflowInput, 'holdId' | 'ttlMs'>) {
    const holdId = randomUUID();
    const handle = await env.client.workflow.start(holdWorkflow, {
      workflowId: holdWorkflowId(holdId),
      taskQueue,
      args: [{ ...input, holdId, ttlMs: TTL_MS }],
    });
    const outcome = await handle.executeUpdate(claimHoldUpdate);
    return { holdId, handle, outcome };
  }

  test('claims the units and releases them when the TTL passes', async () => {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db);
    const unitIds = offering.unitIds.slice(0, 2);
    const { holdId, handle, outcome } = await startHold({ userId: user.id, offeringId: offering.id, unitIds });

    assert.equal(outcome.status, 'held');
    assert.deepEqual(
      (await liveClaims(database.db, unitIds)).map((c) => c.holdId),
      [holdId, holdId],
    );
    assert.equal((await handle.query(holdStateQuery)).phase, 'active');

    const startedAt = await env.currentTimeMs();
    assert.equal(await handle.result(), 'expired');
    assert.ok((await env.currentTimeMs()) - startedAt >= TTL_MS, 'released on the workflow clock, at the TTL');
    assert.deepEqual(await liveClaims(database.db, unitIds), []);
    const [row] = await database.db.select().from(holds).where(eq(holds.id, holdId));
    assert.equal(row.status, 'expired');
  });

  test('a second hold on a taken unit is refused and names it; the first is untouched', async () => {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db);
    const [a, b, c] = offering.unitIds;
    const first = await startHold({ userId: user.id, offeringId: offering.id, unitIds: [a, b] });
    const second = await startHold({ userId: user.id, offeringId: offering.id, unitIds: [b, c] });

    assert.equal(first.outcome.status, 'held');
    assert.deepEqual(second.outcome, { status: 'conflict', unavailableUnitIds: [b] });
    await waitUntilClosed(second.handle);
    assert.equal((await second.handle.query(holdStateQuery)).phase, 'conflict');
    assert.deepEqual(
      (await liveClaims(database.db, [a, b, c])).map((claim) => claim.holdId),
      [first.holdId, first.holdId],
    );
    assert.equal((await database.db.select().from(holds).where(eq(holds.id, second.holdId))).length, 0);
    await first.handle.executeUpdate(releaseHoldUpdate);
  });

  test('its owner releases it early; a second release is refused', async () => {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db);
    const unitIds = offering.unitIds.slice(0, 3);
    const { handle } = await startHold({ userId: user.id, offeringId: offering.id, unitIds });

    assert.equal(await handle.executeUpdate(releaseHoldUpdate), 'released');
    assert.deepEqual(await liveClaims(database.db, unitIds), []);
    await assert.rejects(handle.executeUpdate(releaseHoldUpdate));
    await waitUntilClosed(handle);
    assert.equal((await handle.query(holdStateQuery)).phase, 'released');

    const again = await startHold({ userId: user.id, offeringId: offering.id, unitIds });
    assert.equal(again.outcome.status, 'held', 'the released units can be held again');
    await again.handle.executeUpdate(releaseHoldUpdate);
  });

  test("a hold past the customer's limit is refused and ends, leaving nothing", async () => {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db, { maxUnitsPerCustomer: 2 });
    const first = await startHold({ userId: user.id, offeringId: offering.id, unitIds: offering.unitIds.slice(0, 2), holdsPerCustomerMax: 20 });
    assert.equal(first.outcome.status, 'held');
    // Refused at its claim, the run ends at once: it is watched through its result, since an
    // update sent after the start may arrive after the run has ended (the API sends it with the
    // start, and answers a customer already at the limit before starting anything).
    const holdId = randomUUID();
    const second = await env.client.workflow.start(holdWorkflow, {
      workflowId: holdWorkflowId(holdId),
      taskQueue,
      args: [{ userId: user.id, offeringId: offering.id, unitIds: [offering.unitIds[2]], holdsPerCustomerMax: 20, holdId, ttlMs: TTL_MS }],
    });
    assert.equal(await second.result(), 'limited');
    assert.equal((await second.query(holdStateQuery)).phase, 'limited');
    assert.equal((await database.db.select().from(holds).where(eq(holds.id, holdId))).length, 0);
    assert.deepEqual(await liveClaims(database.db, [offering.unitIds[2]]), []);
    await first.handle.executeUpdate(releaseHoldUpdate);
  });

  test('units of another offering are rejected and nothing is claimed', async () => {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db);
    const other = await insertTestOffering(database.db);
    const { handle, outcome } = await startHold({
      userId: user.id,
      offeringId: offering.id,
      unitIds: [offering.unitIds[0], other.unitIds[0]],
    });
    assert.deepEqual(outcome, { status: 'rejected', unknownUnitIds: [other.unitIds[0]] });
    await waitUntilClosed(handle);
    assert.equal((await handle.query(holdStateQuery)).phase, 'rejected');
    assert.deepEqual(await liveClaims(database.db, [offering.unitIds[0], other.unitIds[0]]), []);
  });
});
