import { sql } from 'drizzle-orm';
import { bigserial, boolean, check, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { bookings } from './schema-bookings';
import { CREDIT_KINDS } from '../domain/credit';
import { INVOICE_KINDS, INVOICE_STATUSES, MAX_TAX_RATE_BPS, type InvoiceLine, type InvoiceLineInput } from '../domain/invoice';
import type { NextAction } from '../domain/payment';
import { createdAt, money, updatedAt } from './columns';
import type { DiscountSnapshot, ScheduledChange } from '../domain/subscription';

// Coupons and referrals, and the booking tables, have files of their own; every table is still imported from here.
export * from './schema-promotions';
export * from './schema-bookings';

export const users = pgTable('users', {
  id: uuid('id').primaryKey().defaultRandom(),
  email: text('email').notNull().unique(),
  passwordHash: text('password_hash').notNull(),
  name: text('name').notNull(),
  role: text('role', { enum: ['customer', 'staff'] })
    .notNull()
    .default('customer'),
  // The user's customer at the payment gateway (Stripe's cus_…), created on first need.
  gatewayCustomerId: text('gateway_customer_id').unique(),
  createdAt: createdAt(),
});

/**
 * Cards saved to a user's gateway customer: attached through the API or a SetupIntent's webhook.
 * A detached card keeps its row (old payments name it) but is never charged or listed again.
 */
export const paymentMethods = pgTable(
  'payment_methods',
  {
    // The gateway's id (pm_…).
    id: text('id').primaryKey(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    brand: text('brand').notNull(),
    last4: text('last4').notNull(),
    expMonth: integer('exp_month').notNull(),
    expYear: integer('exp_year').notNull(),
    isDefault: boolean('is_default').notNull().default(false),
    createdAt: createdAt(),
    detachedAt: timestamp('detached_at', { withTimezone: true }),
  },
  (t) => [
    index('payment_methods_user_idx').on(t.userId),
    // At most one default per user among the cards still attached.
    uniqueIndex('payment_methods_one_default')
      .on(t.userId)
      .where(sql`${t.isDefault} and ${t.detachedAt} is null`),
  ],
);

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
    // Exclusive tax in basis points (2000 = 20 %) on each of the plan's invoice lines; none when null.
    taxRate: integer('tax_rate'),
    createdAt: createdAt(),
  },
  (t) => [
    check('plans_amount_positive', sql`${t.amount} > 0`),
    check('plans_tax_rate_range', sql`${t.taxRate} is null or (${t.taxRate} >= 0 and ${t.taxRate} <= ${sql.raw(String(MAX_TAX_RATE_BPS))})`),
  ],
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
      enum: ['incomplete', 'trialing', 'active', 'past_due', 'paused', 'canceled', 'expired'],
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
    // Seats: each period costs the plan's amount × quantity.
    quantity: integer('quantity').notNull().default(1),
    // A plan change asked for at the period end, shown until it applies or is withdrawn.
    scheduledChange: jsonb('scheduled_change').$type<ScheduledChange>(),
    // A pause asked for begins here (the paid period's end); paused_at is set once it has begun.
    pauseAt: timestamp('pause_at', { withTimezone: true }),
    pausedAt: timestamp('paused_at', { withTimezone: true }),
    resumesAt: timestamp('resumes_at', { withTimezone: true }),
    // The coupon applied and the cycles it still covers, as the workflow last projected it.
    discount: jsonb('discount').$type<DiscountSnapshot>(),
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
    // `disputed`: the customer's bank opened a dispute (chargeback) on a charge that succeeded.
    status: text('status', { enum: ['pending', 'succeeded', 'failed', 'refunded', 'disputed'] }).notNull(),
    cycle: integer('cycle'),
    attempt: integer('attempt').notNull().default(1),
    // Derived from (workflow, cycle, attempt); sent to the gateway too, so a retried charge is one charge.
    idempotencyKey: text('idempotency_key').notNull().unique(),
    gatewayPaymentId: text('gateway_payment_id'),
    failureCode: text('failure_code'),
    // What the card (or other payment method) was refunded of the charge; never counts credit given back.
    refundedAmount: money('refunded_amount').notNull().default(0),
    // The part of `amount` paid from the customer's credit balance, spent with the row's claim (the
    // gateway was charged `amount - credit_applied`; nothing when they are equal).
    creditApplied: money('credit_applied').notNull().default(0),
    refundOf: uuid('refund_of'),
    description: text('description'),
    // While pending on the customer (3-D Secure): what their app must do, from the gateway's answer.
    nextAction: jsonb('next_action').$type<NextAction>(),
    // The lines the charge bills, priced by its workflow (their invoice total is `amount`); null for
    // charges that carry none (one line for the whole amount is invoiced then).
    invoiceLines: jsonb('invoice_lines').$type<InvoiceLineInput[]>(),
    // The invoice (a charge) or credit note (a refund) written with the row's success; see `invoices`.
    invoiceId: uuid('invoice_id'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index('payments_user_idx').on(t.userId),
    index('payments_subscription_idx').on(t.subscriptionId),
    index('payments_booking_idx').on(t.bookingId),
    index('payments_gateway_idx').on(t.gatewayPaymentId),
    check('payments_amount_non_negative', sql`${t.amount} >= 0`),
    check('payments_credit_applied_within_amount', sql`${t.creditApplied} >= 0 and ${t.creditApplied} <= ${t.amount}`),
  ],
);

/**
 * A customer's credit in one currency: proration and goodwill credits in, charges' use of it out.
 * The CHECK makes a negative balance impossible whatever the code does; charges lock the row
 * (SELECT … FOR UPDATE) to spend from it, so two racing charges never spend the same credit.
 */
export const creditBalances = pgTable(
  'credit_balances',
  {
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    // Lower-case ISO 4217, as payments store it.
    currency: text('currency').notNull(),
    amount: money('amount').notNull(),
    updatedAt: updatedAt(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.currency] }), check('credit_balances_amount_non_negative', sql`${t.amount} >= 0`)],
);

/**
 * Every change of a credit balance, signed (positive in, negative out). The unique idempotency key
 * makes each money step happen once: a grant by its caller's key, a charge's use `spend/<paymentId>`,
 * the return of a failed charge's credit `restore/<paymentId>`. A balance is the sum of its entries.
 */
export const creditEntries = pgTable(
  'credit_entries',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    currency: text('currency').notNull(),
    amount: money('amount').notNull(),
    kind: text('kind', { enum: CREDIT_KINDS }).notNull(),
    paymentId: uuid('payment_id').references(() => payments.id),
    reason: text('reason'),
    actorId: uuid('actor_id').references(() => users.id),
    idempotencyKey: text('idempotency_key').notNull().unique(),
    createdAt: createdAt(),
  },
  (t) => [
    index('credit_entries_user_idx').on(t.userId, t.currency),
    index('credit_entries_payment_idx').on(t.paymentId),
    check('credit_entries_amount_non_zero', sql`${t.amount} <> 0`),
  ],
);

/** Who an invoice is made out to, as the customer's account read when it was issued. */
export interface BillingDetails {
  name: string;
  email: string;
}

/**
 * Invoices (one per charge that succeeded) and credit notes (one per refund that succeeded),
 * written in the transaction that records that success: `payment_id` is unique, so a retried
 * activity or a repeated settlement can never write a second one. The number comes from
 * `invoice_sequences` in the same transaction, so a rolled-back charge takes none (gap-free) and
 * none is ever used twice (`number` unique too).
 */
export const invoices = pgTable(
  'invoices',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // INV-2026-000123 / CN-2026-000007 (domain/invoice.ts formatInvoiceNumber).
    number: text('number').notNull().unique(),
    kind: text('kind', { enum: INVOICE_KINDS }).notNull(),
    year: integer('year').notNull(),
    sequence: integer('sequence').notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    subscriptionId: uuid('subscription_id').references(() => subscriptions.id),
    bookingId: uuid('booking_id').references(() => bookings.id),
    currency: text('currency').notNull(),
    status: text('status', { enum: INVOICE_STATUSES }).notNull(),
    lines: jsonb('lines').$type<InvoiceLine[]>().notNull(),
    subtotal: money('subtotal').notNull(),
    discount: money('discount').notNull(),
    tax: money('tax').notNull(),
    total: money('total').notNull(),
    // What the credit balance paid of the total (the card paid total - credit_applied).
    creditApplied: money('credit_applied').notNull().default(0),
    amountPaid: money('amount_paid').notNull(),
    // The charge it invoices, or the refund it credits: one invoice per charge, one note per refund.
    paymentId: uuid('payment_id')
      .notNull()
      .unique()
      .references(() => payments.id),
    // A credit note's invoice (the charge's), when the charge has one.
    creditNoteOf: uuid('credit_note_of'),
    billingDetails: jsonb('billing_details').$type<BillingDetails>().notNull(),
    issuedAt: timestamp('issued_at', { withTimezone: true }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('invoices_kind_year_sequence').on(t.kind, t.year, t.sequence),
    // Keyset pages of a customer's invoices, newest first.
    index('invoices_user_issued_idx').on(t.userId, t.issuedAt, t.id),
    index('invoices_issued_idx').on(t.issuedAt, t.id),
    check(
      'invoices_amounts_non_negative',
      sql`${t.subtotal} >= 0 and ${t.discount} >= 0 and ${t.tax} >= 0 and ${t.total} >= 0 and ${t.amountPaid} >= 0`,
    ),
    check('invoices_total_adds_up', sql`${t.total} = ${t.subtotal} - ${t.discount} + ${t.tax}`),
    check('invoices_sequence_positive', sql`${t.sequence} > 0`),
  ],
);

/**
 * The last number given per kind and year. Taking one (INSERT … ON CONFLICT DO UPDATE … RETURNING)
 * locks its row until the transaction ends, so numbers are handed out in commit order: a
 * transaction that rolls back gives its number back to the next one.
 */
export const invoiceSequences = pgTable(
  'invoice_sequences',
  {
    kind: text('kind', { enum: INVOICE_KINDS }).notNull(),
    year: integer('year').notNull(),
    lastNumber: integer('last_number').notNull(),
  },
  (t) => [primaryKey({ columns: [t.kind, t.year] }), check('invoice_sequences_positive', sql`${t.lastNumber} > 0`)],
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
    // Claimed by a sender that is talking to the mail server now (no row lock is held meanwhile);
    // a claim older than the send timeout belongs to a sender that died, and may be taken over.
    sendingSince: timestamp('sending_since', { withTimezone: true }),
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

/**
 * Every gateway event received, kept 30 days (payloads hold personal data) then deleted by the
 * retention schedule. `outcome`: `received` while it is being acted on (a crash leaves it so, and
 * the gateway's retry acts again), `processed`, or `ignored` with the `reason` (an event that
 * does not match the payment it names, say).
 */
export const webhookEvents = pgTable(
  'webhook_events',
  {
    id: text('id').primaryKey(),
    type: text('type').notNull(),
    payload: jsonb('payload').notNull(),
    outcome: text('outcome', { enum: ['received', 'processed', 'ignored'] })
      .notNull()
      .default('processed'),
    reason: text('reason'),
    receivedAt: timestamp('received_at', { withTimezone: true }).notNull().defaultNow(),
    processedAt: timestamp('processed_at', { withTimezone: true }),
  },
  (t) => [index('webhook_events_received_idx').on(t.receivedAt)],
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
  (t) => [primaryKey({ columns: [t.userId, t.key, t.route] }), index('idempotency_records_created_idx').on(t.createdAt)],
);

// ---------------------------------------------------------------------------------------------
// The sandbox gateway's own records: what Stripe would keep for an account, so the sandbox can
// follow Stripe's rules (a payment method used once without a customer cannot be used again)
// across the API and worker processes. Never read when the gateway is Stripe.

export const sandboxCustomers = pgTable('sandbox_customers', {
  id: text('id').primaryKey(),
  idempotencyKey: text('idempotency_key').notNull().unique(),
  email: text('email').notNull(),
  userRef: text('user_ref').notNull(),
  createdAt: createdAt(),
});

export const sandboxPaymentMethods = pgTable('sandbox_payment_methods', {
  id: text('id').primaryKey(),
  // The test token it was made from (pm_card_visa …), which decides how its charges answer.
  token: text('token').notNull(),
  customerId: text('customer_id'),
  brand: text('brand').notNull(),
  last4: text('last4').notNull(),
  expMonth: integer('exp_month').notNull(),
  expYear: integer('exp_year').notNull(),
  // Charges made while attached to no customer: Stripe allows one.
  chargesWithoutCustomer: integer('charges_without_customer').notNull().default(0),
  detachedAt: timestamp('detached_at', { withTimezone: true }),
  createdAt: createdAt(),
});

export const sandboxIntents = pgTable('sandbox_intents', {
  // pi_sandbox_… (a PaymentIntent) or seti_sandbox_… (a SetupIntent).
  id: text('id').primaryKey(),
  kind: text('kind', { enum: ['payment', 'setup'] }).notNull(),
  idempotencyKey: text('idempotency_key').notNull().unique(),
  customerId: text('customer_id'),
  paymentMethodId: text('payment_method_id'),
  amount: money('amount'),
  currency: text('currency'),
  // Stripe's PaymentIntent / SetupIntent statuses.
  status: text('status').notNull(),
  clientSecret: text('client_secret').notNull(),
  failureCode: text('failure_code'),
  metadata: jsonb('metadata').$type<Record<string, string>>(),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});
