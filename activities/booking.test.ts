import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import type { DatabaseHandle } from '../db/client';
import { bookings, holds, offerings } from '../db/schema';
import { insertTestOffering, liveClaims } from '../test/support/booking-fixtures';
import { insertTestUser } from '../test/support/payment-fixtures';
import { openTestStores, type TestStores } from '../test/support/stores';
import { isConfirmationCode } from '../domain/booking';
import { createBookingActivities } from './booking';
import { createHoldActivities } from './hold';

describe('booking activities (PostgreSQL + Redis)', () => {
  let stores: TestStores;
  let database: DatabaseHandle;
  let holdSteps: ReturnType<typeof createHoldActivities>;
  let bookingSteps: ReturnType<typeof createBookingActivities>;

  before(async () => {
    stores = await openTestStores({ max: 10 });
    database = stores.database;
    holdSteps = createHoldActivities(stores);
    bookingSteps = createBookingActivities(stores);
  });

  after(() => stores.close());

  /** A held set of units and a pending booking of them. */
  async function pendingBooking(unitCount = 2) {
    const user = await insertTestUser(database.db);
    const offering = await insertTestOffering(database.db, { unitCount: 6 });
    const holdId = randomUUID();
    const unitIds = offering.unitIds.slice(0, unitCount);
    const claimed = await holdSteps.claimUnits({
      holdId,
      userId: user.id,
      offeringId: offering.id,
      unitIds,
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
      workflowId: `hold-${holdId}`,
    });
    assert.equal(claimed.status, 'held');
    const bookingId = randomUUID();
    const terms = await bookingSteps.beginBooking({ bookingId, holdId, userId: user.id, workflowId: `booking-${bookingId}` });
    return { user, offering, holdId, unitIds, bookingId, terms };
  }

  const bookingRow = async (id: string) => (await database.db.select().from(bookings).where(eq(bookings.id, id)))[0];
  const holdRow = async (id: string) => (await database.db.select().from(holds).where(eq(holds.id, id)))[0];

  test('begin records the booking pending once, priced from its units', async () => {
    const { bookingId, holdId, user, terms } = await pendingBooking(3);
    assert.deepEqual(
      [terms.amount, terms.currency, terms.holdActive, terms.policy],
      [7500, 'usd', true, { freeUntil: 'P1D', lateRefundPercent: 50 }],
    );
    await bookingSteps.beginBooking({ bookingId, holdId, userId: user.id, workflowId: `booking-${bookingId}` });
    assert.equal((await bookingRow(bookingId)).status, 'pending');
    await assert.rejects(bookingSteps.beginBooking({ bookingId: randomUUID(), holdId, userId: randomUUID(), workflowId: 'x' }), /no hold/);
  });

  test('a confirm and a TTL release racing: exactly one wins, and no unit is ever lost', async () => {
    for (let round = 0; round < 10; round++) {
      const { bookingId, holdId, unitIds } = await pendingBooking();
      const [confirmed, released] = await Promise.all([
        bookingSteps.confirmBooking({ bookingId, holdId }),
        holdSteps.releaseHold({ holdId, reason: 'expired' }),
      ]);
      const claims = await liveClaims(database.db, unitIds);
      if (confirmed === 'confirmed') {
        assert.equal(released, 'consumed');
        assert.equal((await bookingRow(bookingId)).status, 'confirmed');
        assert.deepEqual(
          claims.map((c) => c.bookingId),
          [bookingId, bookingId],
        );
      } else {
        assert.equal(released, 'expired');
        assert.equal((await bookingRow(bookingId)).status, 'pending', 'left for the saga to fail and refund');
        assert.deepEqual(claims, []);
      }
    }
  });

  test('confirm is repeatable; a booking of a released hold is refused', async () => {
    const first = await pendingBooking();
    assert.equal(await bookingSteps.confirmBooking({ bookingId: first.bookingId, holdId: first.holdId }), 'confirmed');
    assert.equal(await bookingSteps.confirmBooking({ bookingId: first.bookingId, holdId: first.holdId }), 'confirmed');
    assert.equal((await holdRow(first.holdId)).status, 'consumed');

    const second = await pendingBooking();
    await holdSteps.releaseHold({ holdId: second.holdId, reason: 'released' });
    assert.equal(await bookingSteps.confirmBooking({ bookingId: second.bookingId, holdId: second.holdId }), 'hold_unavailable');
    await bookingSteps.failBooking({ bookingId: second.bookingId, reason: 'confirm_failed' });
    const failed = await bookingRow(second.bookingId);
    assert.deepEqual([failed.status, failed.failureReason], ['failed', 'confirm_failed']);
  });

  test('a swap refuses a booking that changed meanwhile and changes nothing', async () => {
    const { bookingId, holdId, unitIds, offering } = await pendingBooking();
    await bookingSteps.confirmBooking({ bookingId, holdId });
    const before = await bookingRow(bookingId);
    const swapped = await bookingSteps.swapBookingUnits({
      bookingId,
      expectedUnitIds: [offering.unitIds[4]],
      unitIds: [unitIds[0]],
      holdId: null,
      amount: 2500,
    });
    assert.equal(swapped, false);
    assert.deepEqual(await bookingRow(bookingId), before);
    assert.equal((await liveClaims(database.db, unitIds)).length, 2);
  });

  test('cancel releases the units and records the refund, once', async () => {
    const { bookingId, holdId, unitIds } = await pendingBooking();
    await assert.rejects(bookingSteps.cancelBooking({ bookingId, refundedAmount: 0 }), /pending/);
    await bookingSteps.confirmBooking({ bookingId, holdId });
    await bookingSteps.cancelBooking({ bookingId, refundedAmount: 2500 });
    await bookingSteps.cancelBooking({ bookingId, refundedAmount: 2500 });
    const row = await bookingRow(bookingId);
    assert.deepEqual([row.status, row.refundedAmount], ['canceled', 2500]);
    assert.deepEqual(await liveClaims(database.db, unitIds), []);
  });

  test('an offering the business canceled: a pending booking is not confirmed, a checked-in one can be canceled', async () => {
    const pending = await pendingBooking();
    const checkedIn = await pendingBooking();
    assert.equal(await bookingSteps.confirmBooking({ bookingId: checkedIn.bookingId, holdId: checkedIn.holdId }), 'confirmed');
    await bookingSteps.checkInBooking({ bookingId: checkedIn.bookingId, checkedInAt: new Date().toISOString() });
    for (const offeringId of [pending.offering.id, checkedIn.offering.id]) {
      await database.db.update(offerings).set({ status: 'canceled' }).where(eq(offerings.id, offeringId));
    }
    assert.equal(await bookingSteps.confirmBooking({ bookingId: pending.bookingId, holdId: pending.holdId }), 'hold_unavailable');
    assert.deepEqual([(await bookingRow(pending.bookingId)).status, (await holdRow(pending.holdId)).status], ['pending', 'active']);
    await bookingSteps.cancelBooking({ bookingId: checkedIn.bookingId, refundedAmount: 5000 });
    const row = await bookingRow(checkedIn.bookingId);
    assert.deepEqual([row.status, row.refundedAmount], ['canceled', 5000]);
    assert.deepEqual(await liveClaims(database.db, checkedIn.unitIds), []);
  });

  test('begin gives the booking a confirmation code, kept when begin runs again', async () => {
    const { bookingId, holdId, user } = await pendingBooking();
    const code = (await bookingRow(bookingId)).confirmationCode;
    assert.ok(code && isConfirmationCode(code), String(code));
    await bookingSteps.beginBooking({ bookingId, holdId, userId: user.id, workflowId: `booking-${bookingId}` });
    assert.equal((await bookingRow(bookingId)).confirmationCode, code);
  });

  test('check-in and no-show project onto a confirmed booking once; a no-show never overwrites a check-in', async () => {
    const checkedIn = await pendingBooking();
    assert.equal(await bookingSteps.confirmBooking({ bookingId: checkedIn.bookingId, holdId: checkedIn.holdId }), 'confirmed');
    const checkedInAt = '2030-01-01T10:00:00.000Z';
    await bookingSteps.checkInBooking({ bookingId: checkedIn.bookingId, checkedInAt });
    await bookingSteps.checkInBooking({ bookingId: checkedIn.bookingId, checkedInAt });
    await bookingSteps.markNoShow({ bookingId: checkedIn.bookingId });
    const row = await bookingRow(checkedIn.bookingId);
    assert.deepEqual([row.status, row.checkedInAt?.toISOString()], ['checked_in', checkedInAt]);

    const absent = await pendingBooking();
    await assert.rejects(bookingSteps.checkInBooking({ bookingId: absent.bookingId, checkedInAt }), /is pending/);
    assert.equal(await bookingSteps.confirmBooking({ bookingId: absent.bookingId, holdId: absent.holdId }), 'confirmed');
    await bookingSteps.markNoShow({ bookingId: absent.bookingId });
    await bookingSteps.markNoShow({ bookingId: absent.bookingId });
    assert.deepEqual([(await bookingRow(absent.bookingId)).status, (await bookingRow(absent.bookingId)).checkedInAt], ['no_show', null]);
  });
});
