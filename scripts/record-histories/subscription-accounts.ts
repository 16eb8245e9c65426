/**
 * Subscription histories of the records around charges: a coupon at subscribe and one applied
 * later, the referral reward after the first paid period, a failed renewal's invoice (open, then
 * void or uncollectible), and a coupon's place given back when the first charge is declined.
 */
import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { createCouponRedemptions } from '../../activities/coupon';
import { couponStateOf, insertCoupon } from '../../db/coupons';
import { referralCodeOf, recordReferral } from '../../db/referrals';
import { plans } from '../../db/schema';
import { appliedDiscountOf, type CouponTerms } from '../../domain/coupon';
import { subscriptionWorkflowId } from '../../domain/subscription';
import { createLogger } from '../../platform/logger';
import { insertTestUser } from '../../test/support/payment-fixtures';
import { advanceTo, insertTestPlan, waitForState } from '../../test/support/subscription-fixtures';
import { applyCouponUpdate, type SubscriptionWorkflowInput } from '../../workflows/subscription';
import { cancelSubscription, changePaymentMethod, startSubscription, subscriptionHandle } from '../../api/subscription-client';
import type { Recorder, Scenario } from './recorder';

export const SUBSCRIPTION_ACCOUNTS_SCENARIOS: Record<string, Scenario> = {
  // Referred, with a coupon and a taxed plan: the first period rewards the referrer; a second
  // coupon is applied; a renewal fails (open invoice), a new card pays it (void); then canceled.
  'subscription-coupon-referral-dunning-voided': async (r) => {
    const { subscriptionId, activation } = await subscribe(r, 'pm_card_visa', { referred: true });
    const handle = subscriptionHandle(r.env.client, subscriptionId);
    const firstRun = (await handle.describe()).runId;
    const later = await redeemedCoupon(r, activation.subscription.userId, subscriptionId, { percentOff: 10, duration: 'forever' });
    await handle.executeUpdate(applyCouponUpdate, { args: [{ discount: later.discount }] });
    await changePaymentMethod(r.env.client, subscriptionId, 'pm_card_chargeDeclined');
    await advanceTo(r.env, activation.subscription.nextBillingDate!);
    await waitForState(r.env.client, subscriptionId, (s) => s.status === 'past_due');
    await changePaymentMethod(r.env.client, subscriptionId, 'pm_card_visa');
    await waitForState(r.env.client, subscriptionId, (s) => s.status === 'active' && s.cycle === 2);
    await cancelSubscription(r.env.client, subscriptionId, false);
    await handle.result().catch(() => undefined);
    return [{ file: 'subscription-coupon-referral-dunning-voided-run1', workflowId: subscriptionWorkflowId(subscriptionId), runId: firstRun }];
  },

  // A failed renewal's invoice stays open through dunning and is uncollectible at expiry.
  'subscription-dunning-invoice-uncollectible': async (r) => {
    const { subscriptionId, activation } = await subscribe(r, 'pm_card_visa', {});
    await changePaymentMethod(r.env.client, subscriptionId, 'pm_card_chargeDeclined');
    await advanceTo(r.env, activation.subscription.nextBillingDate!);
    await waitForState(r.env.client, subscriptionId, (s) => s.status === 'past_due');
    await subscriptionHandle(r.env.client, subscriptionId).result();
    return [{ file: 'subscription-dunning-invoice-uncollectible-run1', workflowId: subscriptionWorkflowId(subscriptionId) }];
  },

  // The first charge is declined: the coupon redeemed at subscribe is given back.
  'subscription-coupon-declined-released': async (r) => {
    const { subscriptionId } = await subscribe(r, 'pm_card_chargeDeclined', {});
    await subscriptionHandle(r.env.client, subscriptionId).result();
    return [{ file: 'subscription-coupon-declined-released-run1', workflowId: subscriptionWorkflowId(subscriptionId) }];
  },
};

async function subscribe(r: Recorder, paymentMethod: string, { referred = false }: { referred?: boolean }) {
  const user = await insertTestUser(r.db);
  const plan = { ...(await insertTestPlan(r.db)), taxRate: 2000 };
  await r.db.update(plans).set({ taxRate: plan.taxRate }).where(eq(plans.id, plan.planId));
  if (referred) {
    const referrer = await insertTestUser(r.db);
    const code = await referralCodeOf(r.db, referrer.id);
    await r.db.transaction((tx) => recordReferral(tx, { referrerId: referrer.id, referredUserId: user.id, code }));
  }
  const subscriptionId = randomUUID();
  const coupon = await redeemedCoupon(r, user.id, subscriptionId, { percentOff: 25, duration: 'repeating', durationInCycles: 2 });
  const input: SubscriptionWorkflowInput = {
    subscriptionId,
    userId: user.id,
    plan,
    paymentMethod,
    pendingPaymentTimeout: 'P1D',
    paymentsTaskQueue: r.taskQueue,
    coupon,
    ...(referred ? { referralCredit: { amount: 500, currency: 'usd' } } : {}),
  };
  const activation = await startSubscription(r.env.client, r.taskQueue, input);
  return { subscriptionId, activation };
}

/** A coupon made and redeemed for the customer, as the API does before it starts or updates the workflow. */
async function redeemedCoupon(r: Recorder, userId: string, subscriptionId: string, terms: Partial<CouponTerms>) {
  const row = await insertCoupon(
    r.db,
    {
      code: `REC${randomUUID().slice(0, 8)}`,
      percentOff: null,
      amountOff: null,
      currency: null,
      duration: 'once',
      durationInCycles: null,
      maxRedemptions: 10,
      redeemBy: null,
      appliesToPlans: null,
      firstTimeOnly: false,
      ...terms,
    },
    null,
  );
  const redemptions = createCouponRedemptions({ db: r.db, redis: r.redis, logger: createLogger({ LOG_LEVEL: 'warn', NODE_ENV: 'test' }) });
  const redemptionId = randomUUID();
  const outcome = await redemptions.redeem({ redemptionId, couponId: row!.id, userId, subscriptionId });
  if (outcome.status !== 'redeemed') throw new Error(`coupon not redeemed: ${outcome.reason}`);
  return { discount: appliedDiscountOf(couponStateOf(outcome.coupon)), redemptionId };
}
