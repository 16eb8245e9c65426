import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { duplicateIds, holdLimitRefusal, holdTtlMilliseconds, holdTtlProblem, unitStatusOf, type HoldLimitQuestion } from './hold';

describe('hold TTL', () => {
  test('fixed positive durations up to a day', () => {
    assert.equal(holdTtlMilliseconds('PT5M'), 300_000);
    assert.equal(holdTtlMilliseconds('PT2S'), 2_000);
    assert.equal(holdTtlMilliseconds('P1D'), 86_400_000);
  });

  test('rejects zero, calendar months, too long and malformed', () => {
    assert.match(holdTtlProblem('PT0S') ?? '', /longer than zero/);
    assert.match(holdTtlProblem('P1M') ?? '', /months or years/);
    assert.match(holdTtlProblem('P2D') ?? '', /at most one day/);
    assert.match(holdTtlProblem('5 minutes') ?? '', /not an ISO-8601 duration/);
    assert.throws(() => holdTtlMilliseconds('PT0S'), RangeError);
  });
});

test('unit status follows its live claim', () => {
  assert.equal(unitStatusOf(null), 'available');
  assert.equal(unitStatusOf({ bookingId: null }), 'held');
  assert.equal(unitStatusOf({ bookingId: 'b1' }), 'booked');
});

test('duplicateIds names each repeated id once', () => {
  assert.deepEqual(duplicateIds(['a', 'b', 'a', 'c', 'a', 'b']), ['a', 'b']);
  assert.deepEqual(duplicateIds(['a', 'b']), []);
});

describe('fair-use limits of a claim', () => {
  const within: HoldLimitQuestion = { requested: 2, heldOrBookedOfOffering: 8, liveHolds: 19, maxUnitsPerCustomer: 10, holdsPerCustomerMax: 20 };

  test('up to the limits exactly is allowed', () => {
    assert.equal(holdLimitRefusal(within), undefined);
    assert.equal(holdLimitRefusal({ ...within, requested: 10, heldOrBookedOfOffering: 0, liveHolds: 0 }), undefined);
  });

  test('one unit past maxUnitsPerCustomer is refused, naming the limit and what the customer has', () => {
    assert.deepEqual(holdLimitRefusal({ ...within, requested: 3 }), {
      limit: 'maxUnitsPerCustomer',
      max: 10,
      current: 8,
      detail: 'maxUnitsPerCustomer: at most 10 units of this offering per customer (8 held or booked, 3 more asked for)',
    });
    assert.equal(holdLimitRefusal({ ...within, requested: 11, heldOrBookedOfOffering: 0, liveHolds: 0 })?.limit, 'maxUnitsPerCustomer');
  });

  test('a hold past HOLDS_PER_CUSTOMER_MAX live holds is refused, however few units it asks for', () => {
    assert.deepEqual(holdLimitRefusal({ ...within, requested: 1, heldOrBookedOfOffering: 0, liveHolds: 20 }), {
      limit: 'HOLDS_PER_CUSTOMER_MAX',
      max: 20,
      current: 20,
      detail: 'HOLDS_PER_CUSTOMER_MAX: at most 20 live holds per customer, across offerings (20 live)',
    });
  });

  test('the units limit is named first when both are reached', () => {
    assert.equal(holdLimitRefusal({ ...within, requested: 3, liveHolds: 20 })?.limit, 'maxUnitsPerCustomer');
  });

  test("a reschedule's claim counts only the units it adds net, and not as a hold", () => {
    const reschedule = { ...within, heldOrBookedOfOffering: 10, liveHolds: 20, holdsPerCustomerMax: undefined };
    assert.equal(holdLimitRefusal({ ...reschedule, requested: 0 }), undefined, 'as many units as before');
    assert.equal(holdLimitRefusal({ ...reschedule, requested: -2 }), undefined, 'fewer units');
    assert.equal(holdLimitRefusal({ ...reschedule, requested: 1 })?.limit, 'maxUnitsPerCustomer', 'more units than the limit');
    // Staff lowered the limit below what the customer has: moving without growing stays possible.
    assert.equal(holdLimitRefusal({ ...reschedule, maxUnitsPerCustomer: 4, requested: 0 }), undefined);
  });
});
