import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import type { Database } from '../db/client';
import { holds, unitClaims, units } from '../db/schema';
import {
  unitEventsChannel,
  unitStatusOf,
  type ClaimOutcome,
  type HoldStatus,
  type HoldView,
  type UnitStatusEvent,
} from '../domain/hold';
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

export type GateAnswer =
  | { status: 'acquired' }
  | { status: 'taken'; taken: { unitId: string; ttlMs: number }[] }
  | { status: 'unavailable' };

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

export interface UnitEvents {
  /**
   * Publishes the units' statuses as PostgreSQL has them now (read after the change committed),
   * stamped with the database clock: a subscriber keeps, per unit, the newest `at`, so events
   * from several processes arriving out of order still converge on the truth.
   */
  publish(offeringId: string, unitIds: string[]): Promise<void>;
}

/** Without a Redis connection nothing is published: live availability is off, polling still works. */
export function createUnitEvents(deps: { db: Database; redis?: Redis; logger: Logger }): UnitEvents {
  const { db, redis, logger } = deps;
  return {
    async publish(offeringId, unitIds) {
      if (unitIds.length === 0 || !redis) return;
      try {
        const rows = await db
          .select({ id: units.id, bookingId: unitClaims.bookingId, claimId: unitClaims.id, atMs: sql<number>`(extract(epoch from clock_timestamp()) * 1000)::float8` })
          .from(units)
          .leftJoin(unitClaims, and(eq(unitClaims.unitId, units.id), isNull(unitClaims.releasedAt)))
          .where(inArray(units.id, unitIds));
        const event: UnitStatusEvent = {
          offeringId,
          units: rows.map((r) => ({ id: r.id, status: unitStatusOf(r.claimId === null ? null : r) })),
          at: new Date(Math.max(...rows.map((r) => Number(r.atMs)))).toISOString(),
        };
        if (redis.status !== 'ready') throw new Error(`redis is ${redis.status}`);
        await redis.publish(unitEventsChannel(offeringId), JSON.stringify(event));
      } catch (err) {
        // Live availability is a convenience; the change itself is committed and readable.
        logger.warn({ err, offeringId }, 'could not publish unit status event');
      }
    },
  };
}

/** The units among `unitIds` that PostgreSQL says a hold or booking has now. */
export async function liveClaimsOf(db: Database, unitIds: string[]): Promise<string[]> {
  const rows = await db
    .select({ unitId: unitClaims.unitId })
    .from(unitClaims)
    .where(and(inArray(unitClaims.unitId, unitIds), isNull(unitClaims.releasedAt)));
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
 * PostgreSQL has a live claim on it, or if another request's claim on it is being placed right
 * now (a provisional key). A key left behind with neither (a release whose Redis call failed) is
 * ignored, and PostgreSQL decides. A crash after this leaves only keys that expire on their own.
 */
export async function admitHoldRequest(
  deps: { db: Database; gate: UnitGate },
  request: { holdId: string; offeringId: string; unitIds: string[] },
): Promise<HoldAdmission> {
  const answer = await deps.gate.acquire(request.offeringId, request.unitIds, holdGateOwner(request.holdId), PROVISIONAL_GATE_MS);
  if (answer.status !== 'taken') return { status: 'admitted' };
  const claimed = await liveClaimsOf(deps.db, request.unitIds);
  if (claimed.length > 0) return { status: 'conflict', unavailableUnitIds: claimed };
  const beingPlaced = answer.taken.filter((t) => t.ttlMs >= 0 && t.ttlMs <= PROVISIONAL_GATE_MS).map((t) => t.unitId);
  return beingPlaced.length > 0 ? { status: 'conflict', unavailableUnitIds: beingPlaced } : { status: 'admitted' };
}

export interface ClaimUnitsInput {
  holdId: string;
  userId: string;
  offeringId: string;
  unitIds: string[];
  /** ISO-8601; computed by the owning workflow from its clock. */
  expiresAt: string;
  /** The workflow that releases these claims: the hold's own, or a booking's during a reschedule. */
  workflowId: string;
}

export interface ReleaseHoldInput {
  holdId: string;
  /** `released` when its owner or a failed booking gives it back, `expired` when its TTL passed. */
  reason: 'released' | 'expired';
}

class ClaimConflict extends Error {
  constructor(readonly unitIds: string[]) {
    super('units already claimed');
  }
}

export function createHoldActivities(deps: { db: Database; redis?: Redis; logger: Logger }) {
  const { db, logger } = deps;
  const gate = createUnitGate(deps.redis, logger);
  const events = createUnitEvents(deps);

  async function unknownUnits(offeringId: string, unitIds: string[]): Promise<string[]> {
    const found = await db
      .select({ id: units.id })
      .from(units)
      .where(and(eq(units.offeringId, offeringId), inArray(units.id, unitIds)));
    const known = new Set(found.map((u) => u.id));
    return unitIds.filter((id) => !known.has(id));
  }

  /**
   * The hold row and one claim per unit in one transaction: all or nothing. Claims go in
   * sorted by unit id so two overlapping claims wait for each other instead of deadlocking;
   * `ON CONFLICT DO NOTHING` on the partial unique index names exactly the units taken.
   * A retry after a commit whose answer was lost finds the hold row and answers the same.
   */
  async function insertClaims(input: ClaimUnitsInput): Promise<ClaimOutcome> {
    const sortedUnitIds = [...input.unitIds].sort();
    try {
      return await db.transaction(async (tx) => {
        const [created] = await tx
          .insert(holds)
          .values({
            id: input.holdId,
            userId: input.userId,
            offeringId: input.offeringId,
            unitIds: input.unitIds,
            status: 'active',
            expiresAt: new Date(input.expiresAt),
            workflowId: input.workflowId,
          })
          .onConflictDoNothing({ target: holds.id })
          .returning();
        if (!created) {
          const [existing] = await tx.select().from(holds).where(eq(holds.id, input.holdId));
          return { status: 'held', hold: holdView(existing) };
        }
        const claimed = await tx
          .insert(unitClaims)
          .values(sortedUnitIds.map((unitId) => ({ unitId, offeringId: input.offeringId, holdId: input.holdId })))
          .onConflictDoNothing({ target: unitClaims.unitId, where: sql`released_at is null` })
          .returning({ unitId: unitClaims.unitId });
        if (claimed.length !== sortedUnitIds.length) {
          const got = new Set(claimed.map((c) => c.unitId));
          throw new ClaimConflict(input.unitIds.filter((id) => !got.has(id)));
        }
        return { status: 'held', hold: holdView(created) };
      });
    } catch (err) {
      if (err instanceof ClaimConflict) return { status: 'conflict', unavailableUnitIds: err.unitIds };
      throw err;
    }
  }

  return {
    /**
     * Claims every unit for the hold or none. The gate keys the API set for this request are
     * this hold's already (same owner) and are extended to its TTL; a claim nobody gated (a
     * reschedule) is gated here. A unit Redis calls taken is double-checked against PostgreSQL,
     * so a key left behind by a crash or an outage never blocks a unit that is actually free.
     */
    async claimUnits(input: ClaimUnitsInput): Promise<ClaimOutcome> {
      const unknownUnitIds = await unknownUnits(input.offeringId, input.unitIds);
      if (unknownUnitIds.length > 0) return { status: 'rejected', unknownUnitIds };

      const owner = holdGateOwner(input.holdId);
      const ttlMs = Math.max(1, new Date(input.expiresAt).getTime() - Date.now());
      const gated = await gate.acquire(input.offeringId, input.unitIds, owner, ttlMs);
      if (gated.status === 'taken') {
        const claimed = await liveClaimsOf(db, input.unitIds);
        if (claimed.length > 0) return { status: 'conflict', unavailableUnitIds: claimed };
      }

      const outcome = await insertClaims(input);
      if (outcome.status !== 'held') {
        if (gated.status === 'acquired') await gate.release(input.offeringId, input.unitIds, owner);
        return outcome;
      }
      if (gated.status !== 'acquired') await gate.assign(input.offeringId, input.unitIds, owner, ttlMs);
      await events.publish(input.offeringId, input.unitIds);
      return outcome;
    },

    /**
     * Ends an active hold and frees the units no booking took. Locking the hold row serialises
     * this with a booking's confirm, so exactly one of them wins: a consumed hold stays consumed.
     * Answers the hold's final status (null when the hold was never created: its claim failed).
     */
    async releaseHold(input: ReleaseHoldInput): Promise<HoldStatus | null> {
      const result = await db.transaction(async (tx) => {
        const [hold] = await tx.select().from(holds).where(eq(holds.id, input.holdId)).for('update');
        if (!hold) return null;
        if (hold.status !== 'active') return { hold, status: hold.status, freed: [] as string[] };
        await tx.update(holds).set({ status: input.reason, updatedAt: sql`now()` }).where(eq(holds.id, hold.id));
        const freed = await tx
          .update(unitClaims)
          .set({ releasedAt: sql`now()` })
          .where(and(eq(unitClaims.holdId, hold.id), isNull(unitClaims.releasedAt), isNull(unitClaims.bookingId)))
          .returning({ unitId: unitClaims.unitId });
        return { hold, status: input.reason, freed: freed.map((c) => c.unitId) };
      });
      if (!result) return null;
      if (result.status !== 'consumed') await gate.release(result.hold.offeringId, result.hold.unitIds, holdGateOwner(input.holdId));
      if (result.freed.length > 0) {
        await events.publish(result.hold.offeringId, result.freed);
        logger.info({ holdId: input.holdId, reason: input.reason, units: result.freed.length }, 'hold ended');
      }
      return result.status;
    },
  };
}

export type HoldActivities = ReturnType<typeof createHoldActivities>;

export function holdView(hold: typeof holds.$inferSelect): HoldView {
  return {
    id: hold.id,
    offeringId: hold.offeringId,
    unitIds: hold.unitIds,
    expiresAt: hold.expiresAt.toISOString(),
    status: hold.status,
  };
}
