/**
 * A booking's move to another offering of its series: what the workflow's rules need to know of
 * the target, and the switch itself, one transaction that hands the booking from one offering to
 * the other. Registered with the other booking activities (activities/booking.ts).
 */
import { ApplicationFailure } from '@temporalio/common';
import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import { bookingGateOwner } from '../availability/unit-gate';
import { bookings, offerings, unitClaims } from '../db/schema';
import type { CancellationPolicy } from '../domain/booking';
import type { OfferingStatus } from '../domain/offering';
import { consumeHold, rolledBackAsUndefined, sameSet, type BookingContext } from './booking';

/** What the move rules (domain/move.ts) need of an offering; dates as ISO-8601, as activity results travel. */
export interface MoveOfferingFacts {
  id: string;
  name: string;
  seriesId: string | null;
  status: OfferingStatus;
  startsAt: string;
}

export interface MoveTarget {
  from: MoveOfferingFacts;
  to: MoveOfferingFacts;
}

/**
 * The offering part of a booking's terms (see BookingTerms), as the booking holds them after a
 * move. `reminders` rides along so that a BookingTerms that lists them is replaced whole.
 */
export interface OfferingTerms {
  offeringId: string;
  offeringName: string;
  requiresSubscription: boolean;
  startsAt: string;
  endsAt: string;
  policy: CancellationPolicy;
  reminders: string[];
}

export interface MoveBookingInput {
  bookingId: string;
  /** The offering and units the move expects the booking to have; anything else means it changed meanwhile. */
  fromOfferingId: string;
  expectedUnitIds: string[];
  offeringId: string;
  unitIds: string[];
  /** The hold on the new units, claimed in `offeringId` by the booking's workflow. */
  holdId: string;
  amount: number;
}

export type MoveBookingOutcome =
  | { status: 'moved'; terms: OfferingTerms }
  /** The booking is no longer the one the move started from, or the new hold is gone: nothing changed. */
  | { status: 'conflict' }
  /** The target was canceled before the move could commit: nothing changed. */
  | { status: 'offering_canceled' };

type OfferingRow = typeof offerings.$inferSelect;

/** Both offerings' facts, or null when either is unknown. A read: retries are harmless. */
export async function readMoveTarget({ db }: BookingContext, input: { fromOfferingId: string; toOfferingId: string }): Promise<MoveTarget | null> {
  const rows = await db
    .select()
    .from(offerings)
    .where(inArray(offerings.id, [input.fromOfferingId, input.toOfferingId]));
  const from = rows.find((o) => o.id === input.fromOfferingId);
  const to = rows.find((o) => o.id === input.toOfferingId);
  if (!from || !to) return null;
  return { from: factsOf(from), to: factsOf(to) };
}

/**
 * The move's switch, in one transaction: the new units' hold consumed into the booking, every
 * claim the booking had in its old offering released, its offering, units and price replaced.
 * The target row is locked (shared) first, so a cancel of the target that commits first is seen
 * here (`offering_canceled`), and one that commits after sees the moved booking. Idempotent: a
 * retry after a commit finds the booking moved and answers `moved` again, without new events.
 */
export async function moveBooking({ db, logger, gate, events }: BookingContext, input: MoveBookingInput): Promise<MoveBookingOutcome> {
  const result = await rolledBackAsUndefined(
    db.transaction(async (tx) => {
      const [target] = await tx.select().from(offerings).where(eq(offerings.id, input.offeringId)).for('share');
      if (!target) throw ApplicationFailure.nonRetryable(`no offering ${input.offeringId}`, 'OfferingNotFound');
      const [booking] = await tx.select().from(bookings).where(eq(bookings.id, input.bookingId)).for('update');
      if (!booking) throw ApplicationFailure.nonRetryable(`no booking ${input.bookingId}`, 'BookingNotFound');
      const done = booking.offeringId === input.offeringId && sameSet(booking.unitIds, input.unitIds) && booking.amount === input.amount;
      if (done) return { outcome: moved(target), changed: false };
      if (target.status === 'canceled') return { outcome: { status: 'offering_canceled' } as const, changed: false };
      const unchanged = booking.offeringId === input.fromOfferingId && sameSet(booking.unitIds, input.expectedUnitIds);
      if (booking.status !== 'confirmed' || !unchanged) tx.rollback();
      if (!(await consumeHold(tx, input.holdId, booking.id))) tx.rollback();
      await tx
        .update(unitClaims)
        .set({ releasedAt: sql`now()` })
        .where(and(eq(unitClaims.bookingId, booking.id), eq(unitClaims.offeringId, input.fromOfferingId), isNull(unitClaims.releasedAt)));
      await tx
        .update(bookings)
        .set({ offeringId: input.offeringId, unitIds: input.unitIds, amount: input.amount, updatedAt: sql`now()` })
        .where(eq(bookings.id, booking.id));
      return { outcome: moved(target), changed: true };
    }),
  );
  if (!result) return { status: 'conflict' };
  if (result.changed) {
    const owner = bookingGateOwner(input.bookingId);
    await gate.assign(input.offeringId, input.unitIds, owner);
    await gate.release(input.fromOfferingId, input.expectedUnitIds, owner);
    await events.publish(input.offeringId, input.unitIds);
    await events.publish(input.fromOfferingId, input.expectedUnitIds);
    logger.info({ bookingId: input.bookingId, from: input.fromOfferingId, to: input.offeringId }, 'booking moved');
  }
  return result.outcome;
}

function moved(offering: OfferingRow): MoveBookingOutcome {
  return {
    status: 'moved',
    terms: {
      offeringId: offering.id,
      offeringName: offering.name,
      requiresSubscription: offering.requiresSubscription,
      startsAt: offering.startsAt.toISOString(),
      endsAt: offering.endsAt.toISOString(),
      policy: { freeUntil: offering.freeCancellationUntil, lateRefundPercent: offering.lateRefundPercent },
      reminders: offering.reminders,
    },
  };
}

function factsOf(offering: OfferingRow): MoveOfferingFacts {
  return { id: offering.id, name: offering.name, seriesId: offering.seriesId, status: offering.status, startsAt: offering.startsAt.toISOString() };
}
