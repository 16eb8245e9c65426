import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { positionChecks } from './snapshot-cache';

describe("an offering's position checks", () => {
  /** A Redis whose HMGET answers the position as it is when the command is sent, a moment later. */
  function fakeRedis() {
    const state = { seq: 0, sent: 0 };
    const redis = {
      hmget: async () => {
        state.sent += 1;
        const answer = ['1700000000000000', String(state.seq)];
        await new Promise((resolve) => setImmediate(resolve));
        return answer;
      },
    };
    return { redis: redis as unknown as Redis, state };
  }

  test('reads that arrive while a check is on its way share the next one', async () => {
    const { redis, state } = fakeRedis();
    const positionOf = positionChecks(redis);
    const answers = await Promise.all([positionOf('o1'), positionOf('o1'), positionOf('o1'), positionOf('o1'), positionOf('o2')]);
    assert.deepEqual(answers, ['1700000000000000-0', '1700000000000000-0', '1700000000000000-0', '1700000000000000-0', '1700000000000000-0']);
    assert.equal(state.sent, 3, 'o1: the first, then one shared by the three after it; o2: its own');
  });

  test('a read never gets a position read before it asked', async () => {
    const { redis, state } = fakeRedis();
    const positionOf = positionChecks(redis);
    const first = positionOf('o1');
    // An event is published after the first check was sent: the next reader must see it.
    state.seq = 1;
    const second = positionOf('o1');
    assert.deepEqual([await first, await second], ['1700000000000000-0', '1700000000000000-1']);
  });
});
