import { randomBytes } from 'node:crypto';
import { and, asc, count, eq, sql } from 'drizzle-orm';
import type { CreditBalance } from '../domain/credit';
import { normalizeReferralCode, REFERRAL_CODE_LENGTH, referralCodeFromBytes } from '../domain/referral';
import type { Database, Transaction } from './client';
import { creditEntries, referralCodes, referrals } from './schema';

/** Tries before giving up on a free code: with ~39 bits each, a second try is already rare. */
const CODE_ATTEMPTS = 5;

/**
 * The user's referral code, made on first need. Idempotent: the row is keyed by the user, so two
 * racing first calls insert one row and both answer it; a code another user has (unique) is drawn again.
 */
export async function referralCodeOf(db: Database | Transaction, userId: string): Promise<string> {
  for (let attempt = 0; attempt < CODE_ATTEMPTS; attempt++) {
    const existing = await codeOfUser(db, userId);
    if (existing) return existing;
    const code = referralCodeFromBytes(randomBytes(REFERRAL_CODE_LENGTH));
    const [inserted] = await db.insert(referralCodes).values({ userId, code }).onConflictDoNothing().returning({ code: referralCodes.code });
    if (inserted) return inserted.code;
  }
  throw new Error(`no free referral code for user ${userId} after ${CODE_ATTEMPTS} attempts`);
}

async function codeOfUser(db: Database | Transaction, userId: string): Promise<string | undefined> {
  const [row] = await db.select({ code: referralCodes.code }).from(referralCodes).where(eq(referralCodes.userId, userId)).limit(1);
  return row?.code;
}

/** The owner of a code (any case), if any. */
export async function referrerOfCode(db: Database | Transaction, code: string): Promise<string | undefined> {
  const [row] = await db
    .select({ userId: referralCodes.userId })
    .from(referralCodes)
    .where(eq(referralCodes.code, normalizeReferralCode(code)))
    .limit(1);
  return row?.userId;
}

/**
 * Records that `referrerId` referred the new customer, in the signup's transaction. At most once
 * per referred customer (primary key: a repeat changes nothing); never a self-referral (CHECK).
 */
export async function recordReferral(tx: Transaction, referral: { referrerId: string; referredUserId: string; code: string }): Promise<void> {
  await tx
    .insert(referrals)
    .values({ ...referral, code: normalizeReferralCode(referral.code) })
    .onConflictDoNothing({ target: referrals.referredUserId });
}

/** The referral of a customer (who referred them), if any. */
export async function referralOf(db: Database | Transaction, referredUserId: string) {
  const [row] = await db.select().from(referrals).where(eq(referrals.referredUserId, referredUserId)).limit(1);
  return row;
}

/** Marks a referral rewarded (a projection of its ledger entry); idempotent. */
export async function markReferralRewarded(db: Database | Transaction, referredUserId: string): Promise<void> {
  await db
    .update(referrals)
    .set({ rewardedAt: sql`coalesce(${referrals.rewardedAt}, now())` })
    .where(eq(referrals.referredUserId, referredUserId));
}

/** How many customers the user referred, and the referral credit they earned, by currency. */
export async function referralStats(db: Database, userId: string): Promise<{ referredCount: number; creditEarned: CreditBalance[] }> {
  const [counted] = await db.select({ n: count() }).from(referrals).where(eq(referrals.referrerId, userId));
  const earned = await db
    .select({ currency: creditEntries.currency, amount: sql<number>`sum(${creditEntries.amount})::bigint`.mapWith(Number) })
    .from(creditEntries)
    .where(and(eq(creditEntries.userId, userId), eq(creditEntries.kind, 'referral')))
    .groupBy(creditEntries.currency)
    .orderBy(asc(creditEntries.currency));
  return { referredCount: counted?.n ?? 0, creditEarned: earned };
}
