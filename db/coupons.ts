import { and, desc, eq, isNull, sql, type SQL } from 'drizzle-orm';
import { normalizeCouponCode, type CouponRefusal, type CouponState, type CouponTerms } from '../domain/coupon';
import type { Database, Transaction } from './client';
import { couponRedemptions, coupons, subscriptions, users } from './schema';

/**
 * Coupons and their redemptions in PostgreSQL: the guarantee behind the Redis gate. A redemption
 * is one transaction that increments `redemption_count` only while it is below `max_redemptions`
 * (a conditional UPDATE, which also row-locks the coupon so racing redemptions queue) and inserts
 * the redemption row (unique per coupon and customer among the live ones). Either both happen or
 * neither; the table's CHECK refuses a count above the maximum even if this code were wrong.
 */

export type CouponRow = typeof coupons.$inferSelect;
export type CouponRedemptionRow = typeof couponRedemptions.$inferSelect;

export function couponStateOf(row: CouponRow): CouponState {
  return {
    id: row.id,
    code: row.code,
    percentOff: row.percentOff,
    amountOff: row.amountOff,
    currency: row.currency,
    duration: row.duration,
    durationInCycles: row.durationInCycles,
    maxRedemptions: row.maxRedemptions,
    redeemBy: row.redeemBy?.toISOString() ?? null,
    appliesToPlans: row.appliesToPlans,
    firstTimeOnly: row.firstTimeOnly,
    active: row.active,
    redemptionCount: row.redemptionCount,
  };
}

/** Inserts a coupon; undefined when its code (in any case) is taken. Inside a caller's transaction when given one. */
export async function insertCoupon(db: Database | Transaction, terms: CouponTerms, createdBy: string | null): Promise<CouponRow | undefined> {
  const [row] = await db
    .insert(coupons)
    .values({
      code: terms.code,
      percentOff: terms.percentOff,
      amountOff: terms.amountOff,
      currency: terms.currency?.toLowerCase() ?? null,
      duration: terms.duration,
      durationInCycles: terms.durationInCycles,
      maxRedemptions: terms.maxRedemptions,
      redeemBy: terms.redeemBy === null ? null : new Date(terms.redeemBy),
      appliesToPlans: terms.appliesToPlans,
      firstTimeOnly: terms.firstTimeOnly,
      createdBy,
    })
    // The only unique constraints are the id (generated) and lower(code): a conflict is the code.
    .onConflictDoNothing()
    .returning();
  return row;
}

export async function couponByCode(db: Database | Transaction, code: string): Promise<CouponRow | undefined> {
  const [row] = await db
    .select()
    .from(coupons)
    .where(sql`lower(${coupons.code}) = ${normalizeCouponCode(code)}`)
    .limit(1);
  return row;
}

export async function couponById(db: Database | Transaction, id: string): Promise<CouponRow | undefined> {
  const [row] = await db.select().from(coupons).where(eq(coupons.id, id)).limit(1);
  return row;
}

/** Newest first, keyset on (created_at, id) after the coupon `after`; one more than `limit` tells a next page. */
export async function listCoupons(db: Database, options: { limit: number; after?: string; active?: boolean }): Promise<CouponRow[]> {
  const conditions: SQL[] = [];
  if (options.active !== undefined) conditions.push(eq(coupons.active, options.active));
  if (options.after) {
    conditions.push(sql`(${coupons.createdAt}, ${coupons.id}) < (select c.created_at, c.id from coupons c where c.id = ${options.after})`);
  }
  return db
    .select()
    .from(coupons)
    .where(and(...conditions))
    .orderBy(desc(coupons.createdAt), desc(coupons.id))
    .limit(options.limit + 1);
}

/** Stops new redemptions; existing ones keep their terms. Idempotent: a second call changes nothing. */
export async function deactivateCoupon(db: Database | Transaction, id: string): Promise<{ row: CouponRow; changed: boolean } | undefined> {
  const [changed] = await db
    .update(coupons)
    .set({ active: false, deactivatedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(coupons.id, id), eq(coupons.active, true)))
    .returning();
  if (changed) return { row: changed, changed: true };
  const row = await couponById(db, id);
  return row && { row, changed: false };
}

/** The customer's live redemption of the coupon, if any (a redemption's repeat, the redeem route's retry). */
export async function liveRedemption(db: Database | Transaction, couponId: string, userId: string): Promise<CouponRedemptionRow | undefined> {
  const [row] = await db
    .select()
    .from(couponRedemptions)
    .where(and(eq(couponRedemptions.couponId, couponId), eq(couponRedemptions.userId, userId), isNull(couponRedemptions.releasedAt)))
    .limit(1);
  return row;
}

/** What a customer's answer from the validate route depends on besides the coupon. */
export interface CustomerCouponFacts {
  /** A live redemption of the coupon by the customer. */
  alreadyRedeemed: boolean;
  /** Any subscription row of the customer, whatever its status (for `firstTimeOnly`). */
  hasSubscribedBefore: boolean;
}

/**
 * Both customer facts in one statement, prepared once per caller (the validate route reads them
 * for nearly every answer): two index probes, the partial unique index of live redemptions and
 * subscriptions_user_idx, behind the user's primary key. An unknown user has neither.
 */
export function prepareCustomerFacts(db: Database): (couponId: string, userId: string) => Promise<CustomerCouponFacts> {
  const query = db
    .select({
      // Not correlated with users.id: drizzle writes a one-table query's columns unqualified,
      // and inside the subquery "id" would name the subquery's own column.
      alreadyRedeemed: sql<boolean>`exists (select 1 from ${couponRedemptions} where ${couponRedemptions.couponId} = ${sql.placeholder('couponId')} and ${couponRedemptions.userId} = ${sql.placeholder('userId')} and ${couponRedemptions.releasedAt} is null)`,
      hasSubscribedBefore: sql<boolean>`exists (select 1 from ${subscriptions} where ${subscriptions.userId} = ${sql.placeholder('userId')})`,
    })
    .from(users)
    .where(eq(users.id, sql.placeholder('userId')))
    .prepare('customer_coupon_facts');
  return async (couponId, userId) => {
    const [row] = await query.execute({ couponId, userId });
    return row ?? { alreadyRedeemed: false, hasSubscribedBefore: false };
  };
}

/** Whether the customer ever subscribed (for `firstTimeOnly`): any subscription row, whatever its status. */
export async function hasSubscribedBefore(db: Database | Transaction, userId: string): Promise<boolean> {
  const [row] = await db.select({ id: subscriptions.id }).from(subscriptions).where(eq(subscriptions.userId, userId)).limit(1);
  return row !== undefined;
}

export interface RedemptionRequest {
  /** Chosen by the caller (derived from the subscribe's idempotency key): a repeat finds its row. */
  redemptionId: string;
  couponId: string;
  userId: string;
  subscriptionId: string | null;
}

export type RedemptionOutcome =
  /** `fresh`: this call took the place; false for a repeat that found its earlier row. */
  { status: 'redeemed'; redemption: CouponRedemptionRow; coupon: CouponRow; fresh: boolean } | { status: 'refused'; reason: CouponRefusal };

class AlreadyRedeemed extends Error {}

/**
 * Takes one place of the coupon for the customer, or none. Idempotency: the redemption id is the
 * primary key, so a repeat (a retried activity, a request sent again) answers the row it made
 * and takes no second place. The conditional UPDATE takes the place only while one is left and
 * the coupon is active and not past `redeemBy`; the insert's unique index refuses a second live
 * redemption by the same customer, and its failure rolls the increment back.
 */
export async function redeemInDatabase(db: Database, request: RedemptionRequest): Promise<RedemptionOutcome> {
  const repeat = await redemptionById(db, request.redemptionId);
  if (repeat) return repeatOutcome(db, repeat, request);
  try {
    return await db.transaction(async (tx) => {
      const [coupon] = await tx
        .update(coupons)
        .set({ redemptionCount: sql`${coupons.redemptionCount} + 1`, updatedAt: sql`now()` })
        .where(
          and(
            eq(coupons.id, request.couponId),
            eq(coupons.active, true),
            sql`(${coupons.redeemBy} is null or ${coupons.redeemBy} > now())`,
            sql`(${coupons.maxRedemptions} is null or ${coupons.redemptionCount} < ${coupons.maxRedemptions})`,
          ),
        )
        .returning();
      if (!coupon) return { status: 'refused', reason: await refusalWithoutPlace(tx, request.couponId, request.userId) } as const;
      const [redemption] = await tx
        .insert(couponRedemptions)
        .values({ id: request.redemptionId, couponId: request.couponId, userId: request.userId, subscriptionId: request.subscriptionId })
        .onConflictDoNothing()
        .returning();
      if (!redemption) throw new AlreadyRedeemed();
      return { status: 'redeemed', redemption, coupon, fresh: true } as const;
    });
  } catch (error) {
    if (!(error instanceof AlreadyRedeemed)) throw error;
    // Either this customer's other live redemption, or the same id committed by a racing repeat.
    const raced = await redemptionById(db, request.redemptionId);
    if (raced) return repeatOutcome(db, raced, request);
    return { status: 'refused', reason: 'already_redeemed' };
  }
}

async function repeatOutcome(db: Database, row: CouponRedemptionRow, request: RedemptionRequest): Promise<RedemptionOutcome> {
  if (row.couponId !== request.couponId || row.userId !== request.userId) {
    throw new Error(`redemption ${request.redemptionId} was made for another coupon or customer`);
  }
  // A released redemption stays released: its id is spent, so a late repeat cannot take a place again.
  if (row.releasedAt) return { status: 'refused', reason: 'already_redeemed' };
  return { status: 'redeemed', redemption: row, coupon: (await couponById(db, row.couponId))!, fresh: false };
}

/**
 * Why the conditional UPDATE took no place: no coupon, inactive or past its date, or no place
 * left: `already_redeemed` when one of them is the customer's own (domain/coupon.ts's order).
 */
async function refusalWithoutPlace(tx: Transaction, couponId: string, userId: string): Promise<CouponRefusal> {
  const row = await couponById(tx, couponId);
  if (!row) return 'unknown';
  if (!row.active || (row.redeemBy && row.redeemBy.getTime() <= Date.now())) return 'expired';
  return (await liveRedemption(tx, couponId, userId)) ? 'already_redeemed' : 'exhausted';
}

export async function redemptionById(db: Database | Transaction, id: string): Promise<CouponRedemptionRow | undefined> {
  const [row] = await db.select().from(couponRedemptions).where(eq(couponRedemptions.id, id)).limit(1);
  return row;
}

/**
 * Gives a redemption's place back (its subscribe was declined): marks it released and decrements
 * the count, in one transaction, only when it was live. Idempotency: `released_at` is set once
 * (the UPDATE matches only a live row), so a repeat gives nothing back twice. Answers the coupon
 * id when this call released it, null otherwise (unknown or already released).
 */
export async function releaseInDatabase(db: Database, redemptionId: string): Promise<string | null> {
  return db.transaction(async (tx) => {
    const [released] = await tx
      .update(couponRedemptions)
      .set({ releasedAt: sql`now()` })
      .where(and(eq(couponRedemptions.id, redemptionId), isNull(couponRedemptions.releasedAt)))
      .returning({ couponId: couponRedemptions.couponId });
    if (!released) return null;
    await tx
      .update(coupons)
      .set({ redemptionCount: sql`${coupons.redemptionCount} - 1`, updatedAt: sql`now()` })
      .where(eq(coupons.id, released.couponId));
    return released.couponId;
  });
}
