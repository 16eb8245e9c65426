/** What PostgreSQL says about seat safety after a benchmark or a drill: every count must be 0. */
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client';

export interface DoubleBookings {
  /** Units with more than one live claim (the partial unique index should make this impossible). */
  unitsClaimedTwice: number;
  /** Units in more than one hold that is active or was consumed by a booking. */
  unitsInTwoLiveHolds: number;
  /** Units in more than one confirmed booking. */
  unitsInTwoConfirmedBookings: number;
}

export async function findDoubleBookings(db: Database, offeringId: string): Promise<DoubleBookings> {
  const count = async (query: ReturnType<typeof sql>) => Number((await db.execute<{ n: string }>(query))[0].n);
  const [unitsClaimedTwice, unitsInTwoLiveHolds, unitsInTwoConfirmedBookings] = await Promise.all([
    count(sql`
      select count(*) as n from (
        select unit_id from unit_claims where offering_id = ${offeringId} and released_at is null
        group by unit_id having count(*) > 1) twice`),
    count(sql`
      select count(*) as n from (
        select unit_id from holds, unnest(unit_ids) as unit_id
        where offering_id = ${offeringId} and status in ('active', 'consumed')
        group by unit_id having count(*) > 1) twice`),
    count(sql`
      select count(*) as n from (
        select unit_id from bookings, unnest(unit_ids) as unit_id
        where offering_id = ${offeringId} and status = 'confirmed'
        group by unit_id having count(*) > 1) twice`),
  ]);
  return { unitsClaimedTwice, unitsInTwoLiveHolds, unitsInTwoConfirmedBookings };
}
