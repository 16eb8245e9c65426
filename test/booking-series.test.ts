import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { bookings, notifications, offerings } from '../db/schema';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { insertTestOffering } from './support/booking-fixtures';
import {
  createBooking,
  createOffering,
  placeHold,
  startBookingStack,
  unitStatuses,
  type BookingStack,
  type CreatedOffering,
} from './support/booking-stack';

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

/** `count` seats priced `amount` each, labelled `prefix`1…, for an offering body's `units`. */
function seats(prefix: string, count: number, amount: number) {
  return Array.from({ length: count }, (_, i) => ({ label: `${prefix}${i + 1}`, amount, currency: 'usd' }));
}

/** An offering body's start and end: starting `fromNowMs` from now, for two hours. */
function startingIn(fromNowMs: number) {
  const startsAt = Date.now() + fromNowMs;
  return { startsAt: new Date(startsAt).toISOString(), endsAt: new Date(startsAt + 2 * HOUR).toISOString() };
}

describe('moving a booking to another offering of its series (over HTTP)', () => {
  let stack: BookingStack;
  let alice: TestUser;

  before(async () => {
    stack = await startBookingStack();
    alice = await createTestUser(stack.deps);
  });

  after(async () => {
    await stack.close();
  });

  const api = (path: string) => `${stack.url}/api/v1${path}`;

  async function book(user: TestUser, offering: CreatedOffering, unitIds: string[]) {
    const held = await placeHold(stack, user, offering.id, unitIds);
    assert.equal(held.status, 201, JSON.stringify(held.body));
    const booked = await createBooking(stack, user, held.body.hold.id);
    assert.equal(booked.status, 201, JSON.stringify(booked.body));
    return booked.body.booking as { id: string; offeringId: string; unitIds: string[]; amount: number };
  }

  const move = (bookingId: string, offeringId: string, unitIds: string[], user = alice) =>
    requestJson(api(`/bookings/${bookingId}/reschedule`), { body: { offeringId, unitIds }, headers: user.headers });

  async function readBooking(bookingId: string) {
    const answer = await requestJson(api(`/bookings/${bookingId}`), { headers: alice.headers });
    assert.equal(answer.status, 200);
    return answer.body as {
      booking: { offeringId: string; unitIds: string[]; amount: number; status: string };
      payments: { kind: string; amount: number; status: string }[];
    };
  }

  test('a move to a dearer date charges the difference, one back to a cheaper date refunds it', async () => {
    const seriesId = randomUUID();
    const early = await createOffering(stack, { seriesId, name: 'Matinee', units: seats('A', 3, 2500) });
    const late = await createOffering(stack, {
      seriesId,
      name: 'Gala',
      ...startingIn(12 * DAY),
      units: seats('G', 3, 4000),
    });
    const booking = await book(alice, early, early.unitIds.slice(0, 2));

    const dearer = await move(booking.id, late.id, late.unitIds.slice(0, 2));
    assert.equal(dearer.status, 200, JSON.stringify(dearer.body));
    assert.deepEqual(
      [dearer.body.booking.offeringId, dearer.body.booking.unitIds, dearer.body.booking.amount, dearer.body.difference],
      [late.id, late.unitIds.slice(0, 2), 8000, 3000],
    );
    assert.deepEqual(Object.values(await unitStatuses(stack, early.id)), ['available', 'available', 'available'], 'the old units are free again');
    const lateStatuses = await unitStatuses(stack, late.id);
    assert.deepEqual(
      [lateStatuses[late.unitIds[0]], lateStatuses[late.unitIds[1]], lateStatuses[late.unitIds[2]]],
      ['booked', 'booked', 'available'],
    );
    const [row] = await stack.deps.db.select().from(bookings).where(eq(bookings.id, booking.id));
    assert.deepEqual([row.offeringId, row.amount], [late.id, 8000]);
    const charges = (await readBooking(booking.id)).payments.filter((p) => p.kind === 'booking');
    assert.deepEqual(
      charges.map((p) => [p.amount, p.status]),
      [
        [5000, 'succeeded'],
        [3000, 'succeeded'],
      ],
    );
    const [notice] = await stack.deps.db
      .select()
      .from(notifications)
      .where(and(eq(notifications.bookingId, booking.id), eq(notifications.kind, 'booking_rescheduled')));
    assert.match(notice.subject, /Gala/);

    const cheaper = await move(booking.id, early.id, [early.unitIds[2]]);
    assert.equal(cheaper.status, 200, JSON.stringify(cheaper.body));
    assert.deepEqual([cheaper.body.booking.offeringId, cheaper.body.booking.amount, cheaper.body.difference], [early.id, 2500, -5500]);
    assert.deepEqual(Object.values(await unitStatuses(stack, late.id)), ['available', 'available', 'available']);
    const refunds = (await readBooking(booking.id)).payments.filter((p) => p.kind === 'refund');
    assert.equal(
      refunds.reduce((sum, p) => sum + p.amount, 0),
      5500,
      'the difference, refunded once',
    );
    assert.ok(refunds.every((p) => p.status === 'succeeded'));
  });

  test('moves the rules refuse are 409s naming why, bad targets 422s, and none changes anything', async () => {
    const seriesId = randomUUID();
    const current = await createOffering(stack, { seriesId });
    const sibling = await createOffering(stack, { seriesId, ...startingIn(11 * DAY) });
    const otherSeries = await createOffering(stack, { seriesId: randomUUID() });
    const noSeries = await createOffering(stack);
    const canceled = await createOffering(stack, { seriesId, ...startingIn(9 * DAY) });
    await stack.deps.db.update(offerings).set({ status: 'canceled', canceledAt: new Date() }).where(eq(offerings.id, canceled.id));
    const started = await insertTestOffering(stack.deps.db, { startsAt: new Date(Date.now() - HOUR), endsAt: new Date(Date.now() + HOUR) });
    await stack.deps.db.update(offerings).set({ seriesId }).where(eq(offerings.id, started.id));
    const booking = await book(alice, current, current.unitIds.slice(0, 2));

    const refusedFor = async (target: { id: string; unitIds: string[] }) => {
      const answer = await move(booking.id, target.id, target.unitIds.slice(0, 1));
      assert.equal(answer.status, 409, JSON.stringify(answer.body));
      return answer.body.reason;
    };
    assert.equal(await refusedFor(otherSeries), 'other_series');
    assert.equal(await refusedFor(noSeries), 'other_series');
    assert.equal(await refusedFor(canceled), 'offering_canceled');
    assert.equal(await refusedFor(started), 'offering_started');

    const foreignUnits = await move(booking.id, sibling.id, [current.unitIds[3]]);
    assert.equal(foreignUnits.status, 422);
    assert.deepEqual(foreignUnits.body.unknownUnitIds, [current.unitIds[3]]);
    const nowhere = await move(booking.id, randomUUID(), [sibling.unitIds[0]]);
    assert.equal(nowhere.status, 422);
    assert.deepEqual(
      nowhere.body.invalidParams.map((p: { name: string }) => p.name),
      ['offeringId'],
    );

    const { booking: after, payments } = await readBooking(booking.id);
    assert.deepEqual([after.offeringId, after.unitIds, after.amount, after.status], [current.id, current.unitIds.slice(0, 2), 5000, 'confirmed']);
    assert.deepEqual(
      payments.map((p) => p.kind),
      ['booking'],
      'no money moved',
    );
    for (const target of [sibling, otherSeries, noSeries, canceled]) {
      assert.ok(Object.values(await unitStatuses(stack, target.id)).every((s) => s === 'available'));
    }
  });

  test('a booking of an offering in no series has nowhere to move', async () => {
    const lone = await createOffering(stack);
    const elsewhere = await createOffering(stack, { seriesId: randomUUID() });
    const booking = await book(alice, lone, [lone.unitIds[0]]);
    const refused = await move(booking.id, elsewhere.id, [elsewhere.unitIds[0]]);
    assert.deepEqual([refused.status, refused.body.reason], [409, 'not_in_series']);
  });

  test('past the free-cancellation window the booking stays where it is', async () => {
    const seriesId = randomUUID();
    // Starts in two hours with a day of free cancellation: a cancel now would refund only in part.
    const soon = await createOffering(stack, {
      seriesId,
      ...startingIn(2 * HOUR),
    });
    const later = await createOffering(stack, { seriesId });
    const booking = await book(alice, soon, [soon.unitIds[0]]);
    const refused = await move(booking.id, later.id, [later.unitIds[0]]);
    assert.deepEqual([refused.status, refused.body.reason], [409, 'outside_free_window'], JSON.stringify(refused.body));
    const { booking: after } = await readBooking(booking.id);
    assert.deepEqual([after.offeringId, after.unitIds], [soon.id, [soon.unitIds[0]]]);
    assert.equal((await unitStatuses(stack, later.id))[later.unitIds[0]], 'available');
  });
});
