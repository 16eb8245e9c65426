import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import { createUnitEvents, type UnitEvents } from '../availability/unit-events';
import { createUnitGate, holdGateOwner, liveClaimsOf, type UnitGate } from '../availability/unit-gate';
import type { Database, Transaction } from '../db/client';
import { customerHoldCounts, holdView, lockCustomerForClaims } from '../db/holds';
import { holds, offerings, unitClaims, units, waitlistEntries } from '../db/schema';
import { lockWaitlistShared, waitlistReserves } from '../db/waitlist';
import { holdLimitRefusal, type ClaimOutcome, type HoldLimitRefusal, type HoldStatus } from '../domain/hold';
import type { Logger } from '../platform/logger';
import { nudgeWaitlist } from './waitlist-nudge';

export interface ClaimUnitsInput {
  holdId: string;
  userId: string;
  offeringId: string;
  unitIds: string[];
  /** ISO-8601; computed by the owning workflow from its clock. */
  expiresAt: string;
  /** The workflow that releases these claims: the hold's own, or a booking's during a reschedule. */
  workflowId: string;
  /** HOLDS_PER_CUSTOMER_MAX as the hold was asked for; absent when the claim is a booking's reschedule, which is no hold of the customer's. */
  holdsPerCustomerMax?: number;
  /** A reschedule's units that the booking lets go once these are its: they do not count toward `maxUnitsPerCustomer`. */
  releasingUnitIds?: string[];
  /**
   * The waitlist entry this hold is the offer of (the offering's waitlist workflow asks): the only
   * claims that may take units while someone waits, and the entry becomes `offered` with them.
   */
  waitlistEntryId?: string;
}

export interface ExtendHoldInput {
  holdId: string;
  /** ISO-8601: the hold's later expiry, computed by its workflow from its clock. */
  expiresAt: string;
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

/** The offer's entry is no longer waiting (its customer left): nothing is claimed for it. */
class EntryNotWaiting extends Error {
  constructor() {
    super('the waitlist entry is no longer waiting');
  }
}

/** What the hold activities share: the database, the Redis gate and events, the logger. */
interface HoldContext {
  db: Database;
  logger: Logger;
  gate: UnitGate;
  events: UnitEvents;
}

export function createHoldActivities(deps: { db: Database; redis?: Redis; logger: Logger }) {
  const { db, logger } = deps;
  const gate = createUnitGate(deps.redis, logger);
  const events = createUnitEvents(deps);
  const ctx: HoldContext = { db, logger, gate, events };

  return {
    claimUnits: (input: ClaimUnitsInput): Promise<ClaimOutcome> => claimUnits(ctx, input),
    releaseHold: (input: ReleaseHoldInput): Promise<HoldStatus | null> => releaseHold(ctx, input),
    extendHold: (input: ExtendHoldInput): Promise<void> => extendHold(ctx, input),
  };
}

export type HoldActivities = ReturnType<typeof createHoldActivities>;

/**
 * Claims every unit for the hold or none, within the customer's fair-use limits (a refusal,
 * `limited`, leaves nothing behind). The gate keys the API set for this request are this
 * hold's already (same owner) and are extended to its TTL; a claim nobody gated (a
 * reschedule) is gated here. A unit Redis calls taken is double-checked against PostgreSQL,
 * so a key left behind by a crash or an outage never blocks a unit that is actually free.
 */
async function claimUnits({ db, gate, events }: HoldContext, input: ClaimUnitsInput): Promise<ClaimOutcome> {
  const unknownUnitIds = await unknownUnits(db, input.offeringId, input.unitIds);
  if (unknownUnitIds.length > 0) return { status: 'rejected', unknownUnitIds };

  const owner = holdGateOwner(input.holdId);
  const ttlMs = Math.max(1, new Date(input.expiresAt).getTime() - Date.now());
  const gated = await gate.acquire(input.offeringId, input.unitIds, owner, ttlMs);
  if (gated.status === 'taken') {
    const claimed = await liveClaimsOf(db, input.unitIds);
    if (claimed.length > 0) return { status: 'conflict', unavailableUnitIds: claimed };
  }

  const outcome = await insertClaims(db, input);
  if (outcome.status !== 'held') {
    if (gated.status === 'acquired') await gate.release(input.offeringId, input.unitIds, owner);
    return outcome;
  }
  if (gated.status !== 'acquired') await gate.assign(input.offeringId, input.unitIds, owner, ttlMs);
  await events.publish(input.offeringId, input.unitIds);
  return outcome;
}

/**
 * Ends an active hold and frees the units no booking took. Locking the hold row serialises
 * this with a booking's confirm, so exactly one of them wins: a consumed hold stays consumed.
 * Answers the hold's final status (null when the hold was never created: its claim failed).
 */
async function releaseHold({ db, logger, gate, events }: HoldContext, input: ReleaseHoldInput): Promise<HoldStatus | null> {
  const result = await db.transaction(async (tx) => {
    const [hold] = await tx.select().from(holds).where(eq(holds.id, input.holdId)).for('update');
    if (!hold) return null;
    if (hold.status !== 'active') return { hold, status: hold.status, freed: [] as string[] };
    await tx
      .update(holds)
      .set({ status: input.reason, updatedAt: sql`now()` })
      .where(eq(holds.id, hold.id));
    const freed = await tx
      .update(unitClaims)
      .set({ releasedAt: sql`now()` })
      .where(and(eq(unitClaims.holdId, hold.id), isNull(unitClaims.releasedAt), isNull(unitClaims.bookingId)))
      .returning({ unitId: unitClaims.unitId });
    // A waitlist offer that ends unbooked has passed: its units go to the next in line.
    await tx
      .update(waitlistEntries)
      .set({ status: 'expired', updatedAt: sql`now()` })
      .where(and(eq(waitlistEntries.holdId, hold.id), eq(waitlistEntries.status, 'offered')));
    return { hold, status: input.reason, freed: freed.map((c) => c.unitId) };
  });
  if (!result) return null;
  if (result.status !== 'consumed') await gate.release(result.hold.offeringId, result.hold.unitIds, holdGateOwner(input.holdId));
  if (result.freed.length > 0) {
    await events.publish(result.hold.offeringId, result.freed);
    logger.info({ holdId: input.holdId, reason: input.reason, units: result.freed.length }, 'hold ended');
    await nudgeWaitlist({ db, logger }, result.hold.offeringId);
  }
  return result.status;
}

/**
 * Projects a kept hold's later expiry onto its row (an active hold only: one already ended keeps
 * its row as it is) and onto its Redis gate keys, so both show what the workflow's timer now does.
 */
async function extendHold({ db, gate }: HoldContext, input: ExtendHoldInput): Promise<void> {
  const expiresAt = new Date(input.expiresAt);
  const [hold] = await db
    .update(holds)
    .set({ expiresAt, updatedAt: sql`now()` })
    .where(and(eq(holds.id, input.holdId), eq(holds.status, 'active')))
    .returning({ offeringId: holds.offeringId, unitIds: holds.unitIds });
  if (!hold) return;
  await gate.assign(hold.offeringId, hold.unitIds, holdGateOwner(input.holdId), Math.max(1, expiresAt.getTime() - Date.now()));
}

async function unknownUnits(db: Database, offeringId: string, unitIds: string[]): Promise<string[]> {
  const found = await db
    .select({ id: units.id })
    .from(units)
    .where(and(eq(units.offeringId, offeringId), inArray(units.id, unitIds)));
  const known = new Set(found.map((u) => u.id));
  return unitIds.filter((id) => !known.has(id));
}

/**
 * The hold row and one claim per unit in one transaction: all or nothing. The customer's row is
 * locked first, so their claims take turns and the fair-use counts read after the lock are
 * exact: a refusal writes nothing, and 50 claims at once never pass a limit. Claims go in
 * sorted by unit id so two overlapping claims wait for each other instead of deadlocking;
 * `ON CONFLICT DO NOTHING` on the partial unique index names exactly the units taken.
 * A retry after a commit whose answer was lost finds the hold row and answers the same.
 *
 * The waitlist's priority: while someone waits for units of the offering (of these units' type),
 * only the claim of a waitlist offer may take them; any other is a `conflict` the API answers as
 * "reserved for the waitlist". Read under the offering's shared waitlist lock, which a join takes
 * exclusively (db/waitlist.ts), it is exact: a freed unit is never held by anyone but the entry it
 * is offered to. An offer's claim makes its entry `offered` in the same transaction, so an entry
 * is offered exactly when its hold exists, and an entry that left meanwhile gets nothing.
 */
async function insertClaims(db: Database, input: ClaimUnitsInput): Promise<ClaimOutcome> {
  const sortedUnitIds = [...input.unitIds].sort();
  try {
    return await db.transaction(async (tx) => {
      await lockCustomerForClaims(tx, input.userId);
      await lockWaitlistShared(tx, input.offeringId);
      const [existing] = await tx.select().from(holds).where(eq(holds.id, input.holdId));
      if (existing) return { status: 'held', hold: holdView(existing) };
      // A share lock orders this claim against the offering's cancellation (which locks the row
      // for update): a claim that commits first is one the cancellation then finds and releases.
      const [offering] = await tx
        .select({ status: offerings.status, maxUnitsPerCustomer: offerings.maxUnitsPerCustomer })
        .from(offerings)
        .where(eq(offerings.id, input.offeringId))
        .for('share');
      if (offering.status === 'canceled') return { status: 'closed', reason: 'the offering was canceled' };
      if (!input.waitlistEntryId && (await waitlistReserves(tx, input.offeringId, input.unitIds))) {
        return { status: 'conflict', unavailableUnitIds: input.unitIds, reservedForWaitlist: true };
      }
      const refusal = await fairUseRefusal(tx, input, offering.maxUnitsPerCustomer);
      if (refusal) return { status: 'limited', refusal };
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
        .returning();
      const claimed = await tx
        .insert(unitClaims)
        .values(sortedUnitIds.map((unitId) => ({ unitId, offeringId: input.offeringId, holdId: input.holdId })))
        .onConflictDoNothing({ target: unitClaims.unitId, where: sql`released_at is null` })
        .returning({ unitId: unitClaims.unitId });
      if (claimed.length !== sortedUnitIds.length) {
        const got = new Set(claimed.map((c) => c.unitId));
        throw new ClaimConflict(input.unitIds.filter((id) => !got.has(id)));
      }
      if (input.waitlistEntryId) await markOffered(tx, input.waitlistEntryId, created);
      return { status: 'held', hold: holdView(created) };
    });
  } catch (err) {
    if (err instanceof ClaimConflict) return { status: 'conflict', unavailableUnitIds: err.unitIds };
    if (err instanceof EntryNotWaiting) return { status: 'conflict', unavailableUnitIds: [], entryNotWaiting: true };
    throw err;
  }
}

/** The entry's offer is this hold; throws (rolling the claim back) when the entry no longer waits. */
async function markOffered(tx: Transaction, entryId: string, hold: typeof holds.$inferSelect): Promise<void> {
  const offered = await tx
    .update(waitlistEntries)
    .set({ status: 'offered', holdId: hold.id, offerExpiresAt: hold.expiresAt, updatedAt: sql`now()` })
    .where(and(eq(waitlistEntries.id, entryId), eq(waitlistEntries.offeringId, hold.offeringId), eq(waitlistEntries.status, 'waiting')))
    .returning({ id: waitlistEntries.id });
  if (offered.length === 0) throw new EntryNotWaiting();
}

/** Whether this claim would take its customer past a fair-use limit; read under the customer's lock. */
async function fairUseRefusal(tx: Transaction, input: ClaimUnitsInput, maxUnitsPerCustomer: number): Promise<HoldLimitRefusal | undefined> {
  const counts = await customerHoldCounts(tx, input);
  return holdLimitRefusal({
    ...counts,
    requested: input.unitIds.length - (input.releasingUnitIds?.length ?? 0),
    maxUnitsPerCustomer,
    holdsPerCustomerMax: input.holdsPerCustomerMax,
  });
}
