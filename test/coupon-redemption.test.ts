/**
 * Coupon redemptions on real PostgreSQL and Redis: 200 customers racing for 50 places get exactly
 * 50, with Redis up and with Redis unreachable; a customer redeems once; a release gives the
 * place back once; a repeat of a redemption takes no second place.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { and, eq, isNull } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { couponGateKey, createCouponRedemptions } from '../activities/coupon';
import { connectDatabase, migrateDatabase, type Database } from '../db/client';
import { couponById, insertCoupon } from '../db/coupons';
import { couponRedemptions } from '../db/schema';
import type { CouponTerms } from '../domain/coupon';
import { loadConfig } from '../platform/config';
import { createLogger } from '../platform/logger';
import { closedLoopbackPort, insertTestUser } from './support/payment-fixtures';

const config = loadConfig({ LOG_LEVEL: 'silent', ...process.env });
const logger = createLogger(config);
let database: ReturnType<typeof connectDatabase>;
let db: Database;
let redis: Redis;
let deadRedis: Redis;
let customers: string[];

before(async () => {
  await migrateDatabase(config.DATABASE_URL);
  // As many connections as the worker's pool has: the race queues on the coupon's row, not the pool.
  database = connectDatabase(config.DATABASE_URL, { max: 20 });
  db = database.db;
  redis = new Redis(config.REDIS_URL);
  deadRedis = new Redis(await closedLoopbackPort(), '127.0.0.1', { maxRetriesPerRequest: 1 });
  deadRedis.on('error', () => undefined);
  customers = [];
  for (let i = 0; i < 200; i++) customers.push((await insertTestUser(db)).id);
});

after(async () => {
  await redis.quit();
  deadRedis.disconnect();
  await database.close();
});

async function newCoupon(fields: Partial<CouponTerms> = {}) {
  const row = await insertCoupon(
    db,
    {
      code: `RACE-${randomUUID().slice(0, 8)}`,
      percentOff: 20,
      amountOff: null,
      currency: null,
      duration: 'once',
      durationInCycles: null,
      maxRedemptions: 50,
      redeemBy: null,
      appliesToPlans: null,
      firstTimeOnly: false,
      ...fields,
    },
    null,
  );
  assert.ok(row);
  return row;
}

const liveRedemptions = (couponId: string) =>
  db
    .select()
    .from(couponRedemptions)
    .where(and(eq(couponRedemptions.couponId, couponId), isNull(couponRedemptions.releasedAt)));

async function race(redemptions: ReturnType<typeof createCouponRedemptions>, couponId: string) {
  const outcomes = await Promise.all(
    customers.map((userId) => redemptions.redeem({ redemptionId: randomUUID(), couponId, userId, subscriptionId: null })),
  );
  const redeemed = outcomes.filter((o) => o.status === 'redeemed');
  const reasons = new Set(outcomes.flatMap((o) => (o.status === 'refused' ? [o.reason] : [])));
  return { redeemed, reasons };
}

describe('200 concurrent redemptions of a coupon with maxRedemptions 50', () => {
  test('with Redis as the gate: exactly 50, the rest exhausted', async () => {
    const coupon = await newCoupon();
    const { redeemed, reasons } = await race(createCouponRedemptions({ db, logger, redis }), coupon.id);
    assert.equal(redeemed.length, 50);
    assert.deepEqual([...reasons], ['exhausted']);
    assert.equal((await couponById(db, coupon.id))!.redemptionCount, 50);
    assert.equal((await liveRedemptions(coupon.id)).length, 50);
    // At most what PostgreSQL took: a redemption whose gate call timed out under the race went to
    // PostgreSQL without counting (the gate is best-effort; its TTL re-seeds it from the count).
    assert.ok(Number(await redis.get(couponGateKey(coupon.id))) <= 50, 'the gate never counts more than PostgreSQL took');
  });

  test('with Redis unreachable: still exactly 50, through PostgreSQL alone', async () => {
    const coupon = await newCoupon();
    const { redeemed, reasons } = await race(createCouponRedemptions({ db, logger, redis: deadRedis }), coupon.id);
    assert.equal(redeemed.length, 50);
    assert.deepEqual([...reasons], ['exhausted']);
    assert.equal((await couponById(db, coupon.id))!.redemptionCount, 50);
    assert.equal((await liveRedemptions(coupon.id)).length, 50);
  });

  test('a counter left too high by a crash never refuses a free place', async () => {
    const coupon = await newCoupon({ maxRedemptions: 2 });
    await redis.set(couponGateKey(coupon.id), 2);
    const redemptions = createCouponRedemptions({ db, logger, redis });
    const outcome = await redemptions.redeem({ redemptionId: randomUUID(), couponId: coupon.id, userId: customers[0], subscriptionId: null });
    assert.equal(outcome.status, 'redeemed');
  });
});

describe('one customer, one redemption; releases give the place back once', () => {
  test('a customer redeems once; a repeat of the same redemption takes no second place', async () => {
    const coupon = await newCoupon({ maxRedemptions: 5 });
    const redemptions = createCouponRedemptions({ db, logger, redis });
    const request = { redemptionId: randomUUID(), couponId: coupon.id, userId: customers[1], subscriptionId: null };
    const [first, repeat] = await Promise.all([redemptions.redeem(request), redemptions.redeem(request)]);
    assert.equal(first.status, 'redeemed');
    assert.equal(repeat.status, 'redeemed');
    const again = await redemptions.redeem({ ...request, redemptionId: randomUUID() });
    assert.deepEqual(again, { status: 'refused', reason: 'already_redeemed' });
    assert.equal((await couponById(db, coupon.id))!.redemptionCount, 1);
    assert.equal(await redis.get(couponGateKey(coupon.id)), '1');
  });

  test('the customer holding the last place is told already_redeemed, not exhausted, with Redis or without', async () => {
    const coupon = await newCoupon({ maxRedemptions: 1 });
    const request = { redemptionId: randomUUID(), couponId: coupon.id, userId: customers[4], subscriptionId: null };
    assert.equal((await createCouponRedemptions({ db, logger, redis }).redeem(request)).status, 'redeemed');
    for (const gate of [redis, deadRedis]) {
      const again = await createCouponRedemptions({ db, logger, redis: gate }).redeem({ ...request, redemptionId: randomUUID() });
      assert.deepEqual(again, { status: 'refused', reason: 'already_redeemed' });
    }
    const other = { ...request, userId: customers[5], redemptionId: randomUUID() };
    assert.deepEqual(await createCouponRedemptions({ db, logger, redis }).redeem(other), { status: 'refused', reason: 'exhausted' });
  });

  test('a release gives the place back once, and the customer may redeem again', async () => {
    const coupon = await newCoupon({ maxRedemptions: 1 });
    const redemptions = createCouponRedemptions({ db, logger, redis });
    const request = { redemptionId: randomUUID(), couponId: coupon.id, userId: customers[2], subscriptionId: null };
    assert.equal((await redemptions.redeem(request)).status, 'redeemed');
    const other = { ...request, userId: customers[3], redemptionId: randomUUID() };
    assert.deepEqual(await redemptions.redeem(other), { status: 'refused', reason: 'exhausted' });

    const released = await Promise.all([redemptions.release(request), redemptions.release(request)]);
    assert.deepEqual(released.sort(), [false, true], 'released by exactly one call');
    assert.equal((await couponById(db, coupon.id))!.redemptionCount, 0);
    assert.deepEqual(await redemptions.redeem(request), { status: 'refused', reason: 'already_redeemed' }, 'a released id stays spent');
    assert.equal((await redemptions.redeem(other)).status, 'redeemed');
    assert.equal((await redemptions.redeem({ ...request, redemptionId: randomUUID() })).status === 'refused', true);
  });

  test('inactive, past its date or unknown: refused without taking a place', async () => {
    const redemptions = createCouponRedemptions({ db, logger, redis });
    const expired = await newCoupon({ redeemBy: new Date(Date.now() + 300).toISOString() });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const ask = (couponId: string) => redemptions.redeem({ redemptionId: randomUUID(), couponId, userId: customers[4], subscriptionId: null });
    assert.deepEqual(await ask(expired.id), { status: 'refused', reason: 'expired' });
    assert.deepEqual(await ask(randomUUID()), { status: 'refused', reason: 'unknown' });
    assert.equal((await couponById(db, expired.id))!.redemptionCount, 0);
  });

  test('not for another plan or currency; judged before any place is taken', async () => {
    const planId = randomUUID();
    const coupon = await newCoupon({ appliesToPlans: [planId] });
    const eur = await newCoupon({ percentOff: null, amountOff: 500, currency: 'eur' });
    const redemptions = createCouponRedemptions({ db, logger, redis });
    const ask = (couponId: string, plan: { id: string; currency: string }) =>
      redemptions.redeem({ redemptionId: randomUUID(), couponId, userId: customers[5], subscriptionId: null, plan });
    assert.deepEqual(await ask(coupon.id, { id: randomUUID(), currency: 'usd' }), { status: 'refused', reason: 'not_applicable' });
    assert.deepEqual(await ask(eur.id, { id: planId, currency: 'usd' }), { status: 'refused', reason: 'not_applicable' });
    assert.equal((await couponById(db, coupon.id))!.redemptionCount, 0);
    assert.equal((await ask(coupon.id, { id: planId, currency: 'usd' })).status, 'redeemed');
  });

  test('the CHECK refuses a count above the maximum even without the conditional UPDATE', async () => {
    const coupon = await newCoupon({ maxRedemptions: 1 });
    await assert.rejects(database.sql`update coupons set redemption_count = 2 where id = ${coupon.id}`, /coupons_redemptions_within_max/);
  });
});
