import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { planOffers } from './waitlist';

const entry = (id: string, quantity: number, unitType: string | null = null) => ({ id, userId: `u-${id}`, quantity, unitType });

describe('planOffers', () => {
  test('the first entries in line take the free units, one offer each', () => {
    const units = [
      { id: 'a', type: null },
      { id: 'b', type: null },
    ];
    assert.deepEqual(planOffers(units, [entry('1', 1), entry('2', 1), entry('3', 1)]), [
      { entryId: '1', userId: 'u-1', unitIds: ['a'] },
      { entryId: '2', userId: 'u-2', unitIds: ['b'] },
    ]);
  });

  test('an entry that does not fit keeps its place and a later one that fits is offered', () => {
    const units = [
      { id: 'a', type: 'vip' },
      { id: 'b', type: 'standard' },
    ];
    assert.deepEqual(planOffers(units, [entry('1', 3), entry('2', 2, 'vip'), entry('3', 1, 'vip'), entry('4', 2)]), [
      { entryId: '3', userId: 'u-3', unitIds: ['a'] },
    ]);
  });

  test('no free units, no offers', () => {
    assert.deepEqual(planOffers([], [entry('1', 1)]), []);
  });
});
