import { eq, sql } from 'drizzle-orm';
import type { Database } from './client';
import { heldOrBookedOfOfferingSql, liveHoldsSql, type CustomerHoldCounts } from './holds';
import { offerings, unitClaims, units } from './schema';
import { waitlistReservesSql } from './waitlist';

type OfferingRow = typeof offerings.$inferSelect;

/** What the API knows about a hold request before it asks the gate or starts a workflow. */
export interface HoldRequestFacts {
  offering: Pick<OfferingRow, 'id' | 'name' | 'status' | 'startsAt' | 'holdTtl' | 'maxUnitsPerCustomer'>;
  /** Requested units that are not units of the offering, in the order asked for. */
  unknownUnitIds: string[];
  /** Someone waits for units of the offering of these units' type (db/waitlist.ts `waitlistReserves`). */
  reservedForWaitlist: boolean;
  counts: CustomerHoldCounts;
  /** Requested units with a live claim (a hold's or a booking's) right now, in the order asked for. */
  claimedUnitIds: string[];
}

export interface HoldRequest {
  offeringId: string;
  userId: string;
  unitIds: string[];
}

/**
 * Every pre-check of a hold request read in one prepared statement, built once: the offering,
 * which requested units are its own, whether the waitlist reserves them, the customer's fair-use
 * counts and which requested units PostgreSQL already has a live claim on. Six queries built by
 * drizzle on every request (five before the gate, one after it) were most of the API's CPU for a
 * refused hold. The answers are a fast path only: the hold workflow's claim, under the customer's
 * lock and the partial unique index, is the exact check, so a snapshot a moment old is fine.
 * Answers undefined when there is no such offering.
 */
export function prepareHoldRequestFacts(db: Database): (request: HoldRequest) => Promise<HoldRequestFacts | undefined> {
  const unitIds = sql`${sql.placeholder('unitIds')}::uuid[]`;
  const userId = sql.placeholder('userId');
  // The placeholder, not `offerings.id`: drizzle writes a column of a one-table select unqualified,
  // which inside a subquery would name the subquery's own `id`.
  const offeringId = sql.placeholder('offeringId');
  const statement = db
    .select({
      id: offerings.id,
      name: offerings.name,
      status: offerings.status,
      startsAt: offerings.startsAt,
      holdTtl: offerings.holdTtl,
      maxUnitsPerCustomer: offerings.maxUnitsPerCustomer,
      knownUnitIds: sql<string[]>`(select coalesce(array_agg(u.id), '{}') from ${units} u
        where u.offering_id = ${offeringId} and u.id = any(${unitIds}))`,
      reservedForWaitlist: sql<boolean>`${waitlistReservesSql(offeringId, sql`select unnest(${unitIds})`)}`,
      heldOrBookedOfOffering: sql<number>`${heldOrBookedOfOfferingSql({ userId, offeringId })}`,
      liveHolds: sql<number>`${liveHoldsSql(userId)}`,
      claimedUnitIds: sql<string[]>`(select coalesce(array_agg(c.unit_id), '{}') from ${unitClaims} c
        where c.unit_id = any(${unitIds}) and c.released_at is null)`,
    })
    .from(offerings)
    .where(eq(offerings.id, offeringId))
    .prepare('hold_request_facts');

  return async (request) => {
    const [row] = await statement.execute({ offeringId: request.offeringId, userId: request.userId, unitIds: request.unitIds });
    if (!row) return undefined;
    const known = new Set(row.knownUnitIds);
    const claimed = new Set(row.claimedUnitIds);
    return {
      offering: {
        id: row.id,
        name: row.name,
        status: row.status,
        startsAt: row.startsAt,
        holdTtl: row.holdTtl,
        maxUnitsPerCustomer: row.maxUnitsPerCustomer,
      },
      unknownUnitIds: request.unitIds.filter((id) => !known.has(id)),
      reservedForWaitlist: row.reservedForWaitlist,
      counts: { heldOrBookedOfOffering: row.heldOrBookedOfOffering, liveHolds: row.liveHolds },
      claimedUnitIds: request.unitIds.filter((id) => claimed.has(id)),
    };
  };
}
