import type { Redis } from 'ioredis';
import type { Database } from '../db/client';
import {
  couponById,
  couponStateOf,
  hasSubscribedBefore,
  liveRedemption,
  redeemInDatabase,
  redemptionById,
  releaseInDatabase,
  type CouponRow,
  type RedemptionOutcome,
  type RedemptionRequest,
} from '../db/coupons';
import { couponRefusal } from '../domain/coupon';
import type { Logger } from '../platform/logger';
import { createCouponCache, type CouponCache } from './coupon-cache';

/**
 * Coupon redemptions: a Redis counter as the fast gate, PostgreSQL as the guarantee (the seat-hold
 * shape). The gate counts places taken per coupon with a limit; once it says "full", racing
 * redemptions are turned away without a write to PostgreSQL. Every Redis call is best-effort,
 * bounded in time and skipped while Redis is not connected: losing Redis sends every redemption
 * to PostgreSQL's conditional UPDATE (slower), never over the limit. A "full" gate is checked
 * against PostgreSQL's count, so a counter left high by a crash never refuses a free place.
 */
const REDIS_TIMEOUT_MS = 300;
// A counter is re-read from PostgreSQL at least this often, so drift (a crash between the INCR
// and the transaction) heals by itself.
const GATE_TTL_SECONDS = 3600;

// KEYS[1]: the coupon's counter; ARGV[1]: its maxRedemptions. -2: not seeded; -1: full; else the count after.
const TAKE_SCRIPT = `
local n = redis.call('GET', KEYS[1])
if not n then return -2 end
if tonumber(n) >= tonumber(ARGV[1]) then return -1 end
return redis.call('INCR', KEYS[1])`;

// Gives a place back, never below zero; a missing key stays missing (it is seeded from PostgreSQL).
const GIVE_BACK_SCRIPT = `
local n = redis.call('GET', KEYS[1])
if n and tonumber(n) > 0 then return redis.call('DECR', KEYS[1]) end
return 0`;

export const couponGateKey = (couponId: string) => `coupon-gate:{${couponId}}`;

export type CouponGateAnswer = 'taken' | 'full' | 'unavailable';

export interface CouponGate {
  /** Takes a place below `max`; `seed` answers PostgreSQL's count when the counter is missing. */
  take(couponId: string, max: number, seed: () => Promise<number>): Promise<CouponGateAnswer>;
  /** Gives a place back (a refused or released redemption). */
  giveBack(couponId: string): Promise<void>;
  /** Forgets the counter: the next redemption seeds it from PostgreSQL again. */
  forget(couponId: string): Promise<void>;
}

class RedisNotConnected extends Error {}

/** Without a Redis connection (`undefined`) every redemption goes straight to PostgreSQL. */
export function createCouponGate(redis: Redis | undefined, logger: Logger): CouponGate {
  async function bounded<T>(call: (r: Redis) => Promise<T>): Promise<T> {
    if (redis?.status !== 'ready') throw new RedisNotConnected(redis?.status ?? 'not configured');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`redis did not answer within ${REDIS_TIMEOUT_MS} ms`)), REDIS_TIMEOUT_MS);
    });
    try {
      return await Promise.race([call(redis), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
  const skipped = (err: unknown, what: string) =>
    err instanceof RedisNotConnected
      ? logger.debug({ what, redis: err.message }, 'coupon gate skipped')
      : logger.warn({ err, what }, 'coupon gate skipped: redis failed');

  async function take(couponId: string, max: number, seed: () => Promise<number>): Promise<CouponGateAnswer> {
    const key = couponGateKey(couponId);
    try {
      let answer = Number(await bounded((r) => r.eval(TAKE_SCRIPT, 1, key, max)));
      if (answer === -2) {
        const count = await seed();
        await bounded((r) => r.set(key, count, 'EX', GATE_TTL_SECONDS, 'NX'));
        answer = Number(await bounded((r) => r.eval(TAKE_SCRIPT, 1, key, max)));
      }
      if (answer === -1) return 'full';
      return answer > 0 ? 'taken' : 'unavailable';
    } catch (err) {
      skipped(err, 'take');
      return 'unavailable';
    }
  }

  return {
    take,
    async giveBack(couponId) {
      try {
        await bounded((r) => r.eval(GIVE_BACK_SCRIPT, 1, couponGateKey(couponId)));
      } catch (err) {
        skipped(err, 'give back');
      }
    },
    async forget(couponId) {
      try {
        await bounded((r) => r.del(couponGateKey(couponId)));
      } catch (err) {
        skipped(err, 'forget');
      }
    },
  };
}

/** The plan a redemption is for: judges appliesToPlans and an amountOff's currency. */
interface ForPlan {
  plan?: { id: string; currency: string };
}

export interface CouponDeps {
  db: Database;
  logger: Logger;
  redis?: Redis;
}

/**
 * Redeems and releases coupons; the API calls `redeem` before it starts a subscription's workflow,
 * and the workflow (or the API, when the subscribe is declined) calls `release`. Both are
 * idempotent by the redemption id (see db/coupons.ts), so they are safe as Temporal activities.
 */
export function createCouponRedemptions(deps: CouponDeps & { cache?: CouponCache }) {
  const { db, logger } = deps;
  const gate = createCouponGate(deps.redis, logger);
  const cache = deps.cache ?? createCouponCache(deps);

  async function redeem(request: RedemptionRequest & ForPlan): Promise<RedemptionOutcome> {
    const coupon = await couponById(db, request.couponId);
    if (!coupon) return { status: 'refused', reason: 'unknown' };
    // A repeat goes straight to its row; a new redemption is first judged on what no constraint
    // holds (the plan, its currency, a returning customer for firstTimeOnly).
    if (!(await redemptionById(db, request.redemptionId)) && (await notApplicable(coupon, request))) {
      return { status: 'refused', reason: 'not_applicable' };
    }
    const max = coupon.maxRedemptions;
    const gated = max === null ? 'unavailable' : await gate.take(coupon.id, max, async () => (await couponById(db, coupon.id))?.redemptionCount ?? 0);
    if (gated === 'full') {
      // Double-checked against the guarantee: a counter left high never refuses a free place.
      const now = await couponById(db, coupon.id);
      if (now && max !== null && now.redemptionCount >= max) {
        // The customer holding one of the places is told so, as the validate route tells them.
        const held = await liveRedemption(db, coupon.id, request.userId);
        return { status: 'refused', reason: held ? 'already_redeemed' : 'exhausted' };
      }
    }
    const outcome = await redeemInDatabase(db, request);
    // A refusal, or a repeat that found its earlier row, took no new place in PostgreSQL.
    if (gated === 'taken' && !(outcome.status === 'redeemed' && outcome.fresh)) await gate.giveBack(coupon.id);
    if (outcome.status === 'redeemed' && outcome.fresh) {
      // The validate route's cache counts redemptions: this one changed the count.
      await cache.invalidate(coupon.code);
      logger.info({ couponId: coupon.id, userId: request.userId, redemptionId: request.redemptionId }, 'coupon redeemed');
    }
    return outcome;
  }

  async function notApplicable(coupon: CouponRow, request: RedemptionRequest & ForPlan): Promise<boolean> {
    const hasSubscribed = coupon.firstTimeOnly ? await hasSubscribedBefore(db, request.userId) : false;
    const ctx = { now: new Date(), plan: request.plan, alreadyRedeemed: false, hasSubscribedBefore: hasSubscribed };
    return couponRefusal({ ...couponStateOf(coupon), active: true, redeemBy: null, maxRedemptions: null }, ctx) === 'not_applicable';
  }

  async function release(input: { redemptionId: string }): Promise<boolean> {
    const couponId = await releaseInDatabase(db, input.redemptionId);
    if (couponId === null) return false;
    await gate.giveBack(couponId);
    const coupon = await couponById(db, couponId);
    if (coupon) await cache.invalidate(coupon.code);
    logger.info({ couponId, redemptionId: input.redemptionId }, 'coupon redemption released');
    return true;
  }

  return { redeem, release, gate, cache };
}

/** The coupon activities the worker registers: releasing a place when a subscribe is declined. */
export function createCouponActivities(deps: CouponDeps) {
  const redemptions = createCouponRedemptions(deps);
  return {
    /** Gives a redemption's place back; idempotent (a repeat releases nothing). */
    releaseCouponRedemption: (input: { redemptionId: string }): Promise<boolean> => redemptions.release(input),
  };
}

export type CouponActivities = ReturnType<typeof createCouponActivities>;
