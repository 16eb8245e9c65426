import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import { createHoldActivities } from '../activities/hold';
import { liveClaimsOf } from '../availability/unit-gate';
import { createLogger } from '../platform/logger';
import { insertTestOffering } from '../test/support/booking-fixtures';
import { insertTestUser } from '../test/support/payment-fixtures';
import { connectDatabase, migrateDatabase, type DatabaseHandle } from './client';
import { prepareHoldRequestFacts } from './hold-request';
import { customerHoldCounts } from './holds';
import { offerings, waitlistEntries } from './schema';
import { waitlistReserves } from './waitlist';

const logger = createLogger({ LOG_LEVEL: 'silent', NODE_ENV: 'test' });

describe("a hold request's pre-checks in one statement", () => {
  let database: DatabaseHandle;
  let readFacts: ReturnType<typeof prepareHoldRequestFacts>;

  before(async () => {
    await migrateDatabase(process.env.DATABASE_URL!);
    database = connectDatabase(process.env.DATABASE_URL!, { max: 4 });
    readFacts = prepareHoldRequestFacts(database.db);
  });

  after(() => database.close());

  test('no such offering: undefined', async () => {
    const user = await insertTestUser(database.db);
    assert.equal(await readFacts({ offeringId: randomUUID(), userId: user.id, unitIds: [randomUUID()] }), undefined);
  });

  test('answers what the separate queries answer: the offering, unknown and claimed units in the order asked, counts, the waitlist', async () => {
    const db = database.db;
    const user = await insertTestUser(db);
    const other = await insertTestUser(db);
    const offering = await insertTestOffering(db, { unitCount: 6, maxUnitsPerCustomer: 5, holdTtl: 'PT7M' });
    const [u0, u1, u2, u3] = offering.unitIds;
    const foreign = (await insertTestOffering(db, { unitCount: 1 })).unitIds[0];
    const activities = createHoldActivities({ db, logger });
    const claim = (userId: string, unitIds: string[]) => {
      const holdId = randomUUID();
      return activities.claimUnits({
        holdId,
        userId,
        offeringId: offering.id,
        unitIds,
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
        workflowId: `hold-${holdId}`,
      });
    };
    assert.equal((await claim(user.id, [u0])).status, 'held');
    assert.equal((await claim(other.id, [u2, u3])).status, 'held');

    const asked = [u3, foreign, u1, u0];
    const facts = await readFacts({ offeringId: offering.id, userId: user.id, unitIds: asked });
    const [row] = await db.select().from(offerings).where(eq(offerings.id, offering.id));
    assert.deepEqual(facts, {
      offering: {
        id: row.id,
        name: row.name,
        status: 'scheduled',
        startsAt: row.startsAt,
        holdTtl: 'PT7M',
        maxUnitsPerCustomer: 5,
      },
      unknownUnitIds: [foreign],
      reservedForWaitlist: false,
      counts: { heldOrBookedOfOffering: 1, liveHolds: 1 },
      claimedUnitIds: [u3, u0],
    });
    assert.deepEqual(facts.counts, await customerHoldCounts(db, { userId: user.id, offeringId: offering.id }));
    assert.deepEqual(new Set(facts.claimedUnitIds), new Set(await liveClaimsOf(db, asked)));

    await db.insert(waitlistEntries).values({ offeringId: offering.id, userId: other.id, quantity: 1 });
    const reserved = await readFacts({ offeringId: offering.id, userId: other.id, unitIds: [u1] });
    assert.equal(reserved?.reservedForWaitlist, true);
    assert.equal(await waitlistReserves(db, offering.id, [u1]), true);
    assert.deepEqual(reserved?.counts, { heldOrBookedOfOffering: 2, liveHolds: 1 });
  });
});
