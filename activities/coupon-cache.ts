import type { Redis } from 'ioredis';
import type { Database } from '../db/client';
import { couponByCode, couponStateOf } from '../db/coupons';
import { normalizeCouponCode, type CouponState } from '../domain/coupon';
import type { Logger } from '../platform/logger';
import { LruMap } from '../platform/lru-map';

/**
 * A cache of coupons by code, for validation (read far more often than coupons change), in two
 * levels: a copy in this process (L1) in front of a Redis cache shared by every process (L2).
 *
 * L2, the source of truth for freshness: each code has a generation counter; an entry is stored
 * under the generation it was read at, and every change of the coupon (created, deactivated,
 * redeemed, released) increments the generation, so the next read misses and goes to PostgreSQL.
 * A slow reader that writes an entry after the change writes it under the old generation, which
 * nobody reads again. Unknown codes are cached too (as `null`), so guessing codes stays cheap.
 *
 * L1 saves the Redis round trip and the JSON parse of every read. The change that increments the
 * generation also publishes the code on COUPON_CHANGES_CHANNEL, and every process that reads
 * drops its copy when the message arrives. So a change is seen:
 * - in the process that made it, by the time `invalidate` returns (it drops its copy itself);
 * - in every other process once the message arrives (normally well under a millisecond on a
 *   LAN); should a message be lost while the subscription stays up, a copy is checked against
 *   Redis at least every LOCAL_RECHECK_MS, which bounds how long a change can go unseen.
 * A load that was under way when its code changed is not kept, and no copy is kept or used while
 * the subscription is not confirmed (messages sent meanwhile are lost): every read then goes to
 * L2 as before. Redis down: every read goes to PostgreSQL, and nothing is cached anywhere.
 */
const ENTRY_TTL_SECONDS = 300;
const REDIS_TIMEOUT_MS = 200;
// A generation key lives a week past the coupon's last change, far longer than the entries: when
// it expires (the count restarts at 0), the entries once stored under 0 expired long before.
const GENERATION_TTL_SECONDS = 7 * 24 * 3600;
export const LOCAL_RECHECK_MS = 1000;
// Codes this process keeps (unknown ones included, so a scan of guesses cannot grow it).
const LOCAL_MAX_ENTRIES = 10_000;

/** Every change of a coupon publishes its normalized code here. */
export const COUPON_CHANGES_CHANNEL = 'coupon-cache:changed';

// KEYS[1]: the code's generation key. ARGV[1]: the entry key prefix. Answers {generation, entry|false}.
const READ_SCRIPT = `
local gen = redis.call('GET', KEYS[1]) or '0'
return {gen, redis.call('GET', ARGV[1] .. gen)}`;

const generationKey = (code: string) => `coupon-cache:gen:{${code}}`;
const entryPrefix = (code: string) => `coupon-cache:entry:{${code}}:`;

export interface CouponCache {
  /**
   * The coupon with this code (any case), null when there is none; from a cache when cached.
   * While this process's copy stands, every read answers that same object; after a change of the
   * coupon (or a re-check of the copy) a new one. So what a caller derives from a coupon may be
   * kept against the object, and goes with it (api/coupon.ts keeps customers' facts so).
   */
  byCode(code: string): Promise<CouponState | null>;
  /** Called after every change of the coupon with this code (committed in PostgreSQL). */
  invalidate(code: string): Promise<void>;
}

export function createCouponCache(deps: { db: Database; redis?: Redis; logger: Logger }): CouponCache {
  const { db, redis, logger } = deps;
  const local = redis && localCopiesOf(redis, logger);

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

  /** From L2, else PostgreSQL (then stored in L2 under the generation just read). */
  async function shared(code: string): Promise<CouponState | null> {
    const cached = (await bounded((r) => r.eval(READ_SCRIPT, 1, generationKey(code), entryPrefix(code)))) as [string, string | null] | undefined;
    if (cached && typeof cached[1] === 'string') return JSON.parse(cached[1]) as CouponState | null;
    const row = await couponByCode(db, code);
    const coupon = row ? couponStateOf(row) : null;
    if (cached) await bounded((r) => r.set(`${entryPrefix(code)}${cached[0]}`, JSON.stringify(coupon), 'EX', ENTRY_TTL_SECONDS));
    return coupon;
  }

  return {
    async byCode(code) {
      const key = normalizeCouponCode(code);
      return local ? local.read(key, () => shared(key)) : shared(key);
    },
    async invalidate(code) {
      const key = normalizeCouponCode(code);
      local?.forget(key);
      await bounded((r) =>
        r.multi().incr(generationKey(key)).expire(generationKey(key), GENERATION_TTL_SECONDS).publish(COUPON_CHANGES_CHANNEL, key).exec(),
      );
      // Again: a read that started after the first forget may have read the old generation.
      local?.forget(key);
    },
  };
}

export interface LocalCopies {
  /** The copy when it may be used, else `load()`'s answer (kept when nothing changed meanwhile). */
  read(code: string, load: () => Promise<CouponState | null>): Promise<CouponState | null>;
  forget(code: string): void;
  /** Whether the change subscription is confirmed, i.e. copies are kept and used. */
  readonly listening: boolean;
}

// One set of copies per Redis connection, i.e. per process in production: every cache made on
// the same connection (the validate route's, a redemption's) sees the others' changes at once.
// A test makes "another process" with a connection of its own.
const copiesByConnection = new WeakMap<Redis, LocalCopies>();

export function localCopiesOf(redis: Redis, logger: Logger): LocalCopies {
  let copies = copiesByConnection.get(redis);
  if (!copies) {
    copies = createLocalCopies(redis, logger);
    copiesByConnection.set(redis, copies);
  }
  return copies;
}

interface Load {
  answer: Promise<CouponState | null>;
  /** Its code changed while it ran: its answer is not kept (callers already waiting still get it). */
  superseded: boolean;
}

/** Exported for tests, which pass a clock; the caches share one per connection (localCopiesOf). */
export function createLocalCopies(redis: Redis, logger: Logger, now: () => number = Date.now): LocalCopies {
  const copies = new LruMap<string, { coupon: CouponState | null; checkedAt: number }>(LOCAL_MAX_ENTRIES);
  const loads = new Map<string, Load>();
  let subscriber: Redis | undefined;
  let listening = false;
  // Bumped whenever the subscription is lost or confirmed: a load begun in another epoch may have
  // missed a message, so its answer is not kept.
  let epoch = 0;

  function forget(code: string): void {
    copies.delete(code);
    const load = loads.get(code);
    if (load) {
      load.superseded = true;
      loads.delete(code);
    }
  }

  function forgetAll(): void {
    epoch++;
    copies.clear();
    for (const load of loads.values()) load.superseded = true;
    loads.clear();
  }

  /**
   * Subscribes on first use while Redis is up (until then no copy is used anyway), on a connection
   * of its own: a subscribed connection can do nothing else.
   */
  function listen(): void {
    if (subscriber || redis.status !== 'ready') return;
    const connection = redis.duplicate({ autoResubscribe: false, lazyConnect: false });
    subscriber = connection;
    connection.on('message', (_channel: string, code: string) => forget(code));
    connection.on('ready', () => {
      connection.subscribe(COUPON_CHANGES_CHANNEL).then(
        () => {
          forgetAll();
          listening = connection.status === 'ready';
        },
        (err: unknown) => logger.warn({ err }, 'coupon cache: subscribing to changes failed; reading through Redis'),
      );
    });
    connection.on('close', () => {
      listening = false;
      forgetAll();
    });
    connection.on('error', (err) => logger.warn({ err }, 'coupon cache: change subscriber error'));
    // The subscriber lives as long as the connection it was made from.
    redis.once('end', () => connection.disconnect());
  }

  return {
    forget,
    get listening() {
      return listening;
    },
    read(code, load) {
      listen();
      const usable = listening && redis.status === 'ready';
      const copy = usable ? copies.get(code) : undefined;
      if (copy && now() - copy.checkedAt < LOCAL_RECHECK_MS) return Promise.resolve(copy.coupon);
      const running = loads.get(code);
      if (running) return running.answer;
      const started = { epoch, at: now() };
      const entry: Load = { answer: load(), superseded: false };
      loads.set(code, entry);
      entry.answer.then(
        (coupon) => {
          if (loads.get(code) === entry) loads.delete(code);
          if (!entry.superseded && usable && listening && started.epoch === epoch) copies.set(code, { coupon, checkedAt: started.at });
        },
        () => {
          if (loads.get(code) === entry) loads.delete(code);
        },
      );
      return entry.answer;
    },
  };
}
