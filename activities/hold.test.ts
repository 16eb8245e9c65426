import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { connectDatabase, migrateDatabase, type DatabaseHandle } from '../db/client';
import { holds, offerings } from '../db/schema';
import { unitEventsChannel, type UnitStatusEvent } from '../domain/hold';
import { insertTestOffering, liveClaims } from '../test/support/booking-fixtures';
import { insertTestUser } from '../test/support/payment-fixtures';
import { createLogger } from '../platform/logger';
import { admitHoldRequest, createUnitGate, holdGateOwner, PROVISIONAL_GATE_MS } from '../availability/unit-gate';
import { parseLiveMessage } from '../availability/unit-event-log';
import { createHoldActivities, type ClaimUnitsInput } from './hold';

const logger = createLogger({ LOG_LEVEL: 'silent', NODE_ENV: 'test' });

describe('hold activities (PostgreSQL + Redis)', () => {
  let database: DatabaseHandle;
  let redis: Redis;
  let activities: ReturnType<typeof createHoldActivities>;

  before(async () => {
    await migrateDatabase(process.env.DATABASE_URL!);
    database = connectDatabase(process.env.DATABASE_URL!, { max: 10 });
    redis = new Redis(process.env.REDIS_URL!);
    activities = createHoldActivities({ db: database.db, redis, logger });
  });

  after(async () => {
    await redis.quit();
    await database.close();
  });

  async function claimInput(unitCount = 3): Promise<ClaimUnitsInput & { allUnitIds: string[] }> {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db, { unitCount: 6 });
    const holdId = randomUUID();
    return {
      holdId,
      userId: user.id,
      offeringId: offering.id,
      unitIds: offering.unitIds.slice(0, unitCount),
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
      workflowId: `hold-${holdId}`,
      allUnitIds: offering.unitIds,
    };
  }

  test('a retried claim whose first attempt committed answers the same hold', async () => {
    const input = await claimInput();
    const first = await activities.claimUnits(input);
    const retried = await activities.claimUnits(input);
    assert.equal(first.status, 'held');
    assert.deepEqual(retried, first);
    assert.equal((await liveClaims(database.db, input.unitIds)).length, 3);
  });

  test('a claim on an offering the business canceled is refused and leaves nothing behind', async () => {
    const input = await claimInput();
    await database.db.update(offerings).set({ status: 'canceled' }).where(eq(offerings.id, input.offeringId));
    assert.deepEqual(await activities.claimUnits(input), { status: 'closed', reason: 'the offering was canceled' });
    assert.deepEqual(await database.db.select().from(holds).where(eq(holds.id, input.holdId)), []);
    assert.deepEqual(await liveClaims(database.db, input.unitIds), []);
  });

  test('overlapping claims in any order: each unit once, no deadlock, losers leave nothing behind', async () => {
    const base = await claimInput();
    // Half the requests list the units backwards, so overlapping claims meet in opposite orders.
    const sets = Array.from({ length: 40 }, (_, i) => {
      const ids = i % 2 === 0 ? base.allUnitIds : [...base.allUnitIds].reverse();
      return ids.slice(i % 3, (i % 3) + 2 + (i % 3));
    });
    const outcomes = await Promise.all(
      sets.map((unitIds) => {
        const holdId = randomUUID();
        return activities.claimUnits({ ...base, holdId, workflowId: `hold-${holdId}`, unitIds });
      }),
    );
    const held = outcomes.flatMap((o) => (o.status === 'held' ? [o.hold] : []));
    const claims = await liveClaims(database.db, base.allUnitIds);
    assert.equal(claims.length, new Set(claims.map((c) => c.unitId)).size, 'one live claim per unit');
    assert.equal(
      claims.length,
      held.reduce((n, h) => n + h.unitIds.length, 0),
    );
    for (const outcome of outcomes) if (outcome.status === 'conflict') assert.ok(outcome.unavailableUnitIds.length > 0);
  });

  test('a Redis key left behind by a crash does not block a free unit', async () => {
    const input = await claimInput(1);
    const gate = createUnitGate(redis, logger);
    // Someone else's key, long-lived, with no claim in PostgreSQL behind it.
    assert.deepEqual(await gate.acquire(input.offeringId, input.unitIds, holdGateOwner(randomUUID()), 600_000), { status: 'acquired' });
    const outcome = await activities.claimUnits(input);
    assert.equal(outcome.status, 'held');
  });

  test('releasing frees the units, ends the hold once, and publishes the change', async () => {
    const input = await claimInput(2);
    await activities.claimUnits(input);
    const subscriber = redis.duplicate();
    const received = new Promise<UnitStatusEvent>((resolve) =>
      subscriber.on('message', (_channel, message) => resolve(JSON.parse(parseLiveMessage(message)!.data) as UnitStatusEvent)),
    );
    await subscriber.subscribe(unitEventsChannel(input.offeringId));

    assert.equal(await activities.releaseHold({ holdId: input.holdId, reason: 'expired' }), 'expired');
    assert.equal(await activities.releaseHold({ holdId: input.holdId, reason: 'released' }), 'expired', 'a second release changes nothing');
    assert.deepEqual(await liveClaims(database.db, input.unitIds), []);
    assert.equal((await database.db.select().from(holds).where(eq(holds.id, input.holdId)))[0].status, 'expired');
    const event = await received;
    assert.deepEqual(
      event.units.map((u) => u.status),
      ['available', 'available'],
    );
    await subscriber.quit();
    assert.equal(await activities.releaseHold({ holdId: randomUUID(), reason: 'released' }), null, 'a hold never claimed');
  });

  describe('fair-use limits', () => {
    test('a claim past maxUnitsPerCustomer is refused, writes nothing and gives its gate keys back', async () => {
      const user = await insertTestUser(database.db);
      const offering = await insertTestOffering(database.db, { unitCount: 6, maxUnitsPerCustomer: 3 });
      const claim = (unitIds: string[]) => {
        const holdId = randomUUID();
        return activities.claimUnits({
          holdId,
          userId: user.id,
          offeringId: offering.id,
          unitIds,
          expiresAt: new Date(Date.now() + 60_000).toISOString(),
          workflowId: `hold-${holdId}`,
          holdsPerCustomerMax: 20,
        });
      };
      assert.equal((await claim(offering.unitIds.slice(0, 2))).status, 'held');
      const refused = await claim(offering.unitIds.slice(2, 4));
      assert.deepEqual(refused.status === 'limited' && refused.refusal, {
        limit: 'maxUnitsPerCustomer',
        max: 3,
        current: 2,
        detail: 'maxUnitsPerCustomer: at most 3 units of this offering per customer (2 held or booked, 2 more asked for)',
      });
      assert.deepEqual(await liveClaims(database.db, offering.unitIds.slice(2, 4)), []);
      // Its keys are gone: another customer's hold on those units is admitted at once.
      const gate = createUnitGate(redis, logger);
      const other = { holdId: randomUUID(), offeringId: offering.id, unitIds: offering.unitIds.slice(2, 4) };
      assert.deepEqual(await admitHoldRequest({ db: database.db, gate }, other), { status: 'admitted' });
    });

    test('parallel claims of one customer stop exactly at HOLDS_PER_CUSTOMER_MAX; a retried claim that committed still answers held', async () => {
      const user = await insertTestUser(database.db);
      const offering = await insertTestOffering(database.db, { unitCount: 30, maxUnitsPerCustomer: 30 });
      const inputs = offering.unitIds.map((unitId): ClaimUnitsInput => {
        const holdId = randomUUID();
        const expiresAt = new Date(Date.now() + 60_000).toISOString();
        return {
          holdId,
          userId: user.id,
          offeringId: offering.id,
          unitIds: [unitId],
          expiresAt,
          workflowId: `hold-${holdId}`,
          holdsPerCustomerMax: 7,
        };
      });
      const outcomes = await Promise.all(inputs.map((input) => activities.claimUnits(input)));
      assert.equal(outcomes.filter((o) => o.status === 'held').length, 7);
      for (const outcome of outcomes) if (outcome.status !== 'held') assert.equal(outcome.status === 'limited' && outcome.refusal.current, 7);
      assert.equal((await liveClaims(database.db, offering.unitIds)).length, 7);

      const retried = inputs[outcomes.findIndex((o) => o.status === 'held')];
      assert.equal((await activities.claimUnits(retried)).status, 'held', 'its own hold is not counted against it');
    });
  });

  describe('admission in front of the workflow', () => {
    test('a unit claimed in PostgreSQL is refused, naming it', async () => {
      const input = await claimInput(2);
      await activities.claimUnits(input);
      const gate = createUnitGate(redis, logger);
      const answer = await admitHoldRequest(
        { db: database.db, gate },
        { holdId: randomUUID(), offeringId: input.offeringId, unitIds: [input.unitIds[1], input.allUnitIds[4]] },
      );
      assert.deepEqual(answer, { status: 'conflict', unavailableUnitIds: [input.unitIds[1]] });
    });

    test('a claim still being placed is refused; a stale key is ignored', async () => {
      const input = await claimInput(1);
      const gate = createUnitGate(redis, logger);
      const request = { offeringId: input.offeringId, unitIds: input.unitIds };
      assert.deepEqual(await admitHoldRequest({ db: database.db, gate }, { ...request, holdId: randomUUID() }), { status: 'admitted' });
      assert.deepEqual(await admitHoldRequest({ db: database.db, gate }, { ...request, holdId: randomUUID() }), {
        status: 'conflict',
        unavailableUnitIds: input.unitIds,
      });

      await gate.assign(input.offeringId, input.unitIds, holdGateOwner(randomUUID()), PROVISIONAL_GATE_MS * 10);
      assert.deepEqual(await admitHoldRequest({ db: database.db, gate }, { ...request, holdId: randomUUID() }), { status: 'admitted' });
    });

    test('without Redis every request is admitted and PostgreSQL decides', async () => {
      const input = await claimInput(1);
      const gate = createUnitGate(undefined, logger);
      const request = { offeringId: input.offeringId, unitIds: input.unitIds, holdId: randomUUID() };
      assert.deepEqual(await admitHoldRequest({ db: database.db, gate }, request), { status: 'admitted' });
      const noRedis = createHoldActivities({ db: database.db, logger });
      assert.equal((await noRedis.claimUnits(input)).status, 'held');
      assert.equal((await noRedis.claimUnits({ ...input, holdId: randomUUID() })).status, 'conflict');
    });
  });
});
