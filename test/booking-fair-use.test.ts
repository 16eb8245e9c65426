import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { and, eq, isNull } from 'drizzle-orm';
import { holds, unitClaims } from '../db/schema';
import { MAX_RESCHEDULES } from '../domain/booking';
import { createTestUser, requestJson, testConfig, type TestUser } from './support/api';
import { createBooking, createOffering, offeringBody, placeHold, startBookingStack, type BookingStack } from './support/booking-stack';

// Small enough to reach in a test, and above the 10 units the first parallel test is granted.
const HOLDS_MAX = 12;

type Answer = Awaited<ReturnType<typeof requestJson>>;

describe('fair use: limits per customer on holds (HTTP, dev server)', () => {
  let stack: BookingStack;

  before(async () => {
    stack = await startBookingStack({ config: testConfig({ HOLDS_PER_CUSTOMER_MAX: String(HOLDS_MAX) }) });
  });

  after(async () => {
    await stack?.close();
  });

  const api = (path: string) => `${stack.url}/api/v1${path}`;
  const newCustomer = () => createTestUser(stack.deps);

  /** The units PostgreSQL says the customer has of the offering right now (held or booked), sorted. */
  async function liveUnitsOf(customer: TestUser, offeringId: string): Promise<string[]> {
    const rows = await stack.deps.db
      .select({ unitId: unitClaims.unitId })
      .from(unitClaims)
      .innerJoin(holds, eq(holds.id, unitClaims.holdId))
      .where(and(eq(holds.userId, customer.user.id), eq(unitClaims.offeringId, offeringId), isNull(unitClaims.releasedAt)));
    return rows.map((r) => r.unitId).sort();
  }

  async function activeHoldsOf(customer: TestUser): Promise<number> {
    const rows = await stack.deps.db
      .select({ id: holds.id })
      .from(holds)
      .where(and(eq(holds.userId, customer.user.id), eq(holds.status, 'active')));
    return rows.length;
  }

  function assertLimited(answer: Answer, expected: { limit: string; max: number; current: number }): void {
    assert.equal(answer.status, 409, JSON.stringify(answer.body));
    assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const { title, limit, max, current, detail } = answer.body;
    assert.deepEqual({ title, limit, max, current }, { title: 'Hold limit reached', ...expected });
    assert.ok(detail.startsWith(`${expected.limit}: at most ${expected.max} `), detail);
  }

  async function hold(customer: TestUser, offeringId: string, unitIds: string[]): Promise<string> {
    const answer = await placeHold(stack, customer, offeringId, unitIds);
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    return answer.body.hold.id;
  }

  async function book(customer: TestUser, offeringId: string, unitIds: string[]): Promise<string> {
    const answer = await createBooking(stack, customer, await hold(customer, offeringId, unitIds));
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    return answer.body.booking.id;
  }

  async function release(customer: TestUser, holdId: string): Promise<void> {
    const answer = await requestJson(api(`/bookings/holds/${holdId}`), { method: 'DELETE', headers: customer.headers });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  }

  test('an offering carries maxUnitsPerCustomer: 10 unless staff set it, and at least 1', async () => {
    const byDefault = await createOffering(stack);
    assert.equal((await requestJson(api(`/offerings/${byDefault.id}`))).body.offering.maxUnitsPerCustomer, 10);
    const set = await requestJson(api('/admin/offerings'), { body: offeringBody({ maxUnitsPerCustomer: 3 }), headers: stack.staff.headers });
    assert.equal(set.status, 201, JSON.stringify(set.body));
    assert.equal(set.body.offering.maxUnitsPerCustomer, 3);
    for (const bad of [0, 2.5, '4']) {
      const refused = await requestJson(api('/admin/offerings'), { body: offeringBody({ maxUnitsPerCustomer: bad }), headers: stack.staff.headers });
      assert.equal(refused.status, 400, `${bad}: ${JSON.stringify(refused.body)}`);
      assert.deepEqual(
        refused.body.invalidParams.map((p: { name: string }) => p.name),
        ['maxUnitsPerCustomer'],
      );
    }
  });

  test('50 parallel holds of one customer, a unit each: exactly maxUnitsPerCustomer granted, the rest refused leaving nothing', async () => {
    const offering = await createOffering(stack, { maxUnitsPerCustomer: 10 }, 60);
    const [alice, bob] = await Promise.all([newCustomer(), newCustomer()]);
    const answers = await Promise.all(offering.unitIds.slice(0, 50).map((unitId) => placeHold(stack, alice, offering.id, [unitId])));

    const granted = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status !== 201);
    assert.equal(granted.length, 10, `statuses: ${answers.map((a) => a.status).join(', ')}`);
    assert.equal(refused.length, 40);
    // Every refusal came with the customer at the limit, never past it.
    for (const answer of refused) assertLimited(answer, { limit: 'maxUnitsPerCustomer', max: 10, current: 10 });

    const grantedUnits = granted.flatMap((a) => a.body.hold.unitIds as string[]).sort();
    assert.deepEqual(await liveUnitsOf(alice, offering.id), grantedUnits, 'PostgreSQL holds exactly the granted units');
    assert.equal(await activeHoldsOf(alice), 10, 'no hold row for a refusal');

    // Another customer is unaffected, and a refusal left no claim or gate key on its unit behind.
    const refusedUnits = offering.unitIds.slice(0, 50).filter((id) => !grantedUnits.includes(id));
    await hold(bob, offering.id, refusedUnits.slice(0, 10));
    assertLimited(await placeHold(stack, alice, offering.id, [offering.unitIds[55]]), { limit: 'maxUnitsPerCustomer', max: 10, current: 10 });
  });

  test('booked units count toward the limit; a released hold or a canceled booking frees its units', async () => {
    const offering = await createOffering(stack, { maxUnitsPerCustomer: 5 }, 12);
    const customer = await newCustomer();
    const units = offering.unitIds;
    const bookingId = await book(customer, offering.id, units.slice(0, 2));

    assertLimited(await placeHold(stack, customer, offering.id, units.slice(2, 6)), { limit: 'maxUnitsPerCustomer', max: 5, current: 2 });
    const threeHeld = await hold(customer, offering.id, units.slice(2, 5));
    assertLimited(await placeHold(stack, customer, offering.id, [units[5]]), { limit: 'maxUnitsPerCustomer', max: 5, current: 5 });

    await release(customer, threeHeld);
    const released = await hold(customer, offering.id, units.slice(5, 8));
    assertLimited(await placeHold(stack, customer, offering.id, [units[8]]), { limit: 'maxUnitsPerCustomer', max: 5, current: 5 });

    const canceled = await requestJson(api('/bookings/cancel'), { body: { bookingId }, headers: customer.headers });
    assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
    await hold(customer, offering.id, units.slice(8, 10));
    assert.deepEqual(await liveUnitsOf(customer, offering.id), [...units.slice(5, 10)].sort());
    await release(customer, released);
  });

  test('a reschedule may move a booking to as many other units, but not grow it past the limit', async () => {
    const offering = await createOffering(stack, { maxUnitsPerCustomer: 3 }, 8);
    const customer = await newCustomer();
    const units = offering.unitIds;
    const bookingId = await book(customer, offering.id, units.slice(0, 3));
    const reschedule = (unitIds: string[]) => requestJson(api(`/bookings/${bookingId}/reschedule`), { body: { unitIds }, headers: customer.headers });

    assertLimited(await reschedule(units.slice(0, 4)), { limit: 'maxUnitsPerCustomer', max: 3, current: 3 });
    assert.deepEqual(await liveUnitsOf(customer, offering.id), [...units.slice(0, 3)].sort(), 'the refused reschedule claimed nothing');

    // Three new units while the booking still has its three: the ones it lets go make the room.
    const moved = await reschedule(units.slice(3, 6));
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    assert.deepEqual(await liveUnitsOf(customer, offering.id), [...units.slice(3, 6)].sort());
  });

  test('a booking takes MAX_RESCHEDULES reschedules, then answers 409 naming the limit, and can still be canceled', async () => {
    const offering = await createOffering(stack, {}, 2);
    const customer = await newCustomer();
    const units = offering.unitIds;
    const bookingId = await book(customer, offering.id, [units[0]]);
    const reschedule = (unitIds: string[]) => requestJson(api(`/bookings/${bookingId}/reschedule`), { body: { unitIds }, headers: customer.headers });
    for (let i = 1; i <= MAX_RESCHEDULES; i++) {
      const moved = await reschedule([units[i % 2]]);
      assert.equal(moved.status, 200, JSON.stringify(moved.body));
    }
    const refused = await reschedule([units[1]]);
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    const { title, limit, max, current } = refused.body;
    assert.deepEqual({ title, limit, max, current }, { title: 'Reschedule limit reached', limit: 'MAX_RESCHEDULES', max: 10, current: 10 });
    assert.deepEqual(await liveUnitsOf(customer, offering.id), [units[0]], 'the refused reschedule claimed nothing');

    const canceled = await requestJson(api('/bookings/cancel'), { body: { bookingId }, headers: customer.headers });
    assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
    assert.equal(canceled.body.booking.status, 'canceled');
  });

  test('HOLDS_PER_CUSTOMER_MAX live holds across offerings, exact under concurrency; a booking or a release frees a place', async () => {
    // Units 0–9 are asked for at once, 10–13 are spare for later, 14 is another customer's.
    const offerings = await Promise.all([1, 2, 3].map(() => createOffering(stack, { maxUnitsPerCustomer: 15 }, 15)));
    const unitsOf = (offeringId: string) => offerings.find((o) => o.id === offeringId)!.unitIds;
    const [alice, bob] = await Promise.all([newCustomer(), newCustomer()]);
    const requests = offerings.flatMap((offering) => offering.unitIds.slice(0, 10).map((unitId) => ({ offering, unitId })));
    const answers = await Promise.all(requests.map(({ offering, unitId }) => placeHold(stack, alice, offering.id, [unitId])));

    const granted = answers.filter((a) => a.status === 201);
    assert.equal(granted.length, HOLDS_MAX, `statuses: ${answers.map((a) => a.status).join(', ')}`);
    for (const answer of answers.filter((a) => a.status !== 201)) {
      assertLimited(answer, { limit: 'HOLDS_PER_CUSTOMER_MAX', max: HOLDS_MAX, current: HOLDS_MAX });
    }
    assert.equal(await activeHoldsOf(alice), HOLDS_MAX);
    await hold(bob, offerings[0].id, [offerings[0].unitIds[14]]);

    const [first, second] = granted.map((a) => a.body.hold as { id: string; offeringId: string });
    await release(alice, first.id);
    await hold(alice, first.offeringId, [unitsOf(first.offeringId)[10]]);
    const atLimit = await placeHold(stack, alice, first.offeringId, [unitsOf(first.offeringId)[11]]);
    assertLimited(atLimit, { limit: 'HOLDS_PER_CUSTOMER_MAX', max: HOLDS_MAX, current: HOLDS_MAX });

    // A booked hold is no longer live: its units still count toward its offering, not as a hold.
    assert.equal((await createBooking(stack, alice, second.id)).status, 201);
    await hold(alice, second.offeringId, [unitsOf(second.offeringId)[12]]);
    assert.equal(await activeHoldsOf(alice), HOLDS_MAX);
  });
});
