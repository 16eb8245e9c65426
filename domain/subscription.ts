/**
 * A subscription's lifecycle and billing periods. The workflow applies these rules; the API and
 * the projections only describe them.
 */
import type { DeclineKind } from './payment';
import { dunningPolicyProblems, type DunningPolicy, type PolicyProblem } from './dunning';
import { isChargeableAmount, isCurrencyCode } from './money';
import { addPeriods, isIsoDuration, isPositiveDuration } from './period';

export const SUBSCRIPTION_STATUSES = ['incomplete', 'trialing', 'active', 'past_due', 'paused', 'canceled', 'expired'] as const;
export type SubscriptionStatus = (typeof SUBSCRIPTION_STATUSES)[number];

/**
 * Allowed moves. `incomplete` is where every subscription starts until its first charge settles;
 * `active → active` is a renewal. A paid period (or trial) that ends with a pause asked for
 * becomes `paused`; a resume charges a new period (`active`), or, when an automatic resume is
 * declined, starts dunning (`past_due`). Canceled and expired are final.
 */
const TRANSITIONS: Record<SubscriptionStatus, readonly SubscriptionStatus[]> = {
  incomplete: ['trialing', 'active', 'canceled'],
  trialing: ['active', 'past_due', 'paused', 'canceled'],
  active: ['active', 'past_due', 'paused', 'canceled'],
  past_due: ['active', 'canceled', 'expired'],
  paused: ['active', 'past_due', 'canceled'],
  canceled: [],
  expired: [],
};

export class InvalidTransitionError extends Error {
  constructor(
    readonly from: SubscriptionStatus,
    readonly to: SubscriptionStatus,
  ) {
    super(`a subscription cannot go from ${from} to ${to}`);
    this.name = 'InvalidTransitionError';
  }
}

export function canTransition(from: SubscriptionStatus, to: SubscriptionStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Returns `to`, so a state update reads `status = transition(status, 'active')`. */
export function transition(from: SubscriptionStatus, to: SubscriptionStatus): SubscriptionStatus {
  if (!canTransition(from, to)) throw new InvalidTransitionError(from, to);
  return to;
}

export function isFinalStatus(status: SubscriptionStatus): boolean {
  return TRANSITIONS[status].length === 0;
}

/** The terms a subscription was sold on, frozen into its workflow when it starts. */
export interface PlanTerms {
  planId: string;
  code: string;
  name: string;
  amount: number;
  currency: string;
  interval: string;
  trialPeriod: string | null;
  dunning: DunningPolicy;
  /** Exclusive tax in basis points (2000 = 20 %), added to each charge; absent: none (and in runs from before taxes). */
  taxRate?: number;
}

/** Why these terms cannot be sold, one problem per bad field; empty when they are valid. */
export function planTermsProblems(terms: Omit<PlanTerms, 'planId' | 'code' | 'name'>): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  if (!isChargeableAmount(terms.amount)) problems.push({ path: ['amount'], message: 'must be a positive whole number of minor units' });
  if (!isCurrencyCode(terms.currency)) problems.push({ path: ['currency'], message: 'must be a three-letter ISO 4217 code' });
  if (!isPositiveIsoDuration(terms.interval))
    problems.push({ path: ['interval'], message: 'must be a positive ISO-8601 duration such as P1M or PT30S' });
  if (terms.trialPeriod !== null && !isPositiveIsoDuration(terms.trialPeriod)) {
    problems.push({ path: ['trialPeriod'], message: 'must be a positive ISO-8601 duration such as P14D' });
  }
  for (const problem of dunningPolicyProblems(terms.dunning)) problems.push({ ...problem, path: ['dunning', ...problem.path] });
  return problems;
}

function isPositiveIsoDuration(text: string): boolean {
  return isIsoDuration(text) && isPositiveDuration(text);
}

export interface BillingPeriod {
  start: Date;
  end: Date;
}

/**
 * Paid period number `cycle` (1 is the first) of a subscription anchored at `anchor`: it runs from
 * anchor + (cycle − 1) intervals to anchor + cycle intervals, always counted from the anchor.
 */
export function billingPeriod(anchor: Date, interval: string, cycle: number): BillingPeriod {
  if (!Number.isInteger(cycle) || cycle < 1) throw new RangeError(`billing cycles start at 1, got ${cycle}`);
  return { start: addPeriods(anchor, interval, cycle - 1), end: addPeriods(anchor, interval, cycle) };
}

/** A plan change asked for at the period end: applied at the next renewal, withdrawable until then. */
export interface ScheduledChange {
  planId: string;
  quantity: number;
  /** When it applies: the end of the paid period it was asked in. */
  at: string;
}

export function subscriptionWorkflowId(subscriptionId: string): string {
  return `subscription-${subscriptionId}`;
}

/** What the dunning of the unpaid cycle looks like right now. */
export interface DunningSnapshot {
  cycle: number;
  failedAt: string;
  graceEndsAt: string;
  /** Charges made for this cycle so far, the failed renewal included. */
  attempts: number;
  /** Automatic retries done so far and the policy's total. */
  retriesDone: number;
  retriesTotal: number;
  nextRetryAt: string | null;
  nextReminderAt: string | null;
  /** A hard decline stops automatic retries until the payment method changes. */
  automaticRetriesStopped: boolean;
  lastFailureCode: string | null;
  lastDecline: DeclineKind | null;
  /** What happened so far, for support staff (and the tests): retries, reminders, manual attempts. */
  log: DunningLogEntry[];
}

export interface DunningLogEntry {
  at: string;
  kind: 'failed' | 'retry' | 'manual_retry' | 'reminder' | 'grace_extended' | 'expired';
  attempt?: number;
  outcome?: 'succeeded' | 'failed' | 'pending';
  failureCode?: string | null;
  detail?: string;
}

/** The answer to the workflow's `state` query; dates are ISO-8601 UTC strings. */
/** A coupon on a subscription: `percentOff` or `amountOff` (minor units of `currency`), for `remainingCycles` more periods (null: forever). */
export interface DiscountSnapshot {
  couponCode: string;
  percentOff: number | null;
  amountOff: number | null;
  currency: string | null;
  duration: 'once' | 'repeating' | 'forever';
  remainingCycles: number | null;
}

export interface SubscriptionSnapshot {
  subscriptionId: string;
  userId: string;
  status: SubscriptionStatus;
  /** The terms in force now; `amount` is per seat and period, `price` formats it. */
  plan: { planId: string; code: string; name: string; amount: number; currency: string; interval: string; price: string };
  /** Seats: each period costs plan amount × quantity. */
  quantity: number;
  /** What each period costs now (plan amount × quantity), in minor units. */
  periodAmount: number;
  scheduledChange: ScheduledChange | null;
  /** A pause asked for takes effect at the end of the paid period (this instant); null when none is asked. */
  pauseAt: string | null;
  /** When the subscription stopped at a pause (status `paused`). */
  pausedAt: string | null;
  /** When a pause ends by itself; null: it lasts until the customer resumes. */
  resumesAt: string | null;
  /** All refunds made of this subscription's payments so far, in minor units. */
  refundedTotal: number;
  /** The coupon applied, while it still takes something off; null when none. */
  discount: DiscountSnapshot | null;
  paymentMethod: string;
  anchorDate: string;
  trialEnd: string | null;
  /** Paid periods so far; 0 until the first charge succeeds. */
  cycle: number;
  currentPeriodStart: string | null;
  currentPeriodEnd: string | null;
  nextBillingDate: string | null;
  cancelAtPeriodEnd: boolean;
  canceledAt: string | null;
  endedAt: string | null;
  /** A charge waiting for the payment webhook. */
  pendingPayment: { paymentId: string; cycle: number; attempt: number; since: string; expiresAt: string } | null;
  dunning: DunningSnapshot | null;
  lastPayment: { paymentId: string; cycle: number; attempt: number; status: 'succeeded' | 'pending' | 'failed'; at: string } | null;
}

/** The statuses a subscription never leaves (canceled, expired). */
export const FINAL_STATUSES: readonly SubscriptionStatus[] = (Object.keys(TRANSITIONS) as SubscriptionStatus[]).filter(isFinalStatus);

/**
 * Why a subscription on `current` terms cannot move to `next`; null when it can. Prorating keeps
 * the billing anchor, so the new plan must bill in the same currency and on the same interval.
 */
/** Why a subscription in `status` cannot change plan or seats now; null while it is active or trialing. */
export function planChangeStatusRefusal(status: SubscriptionStatus): string | null {
  return status === 'active' || status === 'trialing' ? null : `the subscription is ${status}; its plan can change while it is active or trialing`;
}

type ChangeTerms = { plan: Pick<PlanTerms, 'planId' | 'currency' | 'interval'>; quantity: number };

export function planChangeRefusal(current: ChangeTerms, next: ChangeTerms): string | null {
  if (next.plan.currency !== current.plan.currency) return `the plan is in ${next.plan.currency}, the subscription in ${current.plan.currency}`;
  if (next.plan.interval !== current.plan.interval)
    return `the plan bills every ${next.plan.interval}, the subscription every ${current.plan.interval}`;
  if (next.plan.planId === current.plan.planId && next.quantity === current.quantity) {
    return `the subscription is already on this plan with ${next.quantity} seat(s)`;
  }
  return null;
}
