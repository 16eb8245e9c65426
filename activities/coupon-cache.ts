import type { Redis } from 'ioredis';
import type { Database } from '../db/client';
import { couponByCode, couponStateOf } from '../db/coupons';
import { normalizeCouponCode, type CouponState } from '../domain/coupon';
import type { Logger } from '../platform/logger';

/**
 * A Redis cache of coupons by code, for validation (read far more often than coupons change).
 * Each code has a generation counter; an entry is stored under the generation it was read at,
 * and every change of the coupon (created, deactivated, redeemed, released) increments the
 * generation, so the next read misses and goes to PostgreSQL. A slow reader that writes an entry
 * after the change writes it under the old generation, which nobody reads again: no stale answer
 * outlives a change. Unknown codes are cached too (as `null`), so guessing codes stays cheap.
 * Redis down: every read goes to PostgreSQL, and invalidation is unneeded (nothing is cached).
 */
const ENTRY_TTL_SECONDS = 300;
const REDIS_TIMEOUT_MS = 200;
// A generation key lives a week past the coupon's last change, far longer than the entries: when
// it expires (the count restarts at 0), the entries once stored under 0 expired long before.
const GENERATION_TTL_SECONDS = 7 * 24 * 3600;

// KEYS[1]: the code's generation key. ARGV[1]: the entry key prefix. Answers {generation, entry|false}.
const READ_SCRIPT = `
local gen = redis.call('GET', KEYS[1]) or '0'
return {gen, redis.call('GET', ARGV[1] .. gen)}`;

const generationKey = (code: string) => `coupon-cache:gen:{${normalizeCouponCode(code)}}`;
const entryPrefix = (code: string) => `coupon-cache:entry:{${normalizeCouponCode(code)}}:`;

export interface CouponCache {
  /** The coupon with this code (any case), null when there is none; from Redis when cached. */
  byCode(code: string): Promise<CouponState | null>;
  /** Called after every change of the coupon with this code. */
  invalidate(code: string): Promise<void>;
}

export function createCouponCache(deps: { db: Database; redis?: Redis; logger: Logger }): CouponCache {
  const { db, redis, logger } = deps;

  async function bounded<T>(call: (r: Redis) => Promise<T>): Promise<T | undefined> {
    if (redis?.status !== 'ready') return undefined;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), REDIS_TIMEOUT_MS);
    });
    try {
      return await Promise.race([call(redis), timeout]);
    } catch (err) {
      logger.warn({ err }, 'coupon cache skipped: redis failed');
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  async function fromDatabase(code: string): Promise<CouponState | null> {
    const row = await couponByCode(db, code);
    return row ? couponStateOf(row) : null;
  }

  return {
    async byCode(code) {
      const cached = (await bounded((r) => r.eval(READ_SCRIPT, 1, generationKey(code), entryPrefix(code)))) as [string, string | null] | undefined;
      if (cached && typeof cached[1] === 'string') return JSON.parse(cached[1]) as CouponState | null;
      const coupon = await fromDatabase(code);
      if (cached) await bounded((r) => r.set(`${entryPrefix(code)}${cached[0]}`, JSON.stringify(coupon), 'EX', ENTRY_TTL_SECONDS));
      return coupon;
    },
    async invalidate(code) {
      await bounded((r) => r.multi().incr(generationKey(code)).expire(generationKey(code), GENERATION_TTL_SECONDS).exec());
    },
  };
}
