/**
 * The business cancels an offering over HTTP (POST /api/v1/admin/offerings/{id}/cancel): every
 * booking is refunded exactly what was left of all its charges (a reschedule's top-up included,
 * less what staff refunded before), canceled and its customer told; the active hold is released,
 * new holds are refused, the offering leaves the catalogue, and a repeat changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { and, asc, eq, inArray } from 'drizzle-orm';
import { auditLog, bookings, holds, notifications, payments } from '../db/schema';
import { offeringCancellationProgressQuery, offeringCancellationWorkflowId } from '../workflows/offering';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { createBooking, createOffering, placeHold, startBookingStack, type BookingStack } from './support/booking-stack';
import { waitFor } from './support/subscription-stack';

describe('the business cancels an offering', () => {
  let stack: BookingStack;

  before(async () => {
    stack = await startBookingStack();
  });

  after(() => stack?.close());

  const api = (path: string) => `${stack.url}/api/v1${path}`;

  function cancelOffering(offeringId: string, body: unknown, user: TestUser = stack.staff) {
    return requestJson(api(`/admin/offerings/${offeringId}/cancel`), { body, headers: user.headers });
  }

  async function book(user: TestUser, offeringId: string, unitIds: string[]): Promise<{ id: string; confirmationCode: string }> {
    const held = await placeHold(stack, user, offeringId, unitIds);
    assert.equal(held.status, 201, JSON.stringify(held.body));
    const booked = await createBooking(stack, user, held.body.hold.id);
    assert.equal(booked.status, 201, JSON.stringify(booked.body));
    return booked.body.booking;
  }

  function refundsOf(bookingIds: string[]) {
    return stack.deps.db
      .select()
      .from(payments)
      .where(and(inArray(payments.bookingId, bookingIds), eq(payments.kind, 'refund')))
      .orderBy(asc(payments.createdAt));
  }

  test('every booking refunded what was left and canceled, the hold released, customers told; a repeat is a no-op', async () => {
    const offering = await createOffering(stack, {}, 8);
    const [u1, u2, u3, u4, u5] = offering.unitIds;
    const [alice, bob, carol, dave, erin] = await Promise.all(Array.from({ length: 5 }, () => createTestUser(stack.deps)));

    // Alice pays 2500, then 2500 more to move to two units: two charges.
    const aliceBooking = await book(alice, offering.id, [u1]);
    const moved = await requestJson(api(`/bookings/${aliceBooking.id}/reschedule`), { body: { unitIds: [u1, u2] }, headers: alice.headers });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    assert.equal(moved.body.difference, 2500);
    // Bob got 1000 back from staff already: 1500 is left.
    const bobBooking = await book(bob, offering.id, [u3]);
    const staffRefund = await requestJson(api(`/admin/bookings/${bobBooking.id}/refund`), {
      body: { amount: 1000, reason: 'late start last time' },
      headers: stack.staff.headers,
    });
    assert.equal(staffRefund.status, 200, JSON.stringify(staffRefund.body));
    // Carol is already checked in.
    const carolBooking = await book(carol, offering.id, [u4]);
    const checkedIn = await requestJson(api('/admin/bookings/check-in'), {
      body: { confirmationCode: carolBooking.confirmationCode },
      headers: stack.staff.headers,
    });
    assert.equal(checkedIn.status, 200, JSON.stringify(checkedIn.body));
    // Dave holds a unit without having booked it.
    const daveHold = await placeHold(stack, dave, offering.id, [u5]);
    assert.equal(daveHold.status, 201, JSON.stringify(daveHold.body));
    const bookingIds = [aliceBooking.id, bobBooking.id, carolBooking.id];
    const refundsBefore = await refundsOf(bookingIds);
    assert.equal(refundsBefore.length, 1, 'only the staff refund so far');

    // Refused without a reason, for a customer, for an unknown offering: nothing changes.
    assert.equal((await cancelOffering(offering.id, {})).status, 400);
    assert.equal((await cancelOffering(offering.id, { reason: '   ' })).status, 400);
    assert.equal((await cancelOffering(offering.id, { reason: 'storm' }, alice)).status, 403);
    assert.equal((await cancelOffering('00000000-0000-4000-8000-000000000000', { reason: 'storm' })).status, 404);

    const res = await cancelOffering(offering.id, { reason: 'Storm warning' });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.deepEqual([res.body.offering.id, res.body.offering.status, res.body.offering.cancelReason], [offering.id, 'canceled', 'Storm warning']);
    assert.ok(res.body.offering.canceledAt);
    assert.equal(res.body.cancellation.workflowId, offeringCancellationWorkflowId(offering.id));

    // No new hold, with why.
    const refused = await placeHold(stack, erin, offering.id, [offering.unitIds[5]]);
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.match(refused.body.detail, /canceled/);

    const rows = await waitFor(
      () => stack.deps.db.select().from(bookings).where(inArray(bookings.id, bookingIds)),
      (list) => list.every((b) => b.status === 'canceled'),
      { timeoutMs: 60_000, what: 'every booking canceled' },
    );
    const refundedAmount = Object.fromEntries(rows.map((b) => [b.id, b.refundedAmount]));
    assert.deepEqual(refundedAmount, { [aliceBooking.id]: 5000, [bobBooking.id]: 2500, [carolBooking.id]: 2500 });

    // The refunds made now: exactly what each charge had left, one per charge.
    const made = (await refundsOf(bookingIds)).filter((r) => r.idempotencyKey.includes('/business-cancel/'));
    const byBooking = (id: string) =>
      made
        .filter((r) => r.bookingId === id)
        .map((r) => r.amount)
        .sort();
    assert.deepEqual(byBooking(aliceBooking.id), [2500, 2500], 'the checkout and the top-up');
    assert.deepEqual(byBooking(bobBooking.id), [1500], 'what staff left');
    assert.deepEqual(byBooking(carolBooking.id), [2500]);
    assert.ok(
      made.every((r) => r.status === 'succeeded'),
      JSON.stringify(made.map((r) => r.status)),
    );

    const [hold] = await stack.deps.db.select().from(holds).where(eq(holds.id, daveHold.body.hold.id));
    assert.equal(hold.status, 'released');
    const availability = await requestJson(api(`/offerings/${offering.id}/availability`));
    assert.deepEqual(availability.body.counts, { available: 8, held: 0, booked: 0 });

    const told = await waitFor(
      () =>
        stack.deps.db
          .select()
          .from(notifications)
          .where(and(inArray(notifications.bookingId, bookingIds), eq(notifications.kind, 'booking_canceled_by_business'))),
      (list) => list.length === 3,
      { what: 'every customer told' },
    );
    assert.deepEqual(told.map((n) => n.userId).sort(), [alice.user.id, bob.user.id, carol.user.id].sort());
    const aliceNotice = told.find((n) => n.userId === alice.user.id)!;
    assert.match(aliceNotice.body, /Storm warning/);
    assert.match(aliceNotice.body, /\$50\.00/);

    const handle = stack.deps.temporal.workflow.getHandle(offeringCancellationWorkflowId(offering.id));
    const progress = await waitFor(
      () => handle.query(offeringCancellationProgressQuery),
      (p) => p.phase === 'done',
      { what: 'the cancellation done' },
    );
    assert.deepEqual(
      [progress.total, progress.canceled, progress.skipped, progress.failed, progress.refundedAmount, progress.holdsReleased],
      [3, 3, 0, 0, 9000, 1],
    );

    // Gone from the catalogue, shown canceled on its own page.
    const listed = await requestJson(api('/offerings?limit=100'));
    assert.ok(!listed.body.offerings.some((o: { id: string }) => o.id === offering.id));
    const read = await requestJson(api(`/offerings/${offering.id}`));
    assert.equal(read.body.offering.status, 'canceled');

    // A repeat answers the canceled offering and changes nothing.
    const again = await cancelOffering(offering.id, { reason: 'Another reason' });
    assert.equal(again.status, 202, JSON.stringify(again.body));
    assert.deepEqual([again.body.offering.status, again.body.offering.cancelReason], ['canceled', 'Storm warning']);
    assert.equal((await refundsOf(bookingIds)).length, refundsBefore.length + made.length);
    const audits = await stack.deps.db.select().from(auditLog).where(eq(auditLog.targetId, offering.id));
    assert.deepEqual(
      audits.map((a) => [a.action, a.targetType, a.reason]),
      [['offering.cancel', 'offering', 'Storm warning']],
    );
  });

  test('an offering that has ended is a 409', async () => {
    const startsAt = new Date(Date.now() - 3 * 60 * 60 * 1000);
    const offering = await createOffering(stack, {
      startsAt: startsAt.toISOString(),
      endsAt: new Date(startsAt.getTime() + 60 * 60 * 1000).toISOString(),
    });
    const res = await cancelOffering(offering.id, { reason: 'too late' });
    assert.equal(res.status, 409, JSON.stringify(res.body));
    const read = await requestJson(api(`/offerings/${offering.id}`));
    assert.equal(read.body.offering.status, 'scheduled');
  });
});
