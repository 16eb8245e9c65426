/**
 * What the API, tests and the bench may know of a subscription's workflow: its input, messages
 * and answers. Imported by ordinary Node code too, so nothing here runs workflow code.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AppliedDiscount } from '../../domain/coupon';
import type { DeclineKind } from '../../domain/payment';
import type { ReferralCredit } from '../../domain/referral';
import type { SubscriptionState } from '../../domain/subscription-state';
import type { Proration } from '../../domain/proration';
import type { PlanTerms, SubscriptionSnapshot } from '../../domain/subscription';

export type { SubscriptionState } from '../../domain/subscription-state';
export { initialState } from '../../domain/subscription-state';

export interface SubscriptionWorkflowInput {
  subscriptionId: string;
  userId: string;
  /** The plan's terms at subscribe time; later plan edits do not change a running subscription. */
  plan: PlanTerms;
  paymentMethod: string;
  /** How long a charge may wait for its webhook (ISO-8601, e.g. `P1D`) before it counts as failed. */
  pendingPaymentTimeout: string;
  /** PAYMENT_ACTION_URL: where a customer completes a charge that needs them; absent in older runs. */
  paymentActionUrl?: string;
  /** The task queue of gateway calls; `payments` when absent (runs started before it was named). */
  paymentsTaskQueue?: string;
  /**
   * The queue the subscription continues on once paid (its renewals: background work); absent in
   * runs started before it was named, which move to `renewals` only from the production `billing`.
   */
  renewalsTaskQueue?: string;
  /** Seats; 1 when absent (and in runs from before seats). */
  quantity?: number;
  /** A coupon redeemed at subscribe: its terms (frozen then) and its redemption, given back if the first charge is declined. */
  coupon?: { discount: AppliedDiscount; redemptionId: string };
  /** The customer was referred: once the first period is paid, the referrer gets this credit (REFERRAL_CREDIT at subscribe). */
  referralCredit?: ReferralCredit;
  /** Set by the workflow when it continues as new; starters leave it out. */
  carried?: SubscriptionState;
}

/** What the `activation` update answers once the first charge (or the trial) has been decided. */
export interface ActivationResult {
  /**
   * `active` or `trialing`: subscribed. `declined`: the first charge failed and the workflow has
   * ended with status `incomplete`. `pending`: the gateway wants customer action; the workflow
   * waits for the payment webhook (status `incomplete` until then).
   */
  outcome: 'active' | 'trialing' | 'declined' | 'pending';
  subscription: SubscriptionSnapshot;
  payment: { paymentId: string; status: 'succeeded' | 'pending' | 'failed'; failureCode: string | null; decline: DeclineKind | null } | null;
}

export interface CancelRequest {
  /** `true`: keep the paid period and end at its end, with no further charge. `false`: end now. */
  atPeriodEnd: boolean;
}

export interface PaymentMethodChange {
  paymentMethod: string;
}

export interface GraceExtension {
  /** ISO-8601 duration added to the grace period's end, e.g. `P3D`. */
  by: string;
}

/**
 * A plan or seat change. `plan` is the new plan's terms as on sale now (the API reads them). `now`: prorated and charged (or credited)
 * at once; `period_end`: scheduled for the next renewal.
 */
export interface SubscriptionChange {
  /** Absent: the plan in force (a change of seats only). */
  plan?: PlanTerms;
  quantity: number;
  when: 'now' | 'period_end';
}

export interface SubscriptionChangeResult {
  subscription: SubscriptionSnapshot;
  /** What the change cost or credited (null when scheduled, or during a trial: nothing was paid). */
  proration: Proration | null;
  /** The charge of the prorated net, when there was one. */
  payment: { paymentId: string; status: 'succeeded' | 'pending' | 'failed' } | null;
}

export interface CouponApplication {
  /** The coupon's terms as redeemed (domain/coupon.ts appliedDiscountOf). */
  discount: AppliedDiscount;
}

export interface ChangeQuoteRequest {
  /** Absent: the plan in force. */
  plan?: PlanTerms;
  /** Absent: the seats in force. */
  quantity?: number;
  /** ISO-8601: the instant to prorate at (a query runs on the workflow's last clock reading, so the caller says when). */
  at: string;
}

export interface ChangeQuoteAnswer {
  /** Why the change is not possible now (another currency, the same terms, past due…); null when it is. */
  refusal: string | null;
  proration: Proration | null;
  /** What would be charged now: the positive net, less a percentage coupon, plus tax. */
  amountDue: number;
  /** What would be added to the credit balance (a negative net, as the customer paid for it). */
  credit: number;
}

export interface PauseRequest {
  /** ISO-8601 instant at which the pause ends by itself; absent: until the customer resumes. */
  resumesAt?: string | null;
}

export interface ResumeResult {
  subscription: SubscriptionSnapshot;
  /** The new period's charge, when the paid period had ended. */
  payment: { paymentId: string; status: 'succeeded' | 'pending' | 'failed' } | null;
}

/**
 * Why a subscription update was refused. Validators throw these as ApplicationFailures, so the
 * refusal leaves no trace in the history; `details[0]` names the field of a bad request.
 */
export const SUBSCRIPTION_FAILURES = {
  /** The request is malformed or out of bounds: `details[0]` is `{ field }`. */
  invalidRequest: 'InvalidSubscriptionRequest',
  /** The subscription's state does not allow it now (the message names the state). */
  notAllowed: 'SubscriptionChangeNotAllowed',
  /** The charge the change needed was declined: `details[0]` is `{ paymentId, failureCode, decline }`. */
  declined: 'SubscriptionPaymentDeclined',
} as const;

/** Waits for the first charge's outcome; the API sends it with the start (update-with-start). */
export const activationUpdate = defineUpdate<ActivationResult>('activation');
/** Cancels now or at period end; answers the subscription after the change is recorded. */
export const cancelSubscriptionUpdate = defineUpdate<SubscriptionSnapshot, [CancelRequest]>('cancel');
/** A new payment method; while past due it is charged at once and the answer includes that retry. */
export const updatePaymentMethodUpdate = defineUpdate<SubscriptionSnapshot, [PaymentMethodChange]>('updatePaymentMethod');
/** The same change without waiting for it, for senders that cannot wait (a gateway webhook). */
export const paymentMethodUpdatedSignal = defineSignal<[PaymentMethodChange]>('paymentMethodUpdated');
/** Staff: charge the unpaid period now, even after a hard decline. No effect unless past due. */
export const retryPaymentNowSignal = defineSignal('retryPaymentNow');
/** Staff: give a past-due customer more time before expiry. No effect unless past due. */
export const extendGraceSignal = defineSignal<[GraceExtension]>('extendGrace');
/** Changes plan or seats now (prorated) or at period end; 402-style failure when the charge is declined. */
export const changeSubscriptionUpdate = defineUpdate<SubscriptionChangeResult, [SubscriptionChange]>('changeSubscription');
/** Withdraws a plan change scheduled for the period end. */
export const cancelScheduledChangeUpdate = defineUpdate<SubscriptionSnapshot>('cancelScheduledChange');
/** Pauses when the paid period ends (or the trial), optionally until `resumesAt`. */
export const pauseSubscriptionUpdate = defineUpdate<SubscriptionSnapshot, [PauseRequest]>('pause');
/** Withdraws a pause not yet in effect, or ends one, charging a new period from now. */
export const resumeSubscriptionUpdate = defineUpdate<ResumeResult>('resume');
/** Withdraws a cancel-at-period-end before the period ends. */
export const reactivateSubscriptionUpdate = defineUpdate<SubscriptionSnapshot>('reactivate');
/** Applies a redeemed coupon from the next charge on (it replaces one already applied). */
export const applyCouponUpdate = defineUpdate<SubscriptionSnapshot, [CouponApplication]>('applyCoupon');
/** What a change would cost at `at` (the API's preview), priced as the change would be charged. */
export const changeQuoteQuery = defineQuery<ChangeQuoteAnswer, [ChangeQuoteRequest]>('changeQuote');
/** Everything a person needs to know about the subscription right now. */
export const subscriptionStateQuery = defineQuery<SubscriptionSnapshot>('state');
