import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { and, asc, eq, inArray, isNull } from 'drizzle-orm';
import { issueToken } from '../api/auth';
import { holds, unitClaims, users, waitlistEntries } from '../db/schema';
import { toUserView } from '../domain/user';
import { waitlistWorkflowId } from '../domain/waitlist';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { createBooking, createOffering, placeHold, startBookingStack, type BookingStack } from './support/booking-stack';

describe('waitlists over HTTP (dev server)', () => {
  let stack: BookingStack;

  before(async () => {
    stack = await startBookingStack();
  });

  after(async () => {
    await stack.close();
  });

  const api = (path: string) => `${stack.url}/api/v1${path}`;
  const join = (user: TestUser, offeringId: string, body: Record<string, unknown> = { quantity: 1 }) =>
    requestJson(api(`/offerings/${offeringId}/waitlist`), { body, headers: user.headers });
  const myEntry = (user: TestUser, offeringId: string) => requestJson(api(`/offerings/${offeringId}/waitlist`), { headers: user.headers });
  const cancel = (user: TestUser, bookingId: string) => requestJson(api('/bookings/cancel'), { body: { bookingId }, headers: user.headers });

  /** Customers of their own, written in one statement (with tokens), for lines of hundreds. */
  async function customers(count: number): Promise<TestUser[]> {
    const rows = await stack.deps.db
      .insert(users)
      .values(Array.from({ length: count }, () => ({ email: `line-${randomUUID()}@example.test`, name: 'In line', passwordHash: 'not-a-real-hash' })))
      .returning();
    return Promise.all(
      rows.map(async (row) => {
        const token = await issueToken(stack.deps.config, row);
        return { user: toUserView(row), password: '', token, headers: { authorization: `Bearer ${token}` } };
      }),
    );
  }

  /** A confirmed booking of `unitIds` by `user`. */
  async function book(user: TestUser, offeringId: string, unitIds: string[]): Promise<string> {
    const held = await placeHold(stack, user, offeringId, unitIds);
    assert.equal(held.status, 201, JSON.stringify(held.body));
    const booked = await createBooking(stack, user, held.body.hold.id);
    assert.equal(booked.status, 201, JSON.stringify(booked.body));
    return booked.body.booking.id;
  }

  /** Polls GET until the caller's entry shows `status` (the workflow makes offers after the request that freed units). */
  async function entryBecomes(user: TestUser, offeringId: string, status: string) {
    for (let i = 0; i < 500; i++) {
      const { body } = await myEntry(user, offeringId);
      if (body.entry?.status === status) return body.entry;
      await setTimeout(50);
    }
    assert.fail(`the entry never became ${status}: ${JSON.stringify((await myEntry(user, offeringId)).body)}`);
  }

  test('join only when sold out; positions, GET and DELETE; an offer left passes on, an offer booked is booked', async () => {
    const [alice, bob, carol, dave] = await Promise.all([1, 2, 3, 4].map(() => createTestUser(stack.deps)));
    const offering = await createOffering(stack, {}, 1);

    const early = await join(bob, offering.id);
    assert.equal(early.status, 409, 'a unit can be held: no waiting');
    assert.equal(early.body.title, 'Units are available');

    const aliceBooking = await book(alice, offering.id, offering.unitIds);
    const bobJoined = await join(bob, offering.id);
    assert.equal(bobJoined.status, 201, JSON.stringify(bobJoined.body));
    assert.deepEqual([bobJoined.body.entry.position, bobJoined.body.entry.status, bobJoined.body.entry.holdId], [1, 'waiting', null]);
    const carolJoined = await join(carol, offering.id);
    assert.equal(carolJoined.body.entry.position, 2);
    assert.equal((await join(bob, offering.id)).status, 409, 'one live entry per customer');
    assert.equal((await join(dave, offering.id, { quantity: 11 })).status, 409, 'above maxUnitsPerCustomer');
    assert.equal((await join(dave, offering.id, { quantity: 1, unitType: 'balcony' })).status, 422);
    assert.equal((await join(dave, offering.id, { quantity: 0 })).status, 400);
    assert.equal((await myEntry(dave, offering.id)).status, 404);

    // The unit comes back: the first in line is offered it, and nobody else may hold it.
    assert.equal((await cancel(alice, aliceBooking)).status, 200);
    const offered = await entryBecomes(bob, offering.id, 'offered');
    assert.ok(offered.holdId && offered.offerExpiresAt);
    assert.equal(offered.position, 1);
    assert.equal((await placeHold(stack, dave, offering.id, offering.unitIds)).status, 409);
    assert.equal((await myEntry(carol, offering.id)).body.entry.status, 'waiting');

    // Bob leaves with the offer in hand: it is given back and passes to Carol, now first.
    const left = await requestJson(api(`/offerings/${offering.id}/waitlist/${bobJoined.body.entry.id}`), { method: 'DELETE', headers: bob.headers });
    assert.equal(left.status, 200, JSON.stringify(left.body));
    assert.deepEqual([left.body.entry.status, left.body.entry.position], ['left', null]);
    const carolOffer = await entryBecomes(carol, offering.id, 'offered');
    assert.equal(carolOffer.position, 1);
    const [bobHold] = await stack.deps.db.select().from(holds).where(eq(holds.id, offered.holdId));
    assert.equal(bobHold.status, 'released');

    const booked = await createBooking(stack, carol, carolOffer.holdId);
    assert.equal(booked.status, 201, JSON.stringify(booked.body));
    assert.deepEqual(booked.body.booking.unitIds, offering.unitIds);
    const done = (await myEntry(carol, offering.id)).body.entry;
    assert.deepEqual([done.status, done.position], ['booked', null]);
    const again = await requestJson(api(`/offerings/${offering.id}/waitlist/${carolJoined.body.entry.id}`), {
      method: 'DELETE',
      headers: carol.headers,
    });
    assert.equal(again.status, 409);
  });

  test('a unit freed while someone waits for more is kept for the line: a normal hold is refused', async () => {
    const [alice, bob, erin, frank] = await Promise.all([1, 2, 3, 4].map(() => createTestUser(stack.deps)));
    const offering = await createOffering(stack, {}, 2);
    const aliceBooking = await book(alice, offering.id, [offering.unitIds[0]]);
    const bobBooking = await book(bob, offering.id, [offering.unitIds[1]]);
    assert.equal((await join(erin, offering.id, { quantity: 2 })).status, 201);

    assert.equal((await cancel(alice, aliceBooking)).status, 200);
    const refused = await placeHold(stack, frank, offering.id, [offering.unitIds[0]]);
    assert.equal(refused.status, 409);
    assert.equal(refused.body.title, 'Units reserved for the waitlist');

    // The second unit frees: Erin, first, fits now and is offered both.
    assert.equal((await cancel(bob, bobBooking)).status, 200);
    const offer = await entryBecomes(erin, offering.id, 'offered');
    const joined = await join(frank, offering.id);
    assert.equal(joined.status, 201, JSON.stringify(joined.body));
    assert.equal(joined.body.entry.position, 2, 'behind the offered entry');
    const claims = await stack.deps.db
      .select()
      .from(unitClaims)
      .where(and(eq(unitClaims.offeringId, offering.id), isNull(unitClaims.releasedAt)));
    assert.deepEqual(
      claims.map((c) => c.holdId),
      [offer.holdId, offer.holdId],
    );
  });

  test('200 customers in line for a sold-out offering, 20 bookings canceled at once: 20 offers, to the first 20, each unit held once', async () => {
    const bookers = await customers(20);
    const line = await customers(200);
    const outsiders = await customers(5);
    const offering = await createOffering(stack, {}, 20);
    const bookingIds = await Promise.all(bookers.map((booker, i) => book(booker, offering.id, [offering.unitIds[i]])));
    const bookerHolds = await stack.deps.db.select({ id: holds.id }).from(holds).where(eq(holds.offeringId, offering.id));

    for (let i = 0; i < line.length; i += 25) {
      const answers = await Promise.all(line.slice(i, i + 25).map((customer) => join(customer, offering.id)));
      for (const answer of answers) assert.equal(answer.status, 201, JSON.stringify(answer.body));
    }

    // Everyone cancels at once, while outsiders keep trying to hold the units.
    const [cancels, grabs] = await Promise.all([
      Promise.all(bookers.map((booker, i) => cancel(booker, bookingIds[i]))),
      Promise.all(outsiders.map((outsider) => placeHold(stack, outsider, offering.id, offering.unitIds.slice(0, 1)))),
    ]);
    for (const answer of cancels) assert.equal(answer.status, 200, JSON.stringify(answer.body));
    for (const answer of grabs) assert.equal(answer.status, 409, JSON.stringify(answer.body));
    const lateGrabs = await Promise.all(outsiders.map((outsider, i) => placeHold(stack, outsider, offering.id, [offering.unitIds[i]])));
    for (const answer of lateGrabs) assert.equal(answer.status, 409, JSON.stringify(answer.body));

    const entries = async () =>
      stack.deps.db.select().from(waitlistEntries).where(eq(waitlistEntries.offeringId, offering.id)).orderBy(asc(waitlistEntries.position));
    for (let i = 0; i < 600 && (await entries()).filter((e) => e.status === 'offered').length < 20; i++) await setTimeout(100);
    const all = await entries();
    assert.equal(all.length, 200);
    assert.deepEqual(
      all.map((e) => e.status),
      [...Array<string>(20).fill('offered'), ...Array<string>(180).fill('waiting')],
      'the first 20 in line are offered, the rest still wait',
    );

    // Every freed unit has one live claim, the hold of one of the 20 offers, each offer its own.
    const offers = all.slice(0, 20);
    const claims = await stack.deps.db
      .select()
      .from(unitClaims)
      .where(and(eq(unitClaims.offeringId, offering.id), isNull(unitClaims.releasedAt)));
    assert.equal(claims.length, 20);
    assert.deepEqual(new Set(claims.map((c) => c.unitId)), new Set(offering.unitIds));
    assert.deepEqual(new Set(claims.map((c) => c.holdId)), new Set(offers.map((e) => e.holdId)));
    // No other hold of the offering was ever made: the bookers' own, then the 20 offers.
    const everyHold = await stack.deps.db.select().from(holds).where(eq(holds.offeringId, offering.id));
    const expected = new Set([...bookerHolds.map((h) => h.id), ...offers.map((e) => e.holdId)]);
    assert.equal(everyHold.length, 40);
    assert.deepEqual(new Set(everyHold.map((h) => h.id)), expected);
    const offerHolds = await stack.deps.db
      .select()
      .from(holds)
      .where(
        inArray(
          holds.id,
          offers.map((e) => e.holdId!),
        ),
      );
    for (const hold of offerHolds) {
      const entry = offers.find((e) => e.holdId === hold.id)!;
      assert.deepEqual([hold.userId, hold.status, hold.unitIds.length], [entry.userId, 'active', 1]);
    }
    // The 21st sees its place: first of those still waiting, behind the 20 offered.
    assert.equal(
      (
        await myEntry(
          line.find((c) => c.user.id === all[20].userId)!,
          offering.id,
        )
      ).body.entry.position,
      21,
    );
  });

  test('the business cancels the offering: the line is closed and its workflow ends', async () => {
    const [alice, bob] = await Promise.all([1, 2].map(() => createTestUser(stack.deps)));
    const offering = await createOffering(stack, {}, 1);
    await book(alice, offering.id, offering.unitIds);
    const joined = await join(bob, offering.id);
    assert.equal(joined.status, 201);
    const canceled = await requestJson(api(`/admin/offerings/${offering.id}/cancel`), {
      body: { reason: 'Storm warning' },
      headers: stack.staff.headers,
    });
    assert.equal(canceled.status, 202, JSON.stringify(canceled.body));
    await stack.deps.temporal.workflow.getHandle(canceled.body.cancellation.workflowId).result();
    await entryBecomes(bob, offering.id, 'closed');
    const line = stack.deps.temporal.workflow.getHandle(waitlistWorkflowId(offering.id));
    assert.ok(['canceled', 'closed'].includes(await line.result()), 'ended by the signal, or by the round that found the offering canceled');
    assert.equal((await join(bob, offering.id)).status, 409);
    const [claim] = await stack.deps.db
      .select()
      .from(unitClaims)
      .where(and(eq(unitClaims.offeringId, offering.id), isNull(unitClaims.releasedAt)));
    assert.equal(claim, undefined, 'the unit freed by the refund was offered to nobody');
  });
});
