import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import { holds, unitClaims } from '../db/schema';
import { createTestUser, testConfig, type TestUser } from './support/api';
import { createOffering, placeHold, startBookingStack, unitStatuses, type BookingStack } from './support/booking-stack';

describe('holds under concurrency (HTTP, dev server)', () => {
  let stack: BookingStack;
  let customers: TestUser[];

  before(async () => {
    // These tests are about units: limits per customer high enough never to refuse (test/booking-fair-use.test.ts has those).
    stack = await startBookingStack({ config: testConfig({ HOLDS_PER_CUSTOMER_MAX: '500' }) });
    customers = await Promise.all(Array.from({ length: 10 }, () => createTestUser(stack.deps)));
  });

  after(async () => {
    await stack.close();
  });

  const customer = (i: number) => customers[i % customers.length];

  test('200 concurrent holds on one unit: exactly one 201, the rest 409 naming it', async () => {
    const offering = await createOffering(stack, {}, 1);
    const [unitId] = offering.unitIds;
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => placeHold(stack, customer(i), offering.id, [unitId])));

    const statuses = answers.map((a) => a.status);
    assert.equal(statuses.filter((s) => s === 201).length, 1, `statuses: ${[...new Set(statuses)].join(', ')}`);
    assert.equal(statuses.filter((s) => s === 409).length, 199);
    for (const refused of answers.filter((a) => a.status === 409)) assert.deepEqual(refused.body.unavailableUnitIds, [unitId]);

    const winner = answers.find((a) => a.status === 201)!.body.hold;
    const claims = await stack.deps.db
      .select()
      .from(unitClaims)
      .where(and(eq(unitClaims.unitId, unitId), isNull(unitClaims.releasedAt)));
    assert.deepEqual(
      claims.map((c) => c.holdId),
      [winner.id],
    );
    assert.deepEqual(await unitStatuses(stack, offering.id), { [unitId]: 'held' });
  });

  test('500 concurrent overlapping holds over 50 units: no unit twice, every 201 backed by its rows', async () => {
    const offering = await createOffering(stack, { maxUnitsPerCustomer: 50 }, 50);
    const requests = Array.from({ length: 500 }, (_, i) => pickUnits(offering.unitIds, 1 + (i % 4), i));
    const answers = await Promise.all(requests.map((unitIds, i) => placeHold(stack, customer(i), offering.id, unitIds)));

    assert.deepEqual([...new Set(answers.map((a) => a.status))].sort(), [201, 409]);
    const held = answers.filter((a) => a.status === 201).map((a) => a.body.hold as { id: string; unitIds: string[] });
    const live = await stack.deps.db
      .select()
      .from(unitClaims)
      .where(and(eq(unitClaims.offeringId, offering.id), isNull(unitClaims.releasedAt)));

    const perUnit = new Map<string, number>();
    for (const claim of live) perUnit.set(claim.unitId, (perUnit.get(claim.unitId) ?? 0) + 1);
    assert.ok(
      [...perUnit.values()].every((n) => n === 1),
      'no unit has two live claims',
    );

    const claimedBy = new Map(live.map((c) => [c.unitId, c.holdId]));
    for (const hold of held) {
      for (const unitId of hold.unitIds) assert.equal(claimedBy.get(unitId), hold.id, `unit ${unitId} of hold ${hold.id}`);
    }
    assert.equal(
      live.length,
      held.reduce((n, h) => n + h.unitIds.length, 0),
      'no claim without a 201',
    );
    const heldUnits = new Set(held.flatMap((h) => h.unitIds));
    for (const [i, refused] of answers.entries()) {
      if (refused.status !== 409) continue;
      assert.ok(refused.body.unavailableUnitIds.length > 0);
      for (const unitId of refused.body.unavailableUnitIds) {
        assert.ok(requests[i].includes(unitId) && heldUnits.has(unitId), 'a 409 names units of the request that are held');
      }
    }
    const holdRows = await stack.deps.db
      .select({ count: sql<number>`count(*)::int` })
      .from(holds)
      .where(and(eq(holds.offeringId, offering.id), inArray(holds.status, ['active'])));
    assert.equal(holdRows[0].count, held.length);
  });
});

/** `count` distinct units from a deterministic spread over the list, so requests overlap. */
function pickUnits(unitIds: string[], count: number, seed: number): string[] {
  const picked = new Set<string>();
  let i = (seed * 7919) % unitIds.length;
  while (picked.size < count) {
    picked.add(unitIds[i]);
    i = (i + 1 + (seed % 5)) % unitIds.length;
  }
  return [...picked];
}
