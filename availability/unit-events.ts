import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import type { Database } from '../db/client';
import { unitClaims, units } from '../db/schema';
import { unitStatusOf, type UnitStatusEvent } from '../domain/hold';
import type { Logger } from '../platform/logger';
import { appendUnitEvent } from './unit-event-log';

export interface UnitEvents {
  /**
   * Publishes the units' statuses as PostgreSQL has them now (read after the change committed),
   * stamped with the database clock: a subscriber keeps, per unit, the newest `at`, so events
   * from several processes arriving out of order still converge on the truth. Each event is
   * numbered and kept for replay (`unit-event-log.ts`) as it is published.
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
          .select({
            id: units.id,
            bookingId: unitClaims.bookingId,
            claimId: unitClaims.id,
            atMs: sql<number>`(extract(epoch from clock_timestamp()) * 1000)::float8`,
          })
          .from(units)
          .leftJoin(unitClaims, and(eq(unitClaims.unitId, units.id), isNull(unitClaims.releasedAt)))
          .where(inArray(units.id, unitIds));
        const event: UnitStatusEvent = {
          offeringId,
          units: rows.map((r) => ({ id: r.id, status: unitStatusOf(r.claimId === null ? null : r) })),
          at: new Date(Math.max(...rows.map((r) => Number(r.atMs)))).toISOString(),
        };
        if (redis.status !== 'ready') throw new Error(`redis is ${redis.status}`);
        await appendUnitEvent(redis, offeringId, JSON.stringify(event));
      } catch (err) {
        // Live availability is a convenience; the change itself is committed and readable.
        logger.warn({ err, offeringId }, 'could not publish unit status event');
      }
    },
  };
}
