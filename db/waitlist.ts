/**
 * The waitlist's reads and locks, shared by the claims (activities/hold.ts), the join route
 * (api/waitlist.ts) and the waitlist workflow's activities (activities/waitlist.ts).
 */
import { sql, type SQL, type SQLWrapper } from 'drizzle-orm';
import type { FreeUnit, WaitingEntry } from '../domain/waitlist';
import type { Database, Transaction } from './client';
import { unitClaims, units, waitlistEntries } from './schema';

type Reader = Database | Transaction;

/**
 * Serialises joining the line with claiming units of the offering. A claim takes it shared (claims
 * never wait for each other), a join exclusive: a join that finds no unit free commits before any
 * claim that could take a unit freed meanwhile asks whether anyone waits, or after that claim's
 * commit, when the unit is no longer free. Advisory, so no row lock of the offering is involved.
 */
export async function lockWaitlistShared(tx: Transaction, offeringId: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock_shared(hashtextextended(${`waitlist:${offeringId}`}, 0))`);
}

export async function lockWaitlistExclusive(tx: Transaction, offeringId: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`waitlist:${offeringId}`}, 0))`);
}

/**
 * Whether the line reserves these units: someone waits for units of the offering of their type
 * (or of any type). One probe of the partial index of waiting entries when nobody waits.
 */
export async function waitlistReserves(db: Reader, offeringId: string, unitIds: readonly string[]): Promise<boolean> {
  const ids = sql.join(
    unitIds.map((id) => sql`${id}::uuid`),
    sql`, `,
  );
  const [row] = await db.execute<{ reserved: boolean }>(sql`select ${waitlistReservesSql(offeringId, ids)} as reserved`);
  return row.reserved;
}

/**
 * `waitlistReserves` as a boolean expression; `unitIdList` is what goes inside `in (…)` (a list of
 * uuids, or a subquery). The API's hold pre-check reads it in its one statement.
 */
export function waitlistReservesSql(offeringId: string | SQLWrapper, unitIdList: SQL): SQL {
  return sql`exists (
      select 1 from ${waitlistEntries} w
      where w.offering_id = ${offeringId} and w.status = 'waiting'
        and (w.unit_type is null or w.unit_type in (select u.type from ${units} u where u.id in (${unitIdList}))))`;
}

/** Whether anyone waits in the offering's line (the units a release frees are theirs, then). */
export async function hasWaitingEntries(db: Reader, offeringId: string): Promise<boolean> {
  const [row] = await db.execute<{ waiting: boolean }>(
    sql`select exists (select 1 from ${waitlistEntries} where offering_id = ${offeringId} and status = 'waiting') as waiting`,
  );
  return row.waiting;
}

/** Units of the offering (of `unitType` when given) that no live claim holds, in label order. */
export async function freeUnitsOf(db: Reader, offeringId: string, unitType?: string | null): Promise<FreeUnit[]> {
  const rows = await db.execute<{ id: string; type: string | null }>(sql`
    select u.id, u.type from ${units} u
    where u.offering_id = ${offeringId}
      ${unitType ? sql`and u.type = ${unitType}` : sql``}
      and not exists (select 1 from ${unitClaims} c where c.unit_id = u.id and c.released_at is null)
    order by u.label`);
  return rows.map((r) => ({ id: r.id, type: r.type }));
}

/** The first `limit` waiting entries of the offering, in line order. */
export async function waitingEntriesOf(db: Reader, offeringId: string, limit: number): Promise<WaitingEntry[]> {
  const rows = await db.execute<{ id: string; user_id: string; quantity: number; unit_type: string | null }>(sql`
    select id, user_id, quantity, unit_type from ${waitlistEntries}
    where offering_id = ${offeringId} and status = 'waiting'
    order by position limit ${limit}`);
  return rows.map((r) => ({ id: r.id, userId: r.user_id, quantity: r.quantity, unitType: r.unit_type }));
}

/** The 1-based place of a live entry among the offering's live entries (waiting or offered). */
export async function positionInLine(db: Reader, offeringId: string, position: number): Promise<number> {
  const [row] = await db.execute<{ ahead: number }>(sql`
    select count(*)::int as ahead from ${waitlistEntries}
    where offering_id = ${offeringId} and status in ('waiting', 'offered') and position < ${position}`);
  return row.ahead + 1;
}
