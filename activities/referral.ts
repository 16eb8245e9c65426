import { eq } from 'drizzle-orm';
import type { Database } from '../db/client';
import { grantCredit } from '../db/credits';
import { markReferralRewarded, referralOf } from '../db/referrals';
import { payments } from '../db/schema';
import { referralRewardKey, referralRewardRefusal, type ReferralCredit, type ReferralRewardRefusal } from '../domain/referral';
import type { Logger } from '../platform/logger';

export interface RewardReferralInput {
  /** The customer whose first paid period succeeded. */
  referredUserId: string;
  /** That period's payment. */
  paymentId: string;
  /** REFERRAL_CREDIT, carried in the workflow's input so a replay grants what the first run did. */
  credit: ReferralCredit;
}

export type RewardReferralResult =
  | { status: 'rewarded'; referrerId: string; amount: number; currency: string; granted: boolean }
  | { status: 'skipped'; reason: ReferralRewardRefusal | 'no_referral' | 'unknown_payment' };

/**
 * The referral reward, a step of the referred customer's subscription workflow (to be wired with
 * patched(); see the issue 13 notes). Idempotency: the credit ledger entry is keyed
 * `referral/<referredUserId>` (unique), so however often the step runs (a retry, a worker killed
 * mid-step, a replay) the referrer is credited once; `referrals.rewarded_at` is a projection of it.
 */
export function createReferralActivities({ db, logger }: { db: Database; logger: Logger }) {
  return {
    rewardReferral: async (input: RewardReferralInput): Promise<RewardReferralResult> => {
      const referral = await referralOf(db, input.referredUserId);
      if (!referral) return { status: 'skipped', reason: 'no_referral' };
      const [payment] = await db.select().from(payments).where(eq(payments.id, input.paymentId)).limit(1);
      if (!payment) return { status: 'skipped', reason: 'unknown_payment' };
      // Card refunds only (refunded_amount); a charge refunded in full is also marked `refunded`.
      const refunded = payment.status === 'refunded' ? payment.amount : payment.refundedAmount;
      const refusal = referralRewardRefusal({
        referrerId: referral.referrerId,
        referredUserId: referral.referredUserId,
        amount: payment.amount,
        refunded,
      });
      if (refusal) return { status: 'skipped', reason: refusal };
      const { granted } = await grantCredit(db, {
        userId: referral.referrerId,
        currency: input.credit.currency,
        amount: input.credit.amount,
        kind: 'referral',
        reason: 'A customer you referred paid their first period',
        idempotencyKey: referralRewardKey(input.referredUserId),
      });
      await markReferralRewarded(db, input.referredUserId);
      logger.info({ referrerId: referral.referrerId, referredUserId: input.referredUserId, granted }, 'referral rewarded');
      return { status: 'rewarded', referrerId: referral.referrerId, amount: input.credit.amount, currency: input.credit.currency, granted };
    },
  };
}

export type ReferralActivities = ReturnType<typeof createReferralActivities>;
