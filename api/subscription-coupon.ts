/**
 * A coupon redeemed for a subscription, at subscribe or on a live one: the code is looked up,
 * one of its places taken for the customer (activities/coupon.ts: the Redis gate, then the
 * PostgreSQL guarantee), and its terms frozen for the subscription's workflow. A refusal changes
 * nothing and names the field: 422 for a well-formed code no coupon has (as for a planId that
 * names no plan on sale), 409 with the reason otherwise.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createCouponRedemptions } from '../activities/coupon';
import type { Database } from '../db/client';
import { couponByCode, couponStateOf, liveRedemption } from '../db/coupons';
import { appliedDiscountOf, type AppliedDiscount, type CouponRefusal } from '../domain/coupon';
import type { Logger } from '../platform/logger';
import { HttpProblem } from './problem';

export interface RedeemedCoupon {
  discount: AppliedDiscount;
  redemptionId: string;
  /** This request took the place (false: a retry found its redemption for this subscription). */
  fresh: boolean;
}

export interface CouponRedemptionRequest {
  code: string;
  userId: string;
  subscriptionId: string;
  plan: { id: string; currency: string };
}

const REFUSALS: Record<Exclude<CouponRefusal, 'unknown'>, string> = {
  expired: 'This coupon has expired',
  exhausted: 'Every redemption of this coupon is taken',
  not_applicable: 'This coupon does not apply to this plan or customer',
  already_redeemed: 'You have redeemed this coupon already',
};

export function subscriptionCoupons(deps: { db: Database; logger: Logger; redis?: Redis }) {
  const redemptions = createCouponRedemptions(deps);
  const { db } = deps;

  /**
   * Takes a place of the coupon for the subscription, or throws the refusal as a problem.
   * Idempotency: the customer holds at most one live redemption of a coupon (a unique index), and
   * a retry finds the one it made by its subscription; a redemption given back since (a declined
   * subscribe) is not reused, so a retry takes a fresh place, which the caller gives back when the
   * workflow turns out to exist already (`fresh`).
   */
  async function redeem(request: CouponRedemptionRequest): Promise<RedeemedCoupon> {
    const coupon = await couponByCode(db, request.code);
    if (!coupon) throw couponProblem(422, 'No coupon has this code', 'unknown');
    const held = await liveRedemption(db, coupon.id, request.userId);
    if (held?.subscriptionId === request.subscriptionId) {
      return { discount: appliedDiscountOf(couponStateOf(coupon)), redemptionId: held.id, fresh: false };
    }
    const outcome = await redemptions.redeem({
      redemptionId: randomUUID(),
      couponId: coupon.id,
      userId: request.userId,
      subscriptionId: request.subscriptionId,
      plan: request.plan,
    });
    if (outcome.status === 'refused') {
      if (outcome.reason === 'unknown') throw couponProblem(422, 'No coupon has this code', 'unknown');
      throw couponProblem(409, REFUSALS[outcome.reason], outcome.reason);
    }
    return { discount: appliedDiscountOf(couponStateOf(outcome.coupon)), redemptionId: outcome.redemption.id, fresh: true };
  }

  /** Gives the place back when what it was taken for did not happen (the workflow never started, or refused it). */
  async function release(redemptionId: string): Promise<void> {
    await redemptions.release({ redemptionId });
  }

  return { redeem, release };
}

export type SubscriptionCoupons = ReturnType<typeof subscriptionCoupons>;

function couponProblem(status: 422 | 409, reason: string, code: CouponRefusal): HttpProblem {
  return new HttpProblem(status, status === 422 ? 'Unknown coupon' : 'Coupon not available', `couponCode: ${reason}`, {
    reason: code,
    invalidParams: [{ name: 'couponCode', reason }],
  });
}
