/**
 * Coupons and referrals: what a customer redeems and who brought them. Re-exported by
 * db/schema.ts, which the rest of the code (and drizzle-kit) imports. The references to users are
 * callbacks, read only when the schema is used, so the two files may import
 * each other.
 */
import { sql } from 'drizzle-orm';
import { boolean, check, index, integer, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { COUPON_DURATIONS } from '../domain/coupon';
import { createdAt, money, updatedAt } from './columns';
import { users } from './schema';

/**
 * Coupons staff create. Terms never change after creation (staff can only deactivate), so a
 * redemption's frozen terms and the coupon's always agree. `redemption_count` counts the live
 * redemptions; the CHECK makes exceeding `max_redemptions` impossible whatever the code does, and
 * redeeming increments it with a conditional UPDATE in the transaction that inserts the redemption.
 */
export const coupons = pgTable(
  'coupons',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // As staff typed it; unique case-insensitively (the index on lower(code)).
    code: text('code').notNull(),
    percentOff: integer('percent_off'),
    amountOff: money('amount_off'),
    currency: text('currency'),
    duration: text('duration', { enum: COUPON_DURATIONS }).notNull(),
    durationInCycles: integer('duration_in_cycles'),
    maxRedemptions: integer('max_redemptions'),
    redeemBy: timestamp('redeem_by', { withTimezone: true }),
    // Plan ids it applies to; null: every plan.
    appliesToPlans: uuid('applies_to_plans').array(),
    firstTimeOnly: boolean('first_time_only').notNull().default(false),
    active: boolean('active').notNull().default(true),
    redemptionCount: integer('redemption_count').notNull().default(0),
    createdBy: uuid('created_by').references(() => users.id),
    deactivatedAt: timestamp('deactivated_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('coupons_code_lower_idx').on(sql`lower(${t.code})`),
    index('coupons_created_idx').on(t.createdAt, t.id),
    check(
      'coupons_redemptions_within_max',
      sql`${t.redemptionCount} >= 0 and (${t.maxRedemptions} is null or ${t.redemptionCount} <= ${t.maxRedemptions})`,
    ),
    check(
      'coupons_one_amount',
      sql`(${t.percentOff} between 1 and 100 and ${t.amountOff} is null and ${t.currency} is null) or (${t.percentOff} is null and ${t.amountOff} > 0 and ${t.currency} is not null)`,
    ),
    check('coupons_cycles_with_repeating', sql`(${t.duration} = 'repeating') = (${t.durationInCycles} is not null)`),
  ],
);

/**
 * One row per coupon a customer redeemed. Its id comes from the caller (derived from the
 * subscribe's idempotency key), so a retried redemption finds its row instead of taking a second
 * place. At most one live redemption per (coupon, customer); a released one (its subscribe was
 * declined) keeps its row with `released_at` and gave its place back.
 */
export const couponRedemptions = pgTable(
  'coupon_redemptions',
  {
    id: uuid('id').primaryKey(),
    couponId: uuid('coupon_id')
      .notNull()
      .references(() => coupons.id),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    // The subscription it was redeemed for; no foreign key: redeemed before its workflow writes the row.
    subscriptionId: uuid('subscription_id'),
    releasedAt: timestamp('released_at', { withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('coupon_redemptions_one_live_per_customer')
      .on(t.couponId, t.userId)
      .where(sql`${t.releasedAt} is null`),
    index('coupon_redemptions_user_idx').on(t.userId),
  ],
);

/** Every customer's referral code, made on first need (upper case; unique). */
export const referralCodes = pgTable('referral_codes', {
  userId: uuid('user_id')
    .primaryKey()
    .references(() => users.id),
  code: text('code').notNull().unique(),
  createdAt: createdAt(),
});

/**
 * Who referred whom: written with the referred customer's signup, at most one referrer each (the
 * primary key), never themselves (the CHECK). The reward is a credit ledger entry keyed
 * `referral/<referred_user_id>` (unique), so it is granted once; `rewarded_at` mirrors it for reading.
 */
export const referrals = pgTable(
  'referrals',
  {
    referredUserId: uuid('referred_user_id')
      .primaryKey()
      .references(() => users.id),
    referrerId: uuid('referrer_id')
      .notNull()
      .references(() => users.id),
    code: text('code').notNull(),
    rewardedAt: timestamp('rewarded_at', { withTimezone: true }),
    createdAt: createdAt(),
  },
  (t) => [index('referrals_referrer_idx').on(t.referrerId), check('referrals_not_self', sql`${t.referrerId} <> ${t.referredUserId}`)],
);
