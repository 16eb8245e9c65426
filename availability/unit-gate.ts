import { and, isNull, sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import type { Database } from '../db/client';
import { unitClaims } from '../db/schema';
import type { Logger } from '../platform/logger';

/**
 * Redis is only a fast gate in front of the `unit_claims_one_live_per_unit` index: every
 * Redis call here is best-effort, bounded in time, and skipped while Redis is not connected,
 * so losing Redis slows holds down (every request reaches PostgreSQL) but never makes one wrong.
 */
const REDIS_TIMEOUT_MS = 300;

// Sets every key to the owner, or none of them. Answers, for each key another owner has, its
// 1-based position and remaining TTL in ms (-1: none). Keys of one offering share a hash tag, so
// this also runs on a cluster.
const ACQUIRE_SCRIPT = `
local taken = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner and owner ~= ARGV[1] then
    taken[#taken + 1] = i
    taken[#taken + 1] = redis.call('PTTL', key)
  end
end
if #taken == 0 then
  for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1], 'PX', ARGV[2]) end
end
return taken`;

// Deletes only the keys this owner still has: a key taken over by someone else stays.
const RELEASE_SCRIPT = `
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0`;

// Overwrites every key with the owner; with no TTL argument the key lasts until released.
const ASSIGN_SCRIPT = `
for _, key in ipairs(KEYS) do
  if ARGV[2] then redis.call('SET', key, ARGV[1], 'PX', ARGV[2]) else redis.call('SET', key, ARGV[1]) end
end
return 0`;

export type GateAnswer = { status: 'acquired' } | { status: 'taken'; taken: { unitId: string; ttlMs: number }[] } | { status: 'unavailable' };

export interface UnitGate {
  /** Takes all of `unitIds` for `owner` for `ttlMs`, or none of them. */
  acquire(offeringId: string, unitIds: string[], owner: string, ttlMs: number): Promise<GateAnswer>;
  /** Gives `owner`'s keys back. */
  release(offeringId: string, unitIds: string[], owner: string): Promise<void>;
  /** Records `owner` as the keys' holder after PostgreSQL said so (`ttlMs` undefined: until released). */
  assign(offeringId: string, unitIds: string[], owner: string, ttlMs?: number): Promise<void>;
}

class RedisNotConnected extends Error {}

export const holdGateOwner = (holdId: string) => `hold:${holdId}`;
export const bookingGateOwner = (bookingId: string) => `booking:${bookingId}`;

/** Without a Redis connection (`undefined`) every claim goes straight to PostgreSQL. */
export function createUnitGate(redis: Redis | undefined, logger: Logger): UnitGate {
  const keysOf = (offeringId: string, unitIds: string[]) => unitIds.map((id) => `unit-gate:{${offeringId}}:${id}`);

  async function run(script: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    if (redis?.status !== 'ready') throw new RedisNotConnected(redis?.status ?? 'not configured');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`redis did not answer within ${REDIS_TIMEOUT_MS} ms`)), REDIS_TIMEOUT_MS);
    });
    try {
      return await Promise.race([redis.eval(script, keys.length, ...keys, ...args), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  // While Redis is known to be down every hold skips it: that is expected, not worth a warning each.
  const skipped = (err: unknown, what: string) =>
    err instanceof RedisNotConnected
      ? logger.debug({ what, redis: err.message }, 'unit gate skipped')
      : logger.warn({ err, what }, 'unit gate skipped: redis failed');

  async function bestEffort(what: string, script: string, keys: string[], args: (string | number)[]): Promise<void> {
    try {
      await run(script, keys, args);
    } catch (err) {
      skipped(err, what);
    }
  }

  return {
    async acquire(offeringId, unitIds, owner, ttlMs) {
      try {
        const pairs = (await run(ACQUIRE_SCRIPT, keysOf(offeringId, unitIds), [owner, ttlMs])) as number[];
        if (pairs.length === 0) return { status: 'acquired' };
        const taken: { unitId: string; ttlMs: number }[] = [];
        for (let i = 0; i < pairs.length; i += 2) taken.push({ unitId: unitIds[pairs[i] - 1], ttlMs: pairs[i + 1] });
        return { status: 'taken', taken };
      } catch (err) {
        skipped(err, 'acquire');
        return { status: 'unavailable' };
      }
    },
    release: (offeringId, unitIds, owner) => bestEffort('release', RELEASE_SCRIPT, keysOf(offeringId, unitIds), [owner]),
    assign: (offeringId, unitIds, owner, ttlMs) =>
      bestEffort('assign', ASSIGN_SCRIPT, keysOf(offeringId, unitIds), ttlMs === undefined ? [owner] : [owner, ttlMs]),
  };
}

// One prepared statement per database handle: drizzle building this query on every refused hold
// request was a good part of the API's CPU for it.
const liveClaimQueries = new WeakMap<Database, ReturnType<typeof prepareLiveClaims>>();

function prepareLiveClaims(db: Database) {
  return db
    .select({ unitId: unitClaims.unitId })
    .from(unitClaims)
    .where(and(sql`${unitClaims.unitId} = any(${sql.placeholder('unitIds')}::uuid[])`, isNull(unitClaims.releasedAt)))
    .prepare('live_claims_of_units');
}

/** The units among `unitIds` that PostgreSQL says a hold or booking has now. */
export async function liveClaimsOf(db: Database, unitIds: string[]): Promise<string[]> {
  let query = liveClaimQueries.get(db);
  if (!query) liveClaimQueries.set(db, (query = prepareLiveClaims(db)));
  const rows = await query.execute({ unitIds });
  return rows.map((r) => r.unitId);
}

/**
 * How long the API's gate keys for a hold request last before its claim re-sets them for the
 * hold's whole TTL: a key this young belongs to a claim still being placed.
 */
export const PROVISIONAL_GATE_MS = 10_000;

export type HoldAdmission = { status: 'admitted' } | { status: 'conflict'; unavailableUnitIds: string[] };

/**
 * The API's fast answer before a hold workflow is started: most requests for contended units
 * end here with a 409 and never cost a workflow or a PostgreSQL write. A unit counts as taken if
 * another request's claim on it is being placed right now (a provisional key; these are named,
 * without a query), or else if PostgreSQL has a live claim on it. A key left behind with neither
 * (a release whose Redis call failed) is ignored, and PostgreSQL decides. A crash after this
 * leaves only keys that expire on their own.
 */
export async function admitHoldRequest(
  deps: { db: Database; gate: UnitGate },
  request: { holdId: string; offeringId: string; unitIds: string[] },
): Promise<HoldAdmission> {
  const answer = await deps.gate.acquire(request.offeringId, request.unitIds, holdGateOwner(request.holdId), PROVISIONAL_GATE_MS);
  if (answer.status !== 'taken') return { status: 'admitted' };
  // A claim being placed refuses without asking PostgreSQL (in a burst most refusals are these).
  const beingPlaced = answer.taken.filter((t) => t.ttlMs >= 0 && t.ttlMs <= PROVISIONAL_GATE_MS).map((t) => t.unitId);
  if (beingPlaced.length > 0) return { status: 'conflict', unavailableUnitIds: beingPlaced };
  const claimed = await liveClaimsOf(deps.db, request.unitIds);
  return claimed.length > 0 ? { status: 'conflict', unavailableUnitIds: claimed } : { status: 'admitted' };
}
