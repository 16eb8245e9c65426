/**
 * The records kept around a subscription's charges, beneath the lifecycle: the coupon that
 * discounts them, the referral reward its first paid period earns, and the invoice of a failed
 * renewal while dunning decides its fate. Each step is an activity idempotent by its own key,
 * so a retry, a replay or a worker killed mid-step records it once:
 * - a coupon's place is given back by redemption id (db/coupons.ts: a released row stays released);
 * - the referrer's credit is keyed `referral/<referredUserId>`, unique in the credit ledger;
 * - an unpaid invoice is one per charge (unique payment_id), moved open → void | uncollectible.
 */
import { ApplicationFailure, patched, setHandler } from '@temporalio/workflow';
import { COUPON_DURATIONS, type AppliedDiscount } from '../../domain/coupon';
import type { UnpaidInvoiceStatus } from '../../domain/invoice';
import { recordChargeInvoice, releaseCouponRedemption, rewardReferral } from '../activity-options';
import { SubscriptionCharging } from './charging';
import { applyCouponUpdate, SUBSCRIPTION_FAILURES } from './contract';

/** Runs from before invoices of failed renewals leave them uninvoiced until they are paid, as their histories say. */
export const DUNNING_INVOICES_PATCH = 'dunning-invoices';

export abstract class SubscriptionAccounts extends SubscriptionCharging {
  /** The coupon redeemed at subscribe is in force from the first charge. */
  protected applyCouponFromInput(): void {
    if (this.input.coupon && !this.input.carried) this.state.discount = this.input.coupon.discount;
  }

  /** The first charge was declined (or withdrawn): the coupon's place goes back to the next customer. */
  protected async releaseUnusedCoupon(): Promise<void> {
    const redemptionId = this.input.coupon?.redemptionId;
    if (redemptionId && this.state.cycle === 0) await releaseCouponRedemption({ redemptionId });
  }

  /**
   * After a paid period: the first one earns the referrer their credit, once (the ledger key);
   * the activity skips a self-referral or a refund in full for good, a free period until one is paid.
   */
  protected async rewardReferralOnce(paymentId: string | undefined): Promise<void> {
    const credit = this.input.referralCredit;
    if (!credit || !paymentId || this.state.referralChecked) return;
    const reward = await rewardReferral({ referredUserId: this.input.userId, paymentId, credit });
    // A period a coupon made free is not paid: the first one that is earns the reward.
    if (reward.status === 'skipped' && reward.reason === 'not_paid') return;
    this.state.referralChecked = true;
  }

  // Each step below is awaited only when it has work to do (callers ask first): an await that
  // does nothing still yields, and would let a handler's commands overtake the loop's on replay.

  /** A renewal failed and dunning begins: its invoice is numbered now, open, so the notice can name it. */
  protected async openDunningInvoice(paymentId: string): Promise<void> {
    await recordChargeInvoice({ paymentId, status: 'open' });
    this.state.dunning!.invoicePaymentId = paymentId;
  }

  /** Whether dunning opens an invoice (runs from before it leave a failed renewal uninvoiced, as their histories say). */
  protected opensDunningInvoice(): boolean {
    return patched(DUNNING_INVOICES_PATCH);
  }

  protected hasDunningInvoice(): boolean {
    return this.state.dunning?.invoicePaymentId !== undefined;
  }

  protected hasUnusedCoupon(): boolean {
    return this.input.coupon !== undefined && this.state.cycle === 0;
  }

  protected awaitsReferralReward(): boolean {
    return this.input.referralCredit !== undefined && !this.state.referralChecked;
  }

  /** Dunning ended: the open invoice is void (another attempt paid the period, or it was canceled) or uncollectible (expired). */
  protected async closeDunningInvoice(status: Exclude<UnpaidInvoiceStatus, 'open'>): Promise<void> {
    const paymentId = this.state.dunning?.invoicePaymentId;
    if (paymentId) await recordChargeInvoice({ paymentId, status });
  }

  protected registerCouponHandler(): void {
    setHandler(
      applyCouponUpdate,
      async ({ discount }) => {
        this.state.discount = discount;
        await this.project();
        return this.snapshot();
      },
      {
        validator: (request) => {
          if (this.hasEnded())
            throw ApplicationFailure.create({ type: SUBSCRIPTION_FAILURES.notAllowed, message: `the subscription is ${this.state.status}` });
          const problem = discountProblem(request?.discount, this.terms().currency);
          if (problem)
            throw ApplicationFailure.create({ type: SUBSCRIPTION_FAILURES.invalidRequest, message: problem, details: [{ field: 'couponCode' }] });
        },
      },
    );
  }
}

/** Why a discount cannot price this subscription's charges, or null. */
function discountProblem(discount: AppliedDiscount | undefined, currency: string): string | null {
  if (!discount || typeof discount.couponId !== 'string' || !COUPON_DURATIONS.includes(discount.duration)) return 'not a coupon';
  if (discount.amountOff !== null && discount.currency?.toLowerCase() !== currency.toLowerCase()) return `the coupon is not in ${currency}`;
  if (discount.percentOff === null && discount.amountOff === null) return 'the coupon takes nothing off';
  return null;
}
