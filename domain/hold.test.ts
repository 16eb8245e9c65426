import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { duplicateIds, holdTtlMilliseconds, holdTtlProblem, unitStatusOf } from './hold';

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
