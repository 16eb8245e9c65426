import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

// Money is always integer minor units; bigint in mode 'number' keeps it a JS number (safe to 2^53).
const money = (name: string) => bigint(name, { mode: 'number' });
const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true }).notNull().defaultNow();

export const users = pgTable('users', {
  id: uuid('id').primaryKey().defaultRandom(),
  email: text('email').notNull().unique(),
  passwordHash: text('password_hash').notNull(),
  name: text('name').notNull(),
  role: text('role', { enum: ['customer', 'staff'] })
    .notNull()
    .default('customer'),
  createdAt: createdAt(),
});

export const plans = pgTable(
  'plans',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    code: text('code').notNull().unique(),
    name: text('name').notNull(),
    amount: money('amount').notNull(),
    currency: text('currency').notNull(),
    interval: text('interval').notNull(),
    trialPeriod: text('trial_period'),
    retryOffsets: text('retry_offsets').array().notNull(),
    reminderOffsets: text('reminder_offsets').array().notNull(),
    gracePeriod: text('grace_period').notNull(),
    active: boolean('active').notNull().default(true),
    createdAt: createdAt(),
  },
  (t) => [check('plans_amount_positive', sql`${t.amount} > 0`)],
);

export const subscriptions = pgTable(
  'subscriptions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    planId: uuid('plan_id')
      .notNull()
      .references(() => plans.id),
    status: text('status', {
      enum: ['incomplete', 'trialing', 'active', 'past_due', 'canceled', 'expired'],
    }).notNull(),
    paymentMethod: text('payment_method').notNull(),
    anchorDate: timestamp('anchor_date', { withTimezone: true }).notNull(),
    cycle: integer('cycle').notNull().default(0),
    currentPeriodStart: timestamp('current_period_start', { withTimezone: true }),
    currentPeriodEnd: timestamp('current_period_end', { withTimezone: true }),
    nextBillingDate: timestamp('next_billing_date', { withTimezone: true }),
    trialEnd: timestamp('trial_end', { withTimezone: true }),
    cancelAtPeriodEnd: boolean('cancel_at_period_end').notNull().default(false),
    canceledAt: timestamp('canceled_at', { withTimezone: true }),
    graceEndsAt: timestamp('grace_ends_at', { withTimezone: true }),
    attemptCount: integer('attempt_count').notNull().default(0),
    workflowId: text('workflow_id').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('subscriptions_user_idx').on(t.userId), index('subscriptions_status_idx').on(t.status)],
);

export const payments = pgTable(
  'payments',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    kind: text('kind', { enum: ['subscription', 'one_time', 'booking', 'refund'] }).notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    subscriptionId: uuid('subscription_id').references(() => subscriptions.id),
    bookingId: uuid('booking_id').references(() => bookings.id),
    amount: money('amount').notNull(),
    currency: text('currency').notNull(),
    status: text('status', { enum: ['pending', 'succeeded', 'failed', 'refunded'] }).notNull(),
    cycle: integer('cycle'),
    attempt: integer('attempt').notNull().default(1),
    // Derived from (workflow, cycle, attempt); sent to the gateway too, so a retried charge is one charge.
    idempotencyKey: text('idempotency_key').notNull().unique(),
    gatewayPaymentId: text('gateway_payment_id'),
    failureCode: text('failure_code'),
    refundedAmount: money('refunded_amount').notNull().default(0),
    refundOf: uuid('refund_of'),
    description: text('description'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index('payments_user_idx').on(t.userId),
    index('payments_subscription_idx').on(t.subscriptionId),
    index('payments_booking_idx').on(t.bookingId),
    index('payments_gateway_idx').on(t.gatewayPaymentId),
    check('payments_amount_non_negative', sql`${t.amount} >= 0`),
  ],
);

// Transactional outbox: a row is written with the state change, a sender delivers it later.
export const notifications = pgTable(
  'notifications',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    subscriptionId: uuid('subscription_id').references(() => subscriptions.id),
    bookingId: uuid('booking_id').references(() => bookings.id),
    kind: text('kind').notNull(),
    recipient: text('recipient').notNull(),
    subject: text('subject').notNull(),
    body: text('body').notNull(),
    // One notification per business event, however often the activity that writes it is retried.
    dedupeKey: text('dedupe_key').notNull().unique(),
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
    createdAt: createdAt(),
    sentAt: timestamp('sent_at', { withTimezone: true }),
  },
  (t) => [
    index('notifications_subscription_idx').on(t.subscriptionId),
    index('notifications_unsent_idx')
      .on(t.createdAt)
      .where(sql`${t.sentAt} is null`),
  ],
);

export const webhookEvents = pgTable('webhook_events', {
  id: text('id').primaryKey(),
  type: text('type').notNull(),
  payload: jsonb('payload').notNull(),
  receivedAt: timestamp('received_at', { withTimezone: true }).notNull().defaultNow(),
});

export const offerings = pgTable('offerings', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  kind: text('kind', { enum: ['appointment', 'seating', 'parking'] }).notNull(),
  startsAt: timestamp('starts_at', { withTimezone: true }).notNull(),
  endsAt: timestamp('ends_at', { withTimezone: true }).notNull(),
  requiresSubscription: boolean('requires_subscription').notNull().default(false),
  holdTtl: text('hold_ttl').notNull().default('PT5M'),
  freeCancellationUntil: text('free_cancellation_until'),
  lateRefundPercent: integer('late_refund_percent').notNull().default(0),
  createdAt: createdAt(),
});

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
    status: text('status', { enum: ['pending', 'confirmed', 'failed', 'canceled'] }).notNull(),
    amount: money('amount').notNull(),
    currency: text('currency').notNull(),
    refundedAmount: money('refunded_amount').notNull().default(0),
    failureReason: text('failure_reason'),
    workflowId: text('workflow_id').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('bookings_user_idx').on(t.userId)],
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

export const auditLog = pgTable(
  'audit_log',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    actorId: uuid('actor_id').references(() => users.id),
    action: text('action').notNull(),
    targetType: text('target_type').notNull(),
    targetId: text('target_id').notNull(),
    reason: text('reason'),
    details: jsonb('details'),
    createdAt: createdAt(),
  },
  (t) => [index('audit_log_target_idx').on(t.targetType, t.targetId)],
);

/** Replays the first answer to a POST that carried an `Idempotency-Key`. */
export const idempotencyRecords = pgTable(
  'idempotency_records',
  {
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    key: text('key').notNull(),
    route: text('route').notNull(),
    requestHash: text('request_hash').notNull(),
    statusCode: integer('status_code'),
    responseBody: jsonb('response_body'),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.key, t.route] })],
);
