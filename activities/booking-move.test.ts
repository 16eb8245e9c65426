import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import type { DatabaseHandle } from '../db/client';
import { bookings, holds, offerings } from '../db/schema';
import { insertTestOffering, liveClaims, type TestOffering } from '../test/support/booking-fixtures';
import { insertTestUser } from '../test/support/payment-fixtures';
import { openTestStores, type TestStores } from '../test/support/stores';
import { createBookingActivities } from './booking';
import { createHoldActivities } from './hold';

const DAY = 24 * 60 * 60 * 1000;

describe('moving a booking between offerings (PostgreSQL + Redis)', () => {
  let stores: TestStores;
  let database: DatabaseHandle;
  let holdSteps: ReturnType<typeof createHoldActivities>;
  let bookingSteps: ReturnType<typeof createBookingActivities>;

  before(async () => {
    stores = await openTestStores({ max: 4 });
    database = stores.database;
    holdSteps = createHoldActivities(stores);
    bookingSteps = createBookingActivities(stores);
  });

  after(() => stores.close());

  async function claim(userId: string, offering: TestOffering, unitIds: string[]) {
    const holdId = randomUUID();
    const expiresAt = new Date(Date.now() + 60_000).toISOString();
    const claimed = await holdSteps.claimUnits({ holdId, userId, offeringId: offering.id, unitIds, expiresAt, workflowId: `test-${holdId}` });
    assert.equal(claimed.status, 'held');
    return holdId;
  }

  /** A confirmed booking of two units of one offering, a second offering of 4000 a unit, and a claim on two of its units. */
  async function moveSetup() {
    const user = await insertTestUser(database.db);
    const from = await insertTestOffering(database.db);
    const to = await insertTestOffering(database.db, { unitAmount: 4000, startsAt: new Date(Date.now() + 12 * DAY) });
    const unitIds = from.unitIds.slice(0, 2);
    const holdId = await claim(user.id, from, unitIds);
    const bookingId = randomUUID();
    await bookingSteps.beginBooking({ bookingId, holdId, userId: user.id, workflowId: `booking-${bookingId}` });
    assert.equal(await bookingSteps.confirmBooking({ bookingId, holdId }), 'confirmed');
    const newUnitIds = to.unitIds.slice(0, 2);
    const newHoldId = await claim(user.id, to, newUnitIds);
    const input = {
      bookingId,
      fromOfferingId: from.id,
      expectedUnitIds: unitIds,
      offeringId: to.id,
      unitIds: newUnitIds,
      holdId: newHoldId,
      amount: 8000,
    };
    return { from, to, unitIds, newUnitIds, newHoldId, bookingId, input };
  }

  const bookingRow = async (id: string) => (await database.db.select().from(bookings).where(eq(bookings.id, id)))[0];
  const holdStatus = async (id: string) => (await database.db.select().from(holds).where(eq(holds.id, id)))[0].status;

  test('hands the booking to the other offering in one step, and a repeat answers the same without changing more', async () => {
    const { from, to, unitIds, newUnitIds, newHoldId, bookingId, input } = await moveSetup();
    const moved = await bookingSteps.moveBooking(input);
    assert.equal(moved.status, 'moved');
    assert.deepEqual(moved.status === 'moved' && [moved.terms.offeringId, moved.terms.startsAt], [to.id, to.startsAt.toISOString()]);
    const row = await bookingRow(bookingId);
    assert.deepEqual([row.offeringId, row.unitIds, row.amount, row.status], [to.id, newUnitIds, 8000, 'confirmed']);
    assert.deepEqual(await liveClaims(database.db, unitIds), [], 'the old units are free');
    assert.deepEqual(
      (await liveClaims(database.db, newUnitIds)).map((c) => c.bookingId),
      [bookingId, bookingId],
    );
    assert.equal(await holdStatus(newHoldId), 'consumed');

    const again = await bookingSteps.moveBooking(input);
    assert.deepEqual(again, moved);
    assert.deepEqual(await bookingRow(bookingId), row);
    assert.deepEqual(await bookingSteps.readMoveTarget({ fromOfferingId: to.id, toOfferingId: from.id }).then((t) => t?.to.id), from.id);
  });

  test('a booking that changed meanwhile, or a canceled target, is refused and nothing changes', async () => {
    const stale = await moveSetup();
    const before = await bookingRow(stale.bookingId);
    assert.deepEqual(await bookingSteps.moveBooking({ ...stale.input, expectedUnitIds: [stale.from.unitIds[3]] }), { status: 'conflict' });
    assert.deepEqual(await bookingRow(stale.bookingId), before);
    assert.equal(await holdStatus(stale.newHoldId), 'active');

    const closed = await moveSetup();
    await database.db.update(offerings).set({ status: 'canceled' }).where(eq(offerings.id, closed.to.id));
    const unchanged = await bookingRow(closed.bookingId);
    assert.deepEqual(await bookingSteps.moveBooking(closed.input), { status: 'offering_canceled' });
    assert.deepEqual(await bookingRow(closed.bookingId), unchanged);
    assert.equal((await liveClaims(database.db, closed.unitIds)).length, 2);
  });

  test('an unknown offering has no move target', async () => {
    const { from } = await moveSetup();
    assert.equal(await bookingSteps.readMoveTarget({ fromOfferingId: from.id, toOfferingId: randomUUID() }), null);
  });
});
