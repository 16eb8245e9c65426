import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { insertTestOffering } from './support/booking-fixtures';
import { createBooking, createOffering, offeringBody, placeHold, startBookingStack, unitStatuses, type BookingStack } from './support/booking-stack';

const DAY = 24 * 60 * 60 * 1000;

interface ListedOffering {
  id: string;
  units: unknown[];
}

describe('bookings over HTTP (dev server)', () => {
  let stack: BookingStack;
  let alice: TestUser;
  let bob: TestUser;

  before(async () => {
    stack = await startBookingStack();
    [alice, bob] = await Promise.all([createTestUser(stack.deps), createTestUser(stack.deps)]);
  });

  after(async () => {
    await stack.close();
  });

  const api = (path: string) => `${stack.url}/api/v1${path}`;

  /** Every offering of `kind` listed, following `nextOffset` from the first page; each page goes into `pages`. */
  async function listedOfferings(kind: string, pages: ListedOffering[][] = []): Promise<ListedOffering[]> {
    for (let offset: number | null = 0; offset !== null;) {
      const page = await requestJson(api(`/offerings?kind=${kind}&limit=100&offset=${offset}`));
      assert.equal(page.status, 200, JSON.stringify(page.body));
      pages.push(page.body.offerings);
      offset = page.body.nextOffset;
    }
    return pages.flat();
  }

  /** A confirmed booking of the first `count` units of a new offering. */
  async function confirmedBooking(user: TestUser, overrides: Record<string, unknown> = {}, count = 2) {
    const offering = await createOffering(stack, overrides, 6);
    const held = await placeHold(stack, user, offering.id, offering.unitIds.slice(0, count));
    assert.equal(held.status, 201);
    const booked = await createBooking(stack, user, held.body.hold.id);
    assert.equal(booked.status, 201, JSON.stringify(booked.body));
    return { offering, holdId: held.body.hold.id as string, booking: booked.body.booking };
  }

  describe('offerings', () => {
    test('staff create one with its units; everyone reads it as available', async () => {
      const body = offeringBody({ name: 'Parking lot B', kind: 'parking', reminders: ['P1D', 'PT2H'] }, 3);
      const created = await requestJson(api('/admin/offerings'), { body, headers: stack.staff.headers });
      assert.equal(created.status, 201);
      const { offering } = created.body;
      assert.equal(offering.kind, 'parking');
      assert.deepEqual(offering.reminders, ['P1D', 'PT2H']);
      assert.deepEqual(offering.cancellation, { freeUntil: 'P1D', lateRefundPercent: 50 });
      assert.deepEqual(
        offering.units.map((u: { label: string; status: string }) => [u.label, u.status]),
        [
          ['A1', 'available'],
          ['A2', 'available'],
          ['A3', 'available'],
        ],
      );

      const availability = await requestJson(api(`/offerings/${offering.id}/availability`));
      assert.equal(availability.status, 200);
      assert.deepEqual(availability.body.counts, { available: 3, held: 0, booked: 0 });
      const listed = await listedOfferings('parking');
      assert.ok(listed.some((o) => o.id === offering.id));
      const read = (await requestJson(api(`/offerings/${offering.id}`))).body.offering;
      assert.deepEqual([read.id, read.reminders], [offering.id, ['P1D', 'PT2H']]);
    });

    test('a page holds at most 2,000 units (always one offering); nextOffset leads to the next', async () => {
      const far = Date.now() + 50 * 365 * DAY;
      const [a, b, c] = [
        await insertTestOffering(stack.deps.db, { kind: 'appointment', unitCount: 800, startsAt: new Date(far) }),
        await insertTestOffering(stack.deps.db, { kind: 'appointment', unitCount: 800, startsAt: new Date(far + 60_000) }),
        await insertTestOffering(stack.deps.db, { kind: 'appointment', unitCount: 2000, startsAt: new Date(far + 120_000) }),
      ];
      const pages: ListedOffering[][] = [];
      const ids = (await listedOfferings('appointment', pages)).map((o) => o.id);
      for (const page of pages) {
        const unitCount = page.reduce((total, o) => total + o.units.length, 0);
        assert.ok(page.length === 1 || unitCount <= 2000, `${page.length} offerings, ${unitCount} units`);
      }
      assert.equal(new Set(ids).size, ids.length, 'no offering on two pages');
      const at = ids.indexOf(a.id);
      assert.deepEqual(ids.slice(at, at + 3), [a.id, b.id, c.id]);

      const fromA = (await requestJson(api(`/offerings?kind=appointment&limit=100&offset=${at}`))).body;
      assert.deepEqual([fromA.offerings.map((o: ListedOffering) => o.id), fromA.nextOffset], [[a.id, b.id], at + 2]);
      const fromC = (await requestJson(api(`/offerings?kind=appointment&limit=100&offset=${at + 2}`))).body;
      assert.deepEqual(
        fromC.offerings.map((o: ListedOffering) => [o.id, o.units.length]),
        [[c.id, 2000]],
      );
      const lastTwo = (await requestJson(api(`/offerings?kind=appointment&limit=2&offset=${at}`))).body;
      assert.equal(lastTwo.nextOffset, at + 2, 'a page cut by `limit` leads on too');
    });

    test('an empty number in the query is a 400 naming it, not read as 0', async () => {
      const listed = await requestJson(api('/offerings?offset=&kind=parking&limit=1'));
      assert.equal(listed.status, 400, JSON.stringify(listed.body));
      assert.deepEqual(
        listed.body.invalidParams.map((p: { name: string }) => p.name),
        ['offset'],
      );
    });

    test('bad offerings are refused naming each field, and customers may not create them', async () => {
      const refusedNames = async (overrides: Record<string, unknown>) => {
        const answer = await requestJson(api('/admin/offerings'), { body: offeringBody(overrides), headers: stack.staff.headers });
        assert.equal(answer.status, 400);
        return answer.body.invalidParams.map((p: { name: string }) => p.name).sort();
      };
      assert.deepEqual(await refusedNames({ kind: 'concert', holdTtl: 'P1M', units: [{ label: 'A1', amount: 1.5, currency: 'dollars' }] }), [
        'holdTtl',
        'kind',
        'units.0.amount',
        'units.0.currency',
      ]);
      assert.deepEqual(
        await refusedNames({
          startsAt: '2030-06-15T18:00:00Z',
          endsAt: '2030-06-15T17:00:00Z',
          units: [
            { label: 'A1', amount: 100, currency: 'usd' },
            { label: 'A1', amount: 100, currency: 'eur' },
          ],
        }),
        ['endsAt', 'units.1.currency', 'units.1.label'],
      );

      const asCustomer = await requestJson(api('/admin/offerings'), { body: offeringBody(), headers: alice.headers });
      assert.equal(asCustomer.status, 403);
      assert.equal((await requestJson(api(`/offerings/${randomUUID()}/availability`))).status, 404);
    });
  });

  describe('holds', () => {
    test('all or nothing; a taken unit is named; the owner releases early', async () => {
      const offering = await createOffering(stack);
      const [u1, u2, u3] = offering.unitIds;
      const first = await placeHold(stack, alice, offering.id, [u1, u2]);
      assert.equal(first.status, 201);
      assert.deepEqual(first.body.hold.unitIds, [u1, u2]);
      assert.equal(first.body.hold.status, 'active');
      assert.ok(Date.parse(first.body.hold.expiresAt) > Date.now());

      const second = await placeHold(stack, bob, offering.id, [u2, u3]);
      assert.equal(second.status, 409);
      assert.deepEqual(second.body.unavailableUnitIds, [u2]);
      assert.deepEqual(await unitStatuses(stack, offering.id), { [u1]: 'held', [u2]: 'held', [u3]: 'available', [offering.unitIds[3]]: 'available' });

      const holdUrl = api(`/bookings/holds/${first.body.hold.id}`);
      assert.equal((await requestJson(holdUrl, { method: 'DELETE', headers: bob.headers })).status, 404, 'not his hold');
      const released = await requestJson(holdUrl, { method: 'DELETE', headers: alice.headers });
      assert.equal(released.status, 200);
      assert.equal(released.body.hold.status, 'released');
      assert.equal((await unitStatuses(stack, offering.id))[u2], 'available');
      assert.equal((await requestJson(holdUrl, { method: 'DELETE', headers: alice.headers })).status, 409);
      assert.equal((await placeHold(stack, bob, offering.id, [u2, u3])).status, 201);
    });

    test('bad requests are refused, naming what is wrong, and hold nothing', async () => {
      const offering = await createOffering(stack);
      const other = await createOffering(stack);
      const [u1] = offering.unitIds;
      const cases: [unknown, number, string][] = [
        [{ offeringId: randomUUID(), unitIds: [u1] }, 404, 'Offering not found'],
        [{ offeringId: offering.id, unitIds: [] }, 400, 'unitIds'],
        [{ offeringId: offering.id, unitIds: [u1, u1] }, 400, 'unitIds'],
        [{ offeringId: offering.id, unitIds: ['seat-1'] }, 400, 'unitIds.0'],
        [{ offeringId: offering.id, unitIds: [u1, other.unitIds[0]] }, 422, other.unitIds[0]],
      ];
      for (const [body, status, named] of cases) {
        const answer = await requestJson(api('/bookings/holds'), { body, headers: alice.headers });
        assert.equal(answer.status, status, JSON.stringify(answer.body));
        assert.match(JSON.stringify(answer.body), new RegExp(named));
      }
      assert.equal((await requestJson(api('/bookings/holds'), { body: { offeringId: offering.id, unitIds: [u1] } })).status, 401);
      assert.deepEqual(Object.values(await unitStatuses(stack, offering.id)), ['available', 'available', 'available', 'available']);
    });

    test('a hold expires at its TTL and its units become available; a booking of it is refused', async () => {
      const offering = await createOffering(stack, { holdTtl: 'PT1S' });
      const held = await placeHold(stack, alice, offering.id, [offering.unitIds[0]]);
      assert.equal(held.status, 201);
      while ((await unitStatuses(stack, offering.id))[offering.unitIds[0]] !== 'available') await setTimeout(100);

      const late = await createBooking(stack, alice, held.body.hold.id);
      assert.equal(late.status, 409);
      assert.match(late.body.detail, /expired/);
    });
  });

  describe('booking', () => {
    test('confirmed with its units booked; visible to its owner and staff only; repeatable', async () => {
      const { offering, holdId, booking } = await confirmedBooking(alice);
      assert.equal(booking.status, 'confirmed');
      assert.equal(booking.userId, alice.user.id);
      assert.deepEqual(booking.unitIds, offering.unitIds.slice(0, 2));
      assert.deepEqual([booking.amount, booking.currency, booking.refundedAmount], [5000, 'usd', 0]);
      assert.equal(booking.workflowId, `booking-${booking.id}`);
      assert.equal((await unitStatuses(stack, offering.id))[offering.unitIds[0]], 'booked');

      const own = await requestJson(api(`/bookings/${booking.id}`), { headers: alice.headers });
      assert.equal(own.status, 200);
      assert.deepEqual(
        own.body.payments.map((p: { kind: string; status: string }) => [p.kind, p.status]),
        [['booking', 'succeeded']],
      );
      assert.equal((await requestJson(api(`/bookings/${booking.id}`), { headers: bob.headers })).status, 404);
      assert.equal((await requestJson(api(`/bookings/${booking.id}`), { headers: stack.staff.headers })).status, 200);
      const mine = await requestJson(api('/bookings/my'), { headers: alice.headers });
      assert.ok(mine.body.bookings.some((b: { id: string }) => b.id === booking.id));

      const again = await createBooking(stack, alice, holdId);
      assert.equal(again.status, 201);
      assert.equal(again.body.booking.id, booking.id, 'a hold makes one booking');
      assert.equal((await createBooking(stack, bob, holdId)).status, 404, 'a foreign hold');
    });

    test('an Idempotency-Key replays the first answer', async () => {
      const offering = await createOffering(stack);
      const held = await placeHold(stack, alice, offering.id, [offering.unitIds[0]]);
      const key = { 'idempotency-key': randomUUID() };
      const first = await createBooking(stack, alice, held.body.hold.id, 'pm_card_visa', key);
      const replay = await createBooking(stack, alice, held.body.hold.id, 'pm_card_visa', key);
      assert.deepEqual([first.status, replay.status], [201, 201]);
      assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(replay.body, first.body);
    });

    test('a decline answers 402 and releases the hold', async () => {
      const offering = await createOffering(stack);
      const held = await placeHold(stack, alice, offering.id, offering.unitIds.slice(0, 2));
      const declined = await createBooking(stack, alice, held.body.hold.id, 'pm_card_chargeDeclined');
      assert.equal(declined.status, 402);
      assert.equal(declined.body.reason, 'payment_declined');
      assert.equal(declined.body.booking.status, 'failed');
      assert.deepEqual(Object.values(await unitStatuses(stack, offering.id)), ['available', 'available', 'available', 'available']);
      const again = await createBooking(stack, alice, held.body.hold.id);
      assert.deepEqual([again.status, again.body.booking.id], [402, declined.body.booking.id], 'the same answer, nothing new');
    });

    test('an offering that requires a subscription answers 403 without one', async () => {
      const offering = await createOffering(stack, { requiresSubscription: true });
      const held = await placeHold(stack, bob, offering.id, [offering.unitIds[0]]);
      const refused = await createBooking(stack, bob, held.body.hold.id);
      assert.equal(refused.status, 403);
      assert.equal((await unitStatuses(stack, offering.id))[offering.unitIds[0]], 'available');
    });

    test('cancel refunds by policy with a refund payment and frees the units', async () => {
      const { offering, booking } = await confirmedBooking(alice);
      assert.equal((await requestJson(api('/bookings/cancel'), { body: { bookingId: booking.id }, headers: bob.headers })).status, 404);
      const canceled = await requestJson(api('/bookings/cancel'), { body: { bookingId: booking.id }, headers: alice.headers });
      assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
      assert.deepEqual(canceled.body.refund, { tier: 'full', amount: 5000 });
      assert.deepEqual([canceled.body.booking.status, canceled.body.booking.refundedAmount], ['canceled', 5000]);
      assert.equal((await unitStatuses(stack, offering.id))[offering.unitIds[0]], 'available');
      const detail = await requestJson(api(`/bookings/${booking.id}`), { headers: alice.headers });
      const refund = detail.body.payments.find((p: { kind: string }) => p.kind === 'refund');
      assert.deepEqual([refund.amount, refund.status], [5000, 'succeeded']);
      assert.equal((await requestJson(api('/bookings/cancel'), { body: { bookingId: booking.id }, headers: alice.headers })).status, 409);
    });

    test('reschedule swaps units and charges the difference; a refused one changes nothing', async () => {
      const { offering, booking } = await confirmedBooking(alice);
      const [u1, u2, u3, u4, u5] = offering.unitIds;
      const moved = await requestJson(api(`/bookings/${booking.id}/reschedule`), { body: { unitIds: [u3, u4, u5] }, headers: alice.headers });
      assert.equal(moved.status, 200, JSON.stringify(moved.body));
      assert.deepEqual([moved.body.booking.unitIds, moved.body.booking.amount, moved.body.difference], [[u3, u4, u5], 7500, 2500]);
      const statuses = await unitStatuses(stack, offering.id);
      assert.deepEqual([statuses[u1], statuses[u2], statuses[u3]], ['available', 'available', 'booked']);

      const rival = await placeHold(stack, bob, offering.id, [u1]);
      assert.equal(rival.status, 201);
      const blocked = await requestJson(api(`/bookings/${booking.id}/reschedule`), { body: { unitIds: [u1, u3] }, headers: alice.headers });
      assert.equal(blocked.status, 409);
      assert.deepEqual(blocked.body.unavailableUnitIds, [u1]);
      const declined = await requestJson(api(`/bookings/${booking.id}/reschedule`), {
        body: { unitIds: [u2, u3, u4, u5], paymentMethod: 'pm_card_chargeDeclined' },
        headers: alice.headers,
      });
      assert.equal(declined.status, 402);
      const after = (await requestJson(api(`/bookings/${booking.id}`), { headers: alice.headers })).body.booking;
      assert.deepEqual([after.unitIds, after.amount, after.status], [[u3, u4, u5], 7500, 'confirmed']);
      assert.equal((await unitStatuses(stack, offering.id))[u2], 'available');
      const reschedule = (user: TestUser) =>
        requestJson(api(`/bookings/${booking.id}/reschedule`), { body: { unitIds: [u3] }, headers: user.headers });
      assert.equal((await reschedule(bob)).status, 404);
      assert.equal((await reschedule(stack.staff)).status, 403);
    });
  });

  test('live availability streams unit changes as Server-Sent Events', async () => {
    const offering = await createOffering(stack);
    const abort = new AbortController();
    const response = await fetch(api(`/offerings/${offering.id}/events`), { signal: abort.signal });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
    const events = readEvents(response.body!);

    const snapshot = await events.next();
    assert.equal(snapshot.value.event, 'snapshot');
    assert.equal(JSON.parse(snapshot.value.data).counts.available, 4);

    const held = await placeHold(stack, alice, offering.id, [offering.unitIds[1]]);
    assert.equal(held.status, 201);
    const change = await events.next();
    assert.equal(change.value.event, 'units');
    assert.deepEqual(JSON.parse(change.value.data).units, [{ id: offering.unitIds[1], status: 'held' }]);

    await requestJson(api(`/bookings/holds/${held.body.hold.id}`), { method: 'DELETE', headers: alice.headers });
    const released = await events.next();
    assert.deepEqual(JSON.parse(released.value.data).units, [{ id: offering.unitIds[1], status: 'available' }]);
    abort.abort();
  });
});

/** Parses an SSE stream into `{event, data}` messages, skipping comments. */
async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields = Object.fromEntries(
        block
          .split('\n')
          .filter((line) => line && !line.startsWith(':'))
          .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]),
      );
      if (fields.event) yield { event: fields.event, data: fields.data };
    }
  }
}
