import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import { connectDatabase, migrateDatabase, type DatabaseHandle } from '../db/client';
import { subscriptions } from '../db/schema';
import { insertTestUser } from '../test/support/payment-fixtures';
import { insertTestPlan } from '../test/support/subscription-fixtures';
import { createLogger } from '../platform/logger';
import { createSubscriptionActivities, type SubscriptionProjection } from './subscription';

let database: DatabaseHandle;
let activities: ReturnType<typeof createSubscriptionActivities>;

before(async () => {
  await migrateDatabase(process.env.DATABASE_URL!);
  database = connectDatabase(process.env.DATABASE_URL!, { max: 2 });
  activities = createSubscriptionActivities({ db: database.db, logger: createLogger({ LOG_LEVEL: 'silent', NODE_ENV: 'test' }) });
});

after(() => database.close());

async function projection(): Promise<SubscriptionProjection> {
  const user = await insertTestUser(database.db);
  const plan = await insertTestPlan(database.db);
  const subscriptionId = randomUUID();
  return {
    subscriptionId,
    userId: user.id,
    planId: plan.planId,
    workflowId: `subscription-${subscriptionId}`,
    status: 'incomplete',
    paymentMethod: 'pm_card_visa',
    anchorDate: '2025-01-31T09:00:00.000Z',
    cycle: 0,
    currentPeriodStart: null,
    currentPeriodEnd: null,
    nextBillingDate: null,
    trialEnd: null,
    cancelAtPeriodEnd: false,
    canceledAt: null,
    graceEndsAt: null,
    attemptCount: 0,
    quantity: 1,
    scheduledChange: null,
    pauseAt: null,
    pausedAt: null,
    resumesAt: null,
    discount: null,
  };
}

async function rowOf(id: string) {
  return database.db.select().from(subscriptions).where(eq(subscriptions.id, id));
}

describe('recordSubscription', () => {
  test('inserts the row on first sight', async () => {
    const p = await projection();
    await activities.recordSubscription(p);
    const [row] = await rowOf(p.subscriptionId);
    assert.deepEqual(
      [row.status, row.userId, row.planId, row.workflowId, row.anchorDate.toISOString(), row.nextBillingDate],
      ['incomplete', p.userId, p.planId, p.workflowId, p.anchorDate, null],
    );
  });

  test('overwrites it with the newer state, dates included, and a repeat changes nothing', async () => {
    const p = await projection();
    await activities.recordSubscription(p);
    const pastDue: SubscriptionProjection = {
      ...p,
      status: 'past_due',
      cycle: 1,
      currentPeriodStart: '2025-02-28T09:00:00.000Z',
      currentPeriodEnd: '2025-03-31T09:00:00.000Z',
      graceEndsAt: '2025-03-07T09:00:00.000Z',
      attemptCount: 2,
    };
    await activities.recordSubscription(pastDue);
    await activities.recordSubscription(pastDue);

    const rows = await rowOf(p.subscriptionId);
    assert.equal(rows.length, 1);
    const [row] = rows;
    assert.deepEqual(
      [
        row.status,
        row.cycle,
        row.currentPeriodStart?.toISOString(),
        row.currentPeriodEnd?.toISOString(),
        row.graceEndsAt?.toISOString(),
        row.attemptCount,
      ],
      ['past_due', 1, pastDue.currentPeriodStart, pastDue.currentPeriodEnd, pastDue.graceEndsAt, 2],
    );
  });

  test('clears dates the workflow no longer has', async () => {
    const p = await projection();
    await activities.recordSubscription({ ...p, status: 'past_due', graceEndsAt: '2025-03-07T09:00:00.000Z', attemptCount: 3 });
    await activities.recordSubscription({ ...p, status: 'active', cycle: 2, nextBillingDate: '2025-04-30T09:00:00.000Z' });
    const [row] = await rowOf(p.subscriptionId);
    assert.deepEqual(
      [row.status, row.graceEndsAt, row.attemptCount, row.nextBillingDate?.toISOString()],
      ['active', null, 0, '2025-04-30T09:00:00.000Z'],
    );
  });
});
