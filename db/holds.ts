import { eq, sql, type SQL, type SQLWrapper } from 'drizzle-orm';
import type { HoldView } from '../domain/hold';
import type { Database, Transaction } from './client';
import { holds, unitClaims, users } from './schema';

export type HoldRow = typeof holds.$inferSelect;

/** A hold's row as the workflows and the API show it. */
export function holdView(hold: HoldRow): HoldView {
  return {
    id: hold.id,
    offeringId: hold.offeringId,
    unitIds: hold.unitIds,
    expiresAt: hold.expiresAt.toISOString(),
    status: hold.status,
  };
}

/** What the fair-use limits count of one customer right now (domain/hold.ts `holdLimitRefusal`). */
export interface CustomerHoldCounts {
  /** Units of the offering with a live claim of the customer's: held, or booked. */
  heldOrBookedOfOffering: number;
  /** The customer's active holds, across offerings. */
  liveHolds: number;
}

/**
 * Both counts in one statement. Every claim is made through a hold row of the customer's (a
 * booking takes over its hold's claims; a reschedule claims through a hold of its own), so a
 * claim's owner is its hold's user, whether it is held or booked.
 */
export async function customerHoldCounts(db: Database | Transaction, customer: { userId: string; offeringId: string }): Promise<CustomerHoldCounts> {
  const [row] = await db.execute<{ held_or_booked: number; live_holds: number }>(sql`
    select ${heldOrBookedOfOfferingSql(customer)} as held_or_booked, ${liveHoldsSql(customer.userId)} as live_holds`);
  return { heldOrBookedOfOffering: row.held_or_booked, liveHolds: row.live_holds };
}

/** `heldOrBookedOfOffering` as a scalar subquery; the API's hold pre-check reads it in its one statement. */
export function heldOrBookedOfOfferingSql(customer: { userId: SqlValue; offeringId: SqlValue }): SQL {
  return sql`(select count(*)::int from ${unitClaims} c join ${holds} h on h.id = c.hold_id
    where c.offering_id = ${customer.offeringId} and c.released_at is null and h.user_id = ${customer.userId})`;
}

/** `liveHolds` as a scalar subquery. */
export function liveHoldsSql(userId: SqlValue): SQL {
  return sql`(select count(*)::int from ${holds} where user_id = ${userId} and status = 'active')`;
}

/** A value a query fragment binds: a string, or a placeholder or column of a prepared statement. */
export type SqlValue = string | SQLWrapper;

/**
 * Locks the customer's row until the transaction ends, so their claims take turns: each counts
 * what the ones before it committed. NO KEY UPDATE, because rows that merely reference the user
 * (a booking being inserted) take KEY SHARE and need not wait.
 */
export async function lockCustomerForClaims(tx: Transaction, userId: string): Promise<void> {
  await tx.select({ id: users.id }).from(users).where(eq(users.id, userId)).for('no key update');
}
