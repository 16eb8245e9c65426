/**
 * Check-in at the door over HTTP: staff (or a gate device with the staff role) check a booking in
 * by its confirmation code through the booking's workflow, once; canceled and unknown bookings are
 * refused with why; customers may not check in; a booking nobody checked in is a no-show once its
 * offering ends.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { asc, eq } from 'drizzle-orm';
import { auditLog, bookings } from '../db/schema';
import { isConfirmationCode } from '../domain/booking';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { createBooking, createOffering, placeHold, startBookingStack, type BookingStack } from './support/booking-stack';
import { waitFor } from './support/subscription-stack';

interface BookingJson {
  id: string;
  workflowId: string;
  status: string;
  confirmationCode: string;
  checkedInAt: string | null;
}

describe('staff API: check-in by confirmation code', () => {
  let stack: BookingStack;

  before(async () => {
    stack = await startBookingStack();
  });

  after(() => stack?.close());

  function checkIn(user: TestUser, confirmationCode: unknown) {
    return requestJson(`${stack.url}/api/v1/admin/bookings/check-in`, { body: { confirmationCode }, headers: user.headers });
  }

  async function confirmedBooking(user: TestUser, offeringOverrides: Record<string, unknown> = {}): Promise<BookingJson> {
    const offering = await createOffering(stack, offeringOverrides);
    const held = await placeHold(stack, user, offering.id, offering.unitIds.slice(0, 2));
    assert.equal(held.status, 201, JSON.stringify(held.body));
    const booked = await createBooking(stack, user, held.body.hold.id);
    assert.equal(booked.status, 201, JSON.stringify(booked.body));
    return booked.body.booking as BookingJson;
  }

  test('a confirmed booking is checked in once, audited; a second check-in is a 409 saying when', async () => {
    const user = await createTestUser(stack.deps);
    const booking = await confirmedBooking(user);
    assert.ok(isConfirmationCode(booking.confirmationCode), booking.confirmationCode);
    assert.equal(booking.checkedInAt, null);

    // Typed at the door: lower case with a dash between the halves is the same code.
    const typed = `${booking.confirmationCode.slice(0, 4)}-${booking.confirmationCode.slice(4)}`.toLowerCase();
    const first = await checkIn(stack.staff, typed);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual([first.body.booking.id, first.body.booking.status], [booking.id, 'checked_in']);
    assert.ok(first.body.booking.checkedInAt);
    assert.equal(first.body.audit.action, 'booking.check_in');

    const second = await checkIn(stack.staff, booking.confirmationCode);
    assert.equal(second.status, 409, JSON.stringify(second.body));
    assert.match(second.body.detail, /already checked in at/);

    const audits = await stack.deps.db.select().from(auditLog).where(eq(auditLog.targetId, booking.id)).orderBy(asc(auditLog.id));
    assert.deepEqual(
      audits.map((a) => [a.action, a.targetType, a.actorId]),
      [['booking.check_in', 'booking', stack.staff.user.id]],
    );
    // The customer can no longer cancel a booking they have used.
    const canceled = await requestJson(`${stack.url}/api/v1/bookings/cancel`, { body: { bookingId: booking.id }, headers: user.headers });
    assert.equal(canceled.status, 409, JSON.stringify(canceled.body));
  });

  test('a canceled booking is a 409 naming why; unknown codes are 404s, malformed ones 400s; customers are refused', async () => {
    const user = await createTestUser(stack.deps);
    const booking = await confirmedBooking(user);
    assert.equal((await checkIn(user, booking.confirmationCode)).status, 403);

    const canceled = await requestJson(`${stack.url}/api/v1/bookings/cancel`, { body: { bookingId: booking.id }, headers: user.headers });
    assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
    const refused = await checkIn(stack.staff, booking.confirmationCode);
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.match(refused.body.detail, /canceled/);

    const unknown = await checkIn(stack.staff, booking.confirmationCode === '22222222' ? '33333333' : '22222222');
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    for (const malformed of ['ABC', 'O0O0O0O0', 12345678]) {
      const bad = await checkIn(stack.staff, malformed);
      assert.equal(bad.status, 400, JSON.stringify(bad.body));
      assert.deepEqual(
        bad.body.invalidParams.map((p: { name: string }) => p.name),
        ['confirmationCode'],
      );
    }
    const rows = await stack.deps.db.select().from(auditLog).where(eq(auditLog.targetId, booking.id));
    assert.deepEqual(rows, []);
  });

  test('a booking nobody checked in is a no-show once its offering ends, and can no longer be checked in', async () => {
    const user = await createTestUser(stack.deps);
    const startsAt = new Date(Date.now() + 3_000);
    const booking = await confirmedBooking(user, {
      startsAt: startsAt.toISOString(),
      endsAt: new Date(startsAt.getTime() + 1_000).toISOString(),
    });
    const row = await waitFor(
      async () => (await stack.deps.db.select().from(bookings).where(eq(bookings.id, booking.id)))[0],
      (b) => b.status !== 'confirmed',
      { what: 'the end of the offering' },
    );
    assert.equal(row.status, 'no_show');
    const late = await checkIn(stack.staff, booking.confirmationCode);
    assert.equal(late.status, 409, JSON.stringify(late.body));
    assert.match(late.body.detail, /no-show/);
  });
});
