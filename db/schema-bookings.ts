/**
 * Offerings, their units, holds, bookings, the claims that keep a unit to one holder, and the
 * waitlist. Re-exported by db/schema.ts, which the rest of the code (and drizzle-kit) imports.
 * The references to users are callbacks, read only when the schema is used, so the two files may
 * import each other.
 */
import { sql } from 'drizzle-orm';
import { bigserial, boolean, check, index, integer, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { DEFAULT_WAITLIST_OFFER_TTL, OFFERING_STATUSES } from '../domain/offering';
import { WAITLIST_ENTRY_STATUSES } from '../domain/waitlist';
import { DEFAULT_MAX_UNITS_PER_CUSTOMER } from '../domain/hold';
import { createdAt, money, updatedAt } from './columns';
import { users } from './schema';

export const offerings = pgTable(
  'offerings',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull(),
    kind: text('kind', { enum: ['appointment', 'seating', 'parking'] }).notNull(),
    startsAt: timestamp('starts_at', { withTimezone: true }).notNull(),
    endsAt: timestamp('ends_at', { withTimezone: true }).notNull(),
    requiresSubscription: boolean('requires_subscription').notNull().default(false),
    holdTtl: text('hold_ttl').notNull().default('PT5M'),
    freeCancellationUntil: text('free_cancellation_until'),
    lateRefundPercent: integer('late_refund_percent').notNull().default(0),
    // Fair use: units of this offering one customer may hold and book at once.
    maxUnitsPerCustomer: integer('max_units_per_customer').notNull().default(DEFAULT_MAX_UNITS_PER_CUSTOMER),
    // Other dates or times of the same event or service: a booking may move to any of them.
    seriesId: uuid('series_id'),
    // ISO-8601 offsets before starts_at at which each confirmed booking is reminded.
    reminders: text('reminders')
      .array()
      .notNull()
      .default(sql`'{}'::text[]`),
    // How long a waitlist entry's offer holds the units it was offered.
    waitlistOfferTtl: text('waitlist_offer_ttl').notNull().default(DEFAULT_WAITLIST_OFFER_TTL),
    status: text('status', { enum: OFFERING_STATUSES }).notNull().default('scheduled'),
    canceledAt: timestamp('canceled_at', { withTimezone: true }),
    cancelReason: text('cancel_reason'),
    createdAt: createdAt(),
  },
  (t) => [
    check('offerings_max_units_per_customer_positive', sql`${t.maxUnitsPerCustomer} >= 1`),
    index('offerings_series_idx')
      .on(t.seriesId, t.startsAt)
      .where(sql`${t.seriesId} is not null`),
  ],
);

export const units = pgTable(
  'units',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    offeringId: uuid('offering_id')
      .notNull()
      .references(() => offerings.id),
    label: text('label').notNull(),
    type: text('type'),
    amount: money('amount').notNull(),
    currency: text('currency').notNull(),
  },
  (t) => [index('units_offering_idx').on(t.offeringId), uniqueIndex('units_offering_label_idx').on(t.offeringId, t.label)],
);

export const holds = pgTable(
  'holds',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    offeringId: uuid('offering_id')
      .notNull()
      .references(() => offerings.id),
    unitIds: uuid('unit_ids').array().notNull(),
    status: text('status', { enum: ['active', 'consumed', 'released', 'expired'] }).notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    workflowId: text('workflow_id').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('holds_user_idx').on(t.userId)],
);

export const bookings = pgTable(
  'bookings',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    offeringId: uuid('offering_id')
      .notNull()
      .references(() => offerings.id),
    holdId: uuid('hold_id').references(() => holds.id),
    unitIds: uuid('unit_ids').array().notNull(),
    status: text('status', { enum: ['pending', 'confirmed', 'failed', 'canceled', 'checked_in', 'no_show'] }).notNull(),
    amount: money('amount').notNull(),
    currency: text('currency').notNull(),
    refundedAmount: money('refunded_amount').notNull().default(0),
    failureReason: text('failure_reason'),
    workflowId: text('workflow_id').notNull(),
    /** What the customer shows at the door (domain/booking.ts); null for bookings from before codes. */
    confirmationCode: text('confirmation_code'),
    checkedInAt: timestamp('checked_in_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('bookings_user_idx').on(t.userId), uniqueIndex('bookings_confirmation_code_idx').on(t.confirmationCode)],
);

/**
 * The seat-safety guarantee: a unit has at most one live claim (a hold, later a booking).
 * Redis is only the fast gate in front of this partial unique index.
 */
export const unitClaims = pgTable(
  'unit_claims',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    unitId: uuid('unit_id')
      .notNull()
      .references(() => units.id),
    offeringId: uuid('offering_id')
      .notNull()
      .references(() => offerings.id),
    holdId: uuid('hold_id').references(() => holds.id),
    bookingId: uuid('booking_id').references(() => bookings.id),
    createdAt: createdAt(),
    releasedAt: timestamp('released_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('unit_claims_one_live_per_unit')
      .on(t.unitId)
      .where(sql`${t.releasedAt} is null`),
    index('unit_claims_offering_live_idx')
      .on(t.offeringId)
      .where(sql`${t.releasedAt} is null`),
    index('unit_claims_hold_idx').on(t.holdId),
    index('unit_claims_booking_idx').on(t.bookingId),
  ],
);

/**
 * A customer waiting for units of a sold-out offering. `position` orders the entries (a
 * sequence, so it is the order of arrival); the offering's waitlist workflow is the only writer
 * of `offered`, `hold_id` and `offer_expires_at`. A customer has at most one live entry per
 * offering.
 */
export const waitlistEntries = pgTable(
  'waitlist_entries',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    position: bigserial('position', { mode: 'number' }).notNull(),
    offeringId: uuid('offering_id')
      .notNull()
      .references(() => offerings.id),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    quantity: integer('quantity').notNull(),
    unitType: text('unit_type'),
    status: text('status', { enum: WAITLIST_ENTRY_STATUSES }).notNull().default('waiting'),
    holdId: uuid('hold_id').references(() => holds.id),
    offerExpiresAt: timestamp('offer_expires_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check('waitlist_entries_quantity_positive', sql`${t.quantity} >= 1`),
    index('waitlist_entries_offering_idx').on(t.offeringId, t.position),
    // The line itself: every claim of the offering asks whether anyone waits (a miss is one probe).
    index('waitlist_entries_waiting_idx')
      .on(t.offeringId, t.position)
      .where(sql`${t.status} = 'waiting'`),
    // A hold's release or a booking's confirm settles the offer it was, if any.
    index('waitlist_entries_hold_idx')
      .on(t.holdId)
      .where(sql`${t.holdId} is not null`),
    uniqueIndex('waitlist_entries_one_live_per_customer')
      .on(t.offeringId, t.userId)
      .where(sql`${t.status} in ('waiting', 'offered')`),
  ],
);
