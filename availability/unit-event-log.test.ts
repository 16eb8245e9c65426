import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { followsDirectly, formatEventId, isAfter, parseEventId, parseLiveMessage } from './unit-event-log';

describe('unit event ids', () => {
  test('read back as written; anything this server never sends is no id', () => {
    assert.deepEqual(parseEventId('1795992555681253-42'), { epoch: 1795992555681253, seq: 42 });
    assert.equal(formatEventId({ epoch: 1795992555681253, seq: 42 }), '1795992555681253-42');
    for (const text of [undefined, '', '42', 'a-1', '1-2-3', '99999999999999999-1', '1-9999999999999999']) {
      assert.equal(parseEventId(text), undefined, String(text));
    }
  });

  test('order within an epoch by seq; an event of another epoch is always new', () => {
    const last = { epoch: 100, seq: 5 };
    assert.equal(isAfter({ epoch: 100, seq: 6 }, last), true);
    assert.equal(isAfter({ epoch: 100, seq: 5 }, last), false);
    assert.equal(isAfter({ epoch: 100, seq: 4 }, last), false);
    assert.equal(isAfter({ epoch: 200, seq: 1 }, last), true);
  });

  test('an event right after the last one follows it; a skipped one means events were lost', () => {
    const last = { epoch: 100, seq: 5 };
    assert.equal(followsDirectly({ epoch: 100, seq: 6 }, last), true);
    assert.equal(followsDirectly({ epoch: 100, seq: 7 }, last), false);
    assert.equal(followsDirectly({ epoch: 200, seq: 1 }, last), true, 'the first event of a new count');
    assert.equal(followsDirectly({ epoch: 200, seq: 2 }, last), false);
  });

  test('a live message is its id, a space and the JSON', () => {
    assert.deepEqual(parseLiveMessage('100-6 {"units":[]}'), { id: { epoch: 100, seq: 6 }, data: '{"units":[]}' });
    assert.equal(parseLiveMessage('{"units":[]}'), undefined);
  });
});
