import { randomBytes } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { and, eq, inArray, isNull, sql, TransactionRollbackError } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import { isUniqueViolation, type Database } from '../db/client';
import { bookings, holds, offerings, subscriptions, unitClaims, units, waitlistEntries } from '../db/schema';
import { confirmationCodeFrom, CONFIRMATION_CODE_LENGTH, totalPrice, type BookingFailureReason, type CancellationPolicy } from '../domain/booking';
import type { Logger } from '../platform/logger';
import { createUnitEvents, type UnitEvents } from '../availability/unit-events';
import { bookingGateOwner, createUnitGate, type UnitGate } from '../availability/unit-gate';
import { moveBooking, readMoveTarget, type MoveBookingInput, type MoveBookingOutcome, type MoveTarget } from './booking-move';
import { nudgeWaitlist } from './waitlist-nudge';

export interface BeginBookingInput {
  bookingId: string;
  holdId: string;
  userId: string;
  workflowId: string;
}

/** What the saga needs to know about the booking it started. */
export interface BookingTerms {
  offeringId: string;
  offeringName: string;
  unitIds: string[];
  amount: number;
  currency: string;
  requiresSubscription: boolean;
  startsAt: string;
  endsAt: string;
  policy: CancellationPolicy;
  /**
   * ISO-8601 offsets before `startsAt` at which the booking is reminded. Absent from the terms of
   * runs that began before reminders existed: those send none.
   */
  reminders?: string[];
  /** False when the hold had already expired, been released or been used when the saga began. */
  holdActive: boolean;
}

export type ConfirmOutcome = 'confirmed' | 'hold_unavailable';

export interface SwapUnitsInput {
  bookingId: string;
  /** The booking's units the swap expects to replace; anything else means it changed meanwhile. */
  expectedUnitIds: string[];
  unitIds: string[];
  /** The hold on the units that are new to the booking, when there are any. */
  holdId: string | null;
  amount: number;
}

type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0];

/** What the booking activities share: the database, the Redis gate and events, the logger. */
export interface BookingContext {
  db: Database;
  logger: Logger;
  gate: UnitGate;
  events: UnitEvents;
}

/**
 * The booking projection and the unit claims it owns. Each activity is one transaction that
 * first locks the rows it decides on, so retries and concurrent sagas see a consistent answer;
 * Redis keys and live-availability events follow each commit, best-effort.
 */
export function createBookingActivities(deps: { db: Database; redis?: Redis; logger: Logger }) {
  const { db, logger } = deps;
  const gate = createUnitGate(deps.redis, logger);
  const events = createUnitEvents(deps);
  const ctx: BookingContext = { db, logger, gate, events };

  return {
    beginBooking: (input: BeginBookingInput): Promise<BookingTerms> => beginBooking(ctx, input),
    hasActiveSubscription: (input: { userId: string }): Promise<boolean> => hasActiveSubscription(ctx, input),
    confirmBooking: (input: { bookingId: string; holdId: string }): Promise<ConfirmOutcome> => confirmBooking(ctx, input),
    failBooking: (input: { bookingId: string; reason: BookingFailureReason }): Promise<void> => failBooking(ctx, input),
    priceUnits: (input: { offeringId: string; unitIds: string[] }): Promise<{ amount: number; currency: string }> => priceUnits(ctx, input),
    swapBookingUnits: (input: SwapUnitsInput): Promise<boolean> => swapBookingUnits(ctx, input),
    // A move to another offering of the booking's series (activities/booking-move.ts).
    readMoveTarget: (input: { fromOfferingId: string; toOfferingId: string }): Promise<MoveTarget | null> => readMoveTarget(ctx, input),
    moveBooking: (input: MoveBookingInput): Promise<MoveBookingOutcome> => moveBooking(ctx, input),
    cancelBooking: (input: { bookingId: string; refundedAmount: number }): Promise<void> => cancelBooking(ctx, input),
    checkInBooking: (input: { bookingId: string; checkedInAt: string }): Promise<void> => checkInBooking(ctx, input),
    markNoShow: (input: { bookingId: string }): Promise<void> => markNoShow(ctx, input),
  };
}

export type BookingActivities = ReturnType<typeof createBookingActivities>;

/** Records the booking as pending (once) and reads its terms from the hold and the offering. */
async function beginBooking({ db }: BookingContext, input: BeginBookingInput): Promise<BookingTerms> {
  const [row] = await db
    .select({ hold: holds, offering: offerings })
    .from(holds)
    .innerJoin(offerings, eq(offerings.id, holds.offeringId))
    .where(eq(holds.id, input.holdId));
  if (!row || row.hold.userId !== input.userId) {
    throw ApplicationFailure.nonRetryable(`no hold ${input.holdId} of user ${input.userId}`, 'HoldNotFound');
  }
  const { hold, offering } = row;
  const price = totalPrice(await db.select({ amount: units.amount, currency: units.currency }).from(units).where(inArray(units.id, hold.unitIds)));
  // A retry finds its row (the id conflicts) and keeps the code it was given the first time.
  await withFreshConfirmationCode((confirmationCode) =>
    db
      .insert(bookings)
      .values({
        id: input.bookingId,
        userId: input.userId,
        offeringId: hold.offeringId,
        holdId: hold.id,
        unitIds: hold.unitIds,
        status: 'pending',
        amount: price.amount,
        currency: price.currency,
        workflowId: input.workflowId,
        confirmationCode,
      })
      .onConflictDoNothing({ target: bookings.id }),
  );
  return {
    offeringId: offering.id,
    offeringName: offering.name,
    unitIds: hold.unitIds,
    amount: price.amount,
    currency: price.currency,
    requiresSubscription: offering.requiresSubscription,
    startsAt: offering.startsAt.toISOString(),
    endsAt: offering.endsAt.toISOString(),
    policy: { freeUntil: offering.freeCancellationUntil, lateRefundPercent: offering.lateRefundPercent },
    reminders: offering.reminders,
    holdActive: hold.status === 'active',
  };
}

/** True when the user has a subscription that is active or trialing. */
async function hasActiveSubscription({ db }: BookingContext, input: { userId: string }): Promise<boolean> {
  const [found] = await db
    .select({ id: subscriptions.id })
    .from(subscriptions)
    .where(and(eq(subscriptions.userId, input.userId), inArray(subscriptions.status, ['active', 'trialing'])))
    .limit(1);
  return found !== undefined;
}

/**
 * One transaction: the hold consumed, its claims handed to the booking, the booking
 * confirmed. Locking the hold row orders this against the hold's TTL release, so a hold
 * that expired first answers `hold_unavailable` and the saga refunds; so does an offering the
 * business canceled (its row share-locked, so the cancellation and this confirm take turns and a
 * booking confirmed first is one the cancellation finds). Repeating a confirm that committed
 * answers `confirmed` again.
 */
async function confirmBooking({ db, logger, gate, events }: BookingContext, input: { bookingId: string; holdId: string }): Promise<ConfirmOutcome> {
  const confirmed = await rolledBackAsUndefined(
    db.transaction(async (tx) => {
      const [booking] = await tx.select().from(bookings).where(eq(bookings.id, input.bookingId)).for('update');
      if (!booking) throw ApplicationFailure.nonRetryable(`no booking ${input.bookingId}`, 'BookingNotFound');
      if (booking.status === 'confirmed') return { booking, changed: false };
      if (booking.status !== 'pending' || (await offeringCanceled(tx, booking.offeringId)) || !(await consumeHold(tx, input.holdId, booking.id))) {
        tx.rollback();
      }
      await tx
        .update(bookings)
        .set({ status: 'confirmed', updatedAt: sql`now()` })
        .where(eq(bookings.id, booking.id));
      return { booking, changed: true };
    }),
  );
  if (!confirmed) return 'hold_unavailable';
  if (confirmed.changed) {
    const { booking } = confirmed;
    await gate.assign(booking.offeringId, booking.unitIds, bookingGateOwner(booking.id));
    await events.publish(booking.offeringId, booking.unitIds);
    logger.info({ bookingId: booking.id }, 'booking confirmed');
  }
  return 'confirmed';
}

/** The saga gave up: a pending booking becomes failed with its reason (other statuses stay). */
async function failBooking({ db, logger }: BookingContext, input: { bookingId: string; reason: BookingFailureReason }): Promise<void> {
  await db
    .update(bookings)
    .set({ status: 'failed', failureReason: input.reason, updatedAt: sql`now()` })
    .where(and(eq(bookings.id, input.bookingId), eq(bookings.status, 'pending')));
  logger.info({ bookingId: input.bookingId, reason: input.reason }, 'booking failed');
}

/** The price of a set of an offering's units (one currency). */
async function priceUnits({ db }: BookingContext, input: { offeringId: string; unitIds: string[] }): Promise<{ amount: number; currency: string }> {
  const rows = await db
    .select({ amount: units.amount, currency: units.currency })
    .from(units)
    .where(and(eq(units.offeringId, input.offeringId), inArray(units.id, input.unitIds)));
  if (rows.length !== new Set(input.unitIds).size) {
    throw ApplicationFailure.nonRetryable('some units are not units of the offering', 'UnknownUnits');
  }
  return totalPrice(rows);
}

/**
 * A reschedule's switch, in one transaction: the new units' hold consumed into the booking,
 * the units it no longer has released, its unit list and price replaced. Refuses (answers
 * false, changing nothing) when the booking is no longer the one the saga started from.
 */
async function swapBookingUnits({ db, logger, gate, events }: BookingContext, input: SwapUnitsInput): Promise<boolean> {
  const removed = input.expectedUnitIds.filter((id) => !input.unitIds.includes(id));
  const result = await rolledBackAsUndefined(
    db.transaction(async (tx) => {
      const [booking] = await tx.select().from(bookings).where(eq(bookings.id, input.bookingId)).for('update');
      if (!booking) throw ApplicationFailure.nonRetryable(`no booking ${input.bookingId}`, 'BookingNotFound');
      if (sameSet(booking.unitIds, input.unitIds) && booking.amount === input.amount) return { booking, changed: false };
      if (booking.status !== 'confirmed' || !sameSet(booking.unitIds, input.expectedUnitIds)) tx.rollback();
      if (input.holdId && !(await consumeHold(tx, input.holdId, booking.id))) tx.rollback();
      if (removed.length > 0) {
        await tx
          .update(unitClaims)
          .set({ releasedAt: sql`now()` })
          .where(and(eq(unitClaims.bookingId, booking.id), inArray(unitClaims.unitId, removed), isNull(unitClaims.releasedAt)));
      }
      await tx
        .update(bookings)
        .set({ unitIds: input.unitIds, amount: input.amount, updatedAt: sql`now()` })
        .where(eq(bookings.id, booking.id));
      return { booking, changed: true };
    }),
  );
  if (!result) return false;
  if (result.changed) {
    const { offeringId } = result.booking;
    const added = input.unitIds.filter((id) => !input.expectedUnitIds.includes(id));
    await gate.assign(offeringId, added, bookingGateOwner(input.bookingId));
    await gate.release(offeringId, removed, bookingGateOwner(input.bookingId));
    await events.publish(offeringId, [...added, ...removed]);
    logger.info({ bookingId: input.bookingId, added: added.length, removed: removed.length }, 'booking rescheduled');
    if (removed.length > 0) await nudgeWaitlist({ db, logger }, offeringId);
  }
  return true;
}

/** Cancels a confirmed (or checked-in) booking: its units released, the refund it got recorded. */
async function cancelBooking({ db, logger, gate, events }: BookingContext, input: { bookingId: string; refundedAmount: number }): Promise<void> {
  const result = await db.transaction(async (tx) => {
    const [booking] = await tx.select().from(bookings).where(eq(bookings.id, input.bookingId)).for('update');
    if (!booking) throw ApplicationFailure.nonRetryable(`no booking ${input.bookingId}`, 'BookingNotFound');
    if (booking.status === 'canceled') return undefined;
    // Checked in too: the business cancels those with the offering (the customer's cancel never gets here for them).
    if (booking.status !== 'confirmed' && booking.status !== 'checked_in') {
      throw ApplicationFailure.nonRetryable(`booking ${booking.id} is ${booking.status}`, 'BookingNotConfirmed');
    }
    await tx
      .update(bookings)
      .set({ status: 'canceled', refundedAmount: input.refundedAmount, updatedAt: sql`now()` })
      .where(eq(bookings.id, booking.id));
    await tx
      .update(unitClaims)
      .set({ releasedAt: sql`now()` })
      .where(and(eq(unitClaims.bookingId, booking.id), isNull(unitClaims.releasedAt)));
    return booking;
  });
  if (!result) return;
  await gate.release(result.offeringId, result.unitIds, bookingGateOwner(result.id));
  await events.publish(result.offeringId, result.unitIds);
  logger.info({ bookingId: input.bookingId, refundedAmount: input.refundedAmount }, 'booking canceled');
  await nudgeWaitlist({ db, logger }, result.offeringId);
}

const CONFIRMATION_CODE_ATTEMPTS = 5;

/**
 * Runs `insert` with a random confirmation code, and again with another while the unique index
 * says the code is taken (31^8 codes make that rare; five misses in a row mean something else).
 */
async function withFreshConfirmationCode(insert: (code: string) => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await insert(confirmationCodeFrom(randomBytes(CONFIRMATION_CODE_LENGTH)));
      return;
    } catch (err) {
      if (attempt >= CONFIRMATION_CODE_ATTEMPTS || !isUniqueViolation(err, 'bookings_confirmation_code_idx')) throw err;
    }
  }
}

/**
 * Staff admitted the booking's holder: a confirmed booking becomes checked_in at `checkedInAt`
 * (the workflow's clock). Repeating it changes nothing; the workflow has already refused any
 * other status, so the row disagreeing is a bug worth failing loudly.
 */
async function checkInBooking({ db, logger }: BookingContext, input: { bookingId: string; checkedInAt: string }): Promise<void> {
  const [booking] = await db.select({ status: bookings.status }).from(bookings).where(eq(bookings.id, input.bookingId));
  if (!booking) throw ApplicationFailure.nonRetryable(`no booking ${input.bookingId}`, 'BookingNotFound');
  if (booking.status === 'checked_in') return;
  const updated = await db
    .update(bookings)
    .set({ status: 'checked_in', checkedInAt: new Date(input.checkedInAt), updatedAt: sql`now()` })
    .where(and(eq(bookings.id, input.bookingId), eq(bookings.status, 'confirmed')))
    .returning({ id: bookings.id });
  if (updated.length === 0) {
    throw ApplicationFailure.nonRetryable(`booking ${input.bookingId} is ${booking.status}`, 'BookingNotConfirmed');
  }
  logger.info({ bookingId: input.bookingId }, 'booking checked in');
}

/** The offering ended and nobody checked the booking in: a confirmed booking becomes no_show (once). */
async function markNoShow({ db, logger }: BookingContext, input: { bookingId: string }): Promise<void> {
  const updated = await db
    .update(bookings)
    .set({ status: 'no_show', updatedAt: sql`now()` })
    .where(and(eq(bookings.id, input.bookingId), eq(bookings.status, 'confirmed')))
    .returning({ id: bookings.id });
  if (updated.length > 0) logger.info({ bookingId: input.bookingId }, 'booking no-show');
}

/** Whether the business canceled the offering; the share lock waits for a cancellation under way. */
async function offeringCanceled(tx: Transaction, offeringId: string): Promise<boolean> {
  const [offering] = await tx.select({ status: offerings.status }).from(offerings).where(eq(offerings.id, offeringId)).for('share');
  return offering?.status === 'canceled';
}

async function lockHold(tx: Transaction, holdId: string) {
  const [hold] = await tx.select().from(holds).where(eq(holds.id, holdId)).for('update');
  return hold;
}

/** Marks the hold consumed and hands its live claims to the booking, all of them or none. */
export async function consumeHold(tx: Transaction, holdId: string, bookingId: string): Promise<string[] | undefined> {
  const hold = await lockHold(tx, holdId);
  if (!hold || hold.status !== 'active') return undefined;
  const taken = await tx
    .update(unitClaims)
    .set({ bookingId })
    .where(and(eq(unitClaims.holdId, holdId), isNull(unitClaims.releasedAt)))
    .returning({ unitId: unitClaims.unitId });
  if (taken.length !== hold.unitIds.length) return undefined;
  await tx
    .update(holds)
    .set({ status: 'consumed', updatedAt: sql`now()` })
    .where(eq(holds.id, holdId));
  // A waitlist offer taken: its entry is booked, in the same commit as the booking.
  await tx
    .update(waitlistEntries)
    .set({ status: 'booked', updatedAt: sql`now()` })
    .where(and(eq(waitlistEntries.holdId, holdId), eq(waitlistEntries.status, 'offered')));
  return hold.unitIds;
}

/** A transaction that decided to change nothing (`tx.rollback()`) answers undefined. */
export async function rolledBackAsUndefined<T>(transaction: Promise<T>): Promise<T | undefined> {
  try {
    return await transaction;
  } catch (err) {
    if (err instanceof TransactionRollbackError) return undefined;
    throw err;
  }
}

export function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}
