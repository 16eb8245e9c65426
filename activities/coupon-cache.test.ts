/**
 * The coupon cache's copies in this process (activities/coupon-cache.ts) on a real Redis, with a
 * clock that only the test moves: so a copy can only be dropped by what the test does (a change
 * announced by another connection, a lost subscription, a change during a load), never by time
 * passing. Also the whole cache across two connections (two processes) on real PostgreSQL.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { connectDatabase, migrateDatabase, type DatabaseHandle } from '../db/client';
import { deactivateCoupon, insertCoupon } from '../db/coupons';
import type { CouponState } from '../domain/coupon';
import { createLogger } from '../platform/logger';
import { testCouponState, testCouponTerms } from '../test/support/coupon-fixtures';
import { eventually } from '../test/support/subscription-fixtures';
import { createCouponCache, createLocalCopies, LOCAL_RECHECK_MS, localCopiesOf, type LocalCopies } from './coupon-cache';

const logger = createLogger({ LOG_LEVEL: 'silent', NODE_ENV: 'test' });

function coupon(code: string, fields: Partial<CouponState> = {}): CouponState {
  return testCouponState({ code, percentOff: 10, ...fields });
}

/** A promise the test settles: a load that is still under way. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('coupon cache: copies in this process', () => {
  let redis: Redis;
  let other: Redis;
  let copies: LocalCopies;
  let clock = 0;
  const connectionName = `coupon-cache-test-${randomUUID()}`;

  before(async () => {
    // The subscriber is a duplicate of this connection, so it carries the same (unique) name.
    redis = new Redis(process.env.REDIS_URL!, { connectionName });
    other = new Redis(process.env.REDIS_URL!);
    copies = createLocalCopies(redis, logger, () => clock);
    // The first read once Redis is up subscribes.
    await eventually(async () => {
      await copies.read('warm-up', async () => null);
      assert.ok(copies.listening, 'subscribed to changes');
    });
  });

  after(async () => {
    await redis.quit();
    await other.quit();
  });

  const code = () => `code-${randomUUID()}`;
  const loadsOf = (value: CouponState | null) => {
    const calls = { count: 0 };
    return { calls, load: async () => (calls.count++, value) };
  };

  test('a copy answers until a change of its code is announced by another connection', async () => {
    const key = code();
    const [v1, v2] = [coupon(key), coupon(key, { active: false })];
    assert.deepEqual(await copies.read(key, async () => v1), v1);
    const again = loadsOf(v2);
    assert.deepEqual(await copies.read(key, again.load), v1, 'the copy answered');
    assert.equal(again.calls.count, 0);
    // As another process's cache announces it (in any case; announcing reads no database), with the
    // test's clock standing still.
    await createCouponCache({ db: undefined as never, redis: other, logger }).invalidate(key.toUpperCase());
    await eventually(async () => assert.deepEqual(await copies.read(key, again.load), v2));
  });

  test('a copy is checked again once it is LOCAL_RECHECK_MS old', async () => {
    const key = code();
    await copies.read(key, async () => coupon(key));
    clock += LOCAL_RECHECK_MS;
    const fresh = coupon(key, { redemptionCount: 1 });
    assert.deepEqual(await copies.read(key, async () => fresh), fresh);
  });

  test('reads of a code while it loads share the one load', async () => {
    const key = code();
    const pending = deferred<CouponState | null>();
    let loads = 0;
    const load = () => (loads++, pending.promise);
    const reads = [copies.read(key, load), copies.read(key, load), copies.read(key, load)];
    pending.resolve(coupon(key));
    const answers = await Promise.all(reads);
    assert.equal(loads, 1);
    assert.ok(answers.every((answer) => answer === answers[0]));
  });

  test('a load under way when its code changes answers its readers but is not kept', async () => {
    const [changed, untouched] = [code(), code()];
    const pendingChanged = deferred<CouponState | null>();
    const pendingUntouched = deferred<CouponState | null>();
    const reads = [copies.read(changed, () => pendingChanged.promise), copies.read(untouched, () => pendingUntouched.promise)];
    copies.forget(changed);
    const [old, kept] = [coupon(changed), coupon(untouched)];
    pendingChanged.resolve(old);
    pendingUntouched.resolve(kept);
    assert.deepEqual(await Promise.all(reads), [old, kept]);

    const fresh = coupon(changed, { active: false });
    assert.deepEqual(await copies.read(changed, async () => fresh), fresh, 'the old answer was not kept');
    assert.deepEqual(await copies.read(untouched, async () => coupon(untouched, { active: false })), kept, 'the other code was kept');
  });

  test('a lost subscription drops every copy, and none is used until it is back', async () => {
    const key = code();
    const v1 = coupon(key);
    await copies.read(key, async () => v1);
    assert.deepEqual(await copies.read(key, async () => null), v1);
    // Changes announced while the subscriber is away are lost to it.
    const clients = String(await other.client('LIST'))
      .split('\n')
      .filter((line) => line.includes(`name=${connectionName}`) && / sub=[1-9]/.test(line));
    assert.equal(clients.length, 1, 'one subscriber with the test connection name');
    await other.client('KILL', 'ID', /^id=(\d+)/.exec(clients[0])![1]);
    const v2 = coupon(key, { active: false });
    await eventually(async () => assert.deepEqual(await copies.read(key, async () => v2), v2));
    // Back again (the subscriber reconnects): copies are kept from then on.
    await eventually(async () => assert.ok(copies.listening, 'subscribed again'));
    await copies.read(key, async () => v2);
    assert.deepEqual(await copies.read(key, async () => v1), v2);
  });
});

describe('coupon cache: two processes on PostgreSQL and Redis', () => {
  let database: DatabaseHandle;
  const connections: Redis[] = [];

  before(async () => {
    await migrateDatabase(process.env.DATABASE_URL!);
    database = connectDatabase(process.env.DATABASE_URL!, { max: 4 });
  });

  after(async () => {
    await Promise.all(connections.map((c) => c.quit()));
    await database.close();
  });

  /** A cache as another process would have it: a Redis connection of its own. */
  function processCache() {
    const redis = new Redis(process.env.REDIS_URL!);
    connections.push(redis);
    const cache = createCouponCache({ db: database.db, redis, logger });
    return Object.assign(cache, { listening: () => localCopiesOf(redis, logger).listening });
  }

  test('a change made through one is seen by the other; by the one that made it at once', async () => {
    const [here, there] = [processCache(), processCache()];
    const row = await insertCoupon(database.db, testCouponTerms({ code: `Two-${randomUUID().slice(0, 8)}`, percentOff: 15 }), null);
    assert.ok(row);
    // Each process keeps a copy once it is subscribed to changes.
    for (const cache of [here, there]) {
      await eventually(async () => {
        assert.equal((await cache.byCode(row.code.toLowerCase()))?.active, true);
        assert.ok(cache.listening());
      });
      assert.equal((await cache.byCode(row.code))?.active, true);
    }

    await deactivateCoupon(database.db, row.id);
    await here.invalidate(row.code);
    assert.equal((await here.byCode(row.code))?.active, false, 'the process that made the change sees it at once');
    await eventually(async () => assert.equal((await there.byCode(row.code))?.active, false, 'the other process sees it'));
  });
});
