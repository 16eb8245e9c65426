/**
 * The state a subscription's workflow carries across continue-as-new, and what people and
 * PostgreSQL see of it (the `state` query's snapshot, the projected row). Pure: the workflow
 * passes in its plan and ids, and the clock is never read here.
 */
import type { AppliedDiscount } from './coupon';
import { dunningTimeline, type DunningEvent } from './dunning';
import type { Proration } from './proration';
import { formatMoney } from './money';
import type { NotificationInput } from './notification';
import type { DeclineKind, PaymentSettlement } from './payment';
import {
  billingPeriod,
  type DiscountSnapshot,
  type DunningLogEntry,
  type DunningSnapshot,
  type PlanTerms,
  type ScheduledChange,
  type SubscriptionSnapshot,
  type SubscriptionStatus,
} from './subscription';

export interface SubscriptionState {
  status: SubscriptionStatus;
  paymentMethod: string;
  startedAt: string;
  /** Every billing date is counted from here: the start, or the trial's end. */
  anchorDate: string;
  trialEnd: string | null;
  /** Paid periods so far. */
  cycle: number;
  cancelAtPeriodEnd: boolean;
  cancelNowRequested: boolean;
  canceledAt: string | null;
  endedAt: string | null;
  pendingPayment: SubscriptionSnapshot['pendingPayment'];
  dunning: DunningState | null;
  lastPayment: SubscriptionSnapshot['lastPayment'];
  /** Webhook answers not yet matched to the pending charge (a webhook can outrun the charge's reply). */
  settlements: PaymentSettlement[];
  /** Notifications not yet delivered (at most OUTBOX_LIMIT). */
  outbox: NotificationInput[];
  // What follows came with plan changes and pauses: runs from before them carry none of it, so
  // every field is optional and read through the functions below, which give the old meaning.
  /** The terms in force since a plan change; absent: the input's plan. */
  plan?: PlanTerms;
  /** Seats; absent: 1. */
  quantity?: number;
  /** Periods paid before `anchorDate`: a resume after a pause counts periods anew from its day. */
  anchorCycle?: number;
  scheduledChange?: (ScheduledChange & { plan: PlanTerms }) | null;
  /** A pause asked for: when the paid period ends the subscription stops instead of renewing. */
  pause?: { resumesAt: string | null } | null;
  pausedAt?: string | null;
  /** A change to apply now, waiting for the main loop (which prorates and charges it). */
  changeRequest?: ChangeRequest | null;
  /** The outcome of the last change applied now, for the update that asked for it. */
  lastChange?: ChangeOutcome | null;
  /** Changes and resumes asked for so far: numbers their charges' idempotency keys. */
  changeCount?: number;
  /** A resume of a paused subscription, waiting for the main loop to charge the new period. */
  resumeRequest?: { id: number; paymentId?: string } | null;
  lastResume?: ResumeOutcome | null;
  /** Refunded so far of each of this subscription's payments (the refund workflow reports totals). */
  refunds?: Record<string, number>;
  /** The coupon applied to the subscription, with the cycles it still covers; absent: none. */
  discount?: AppliedDiscount | null;
  /** The coupon that priced the period paid last (a change in that period is discounted by it). */
  periodDiscount?: AppliedDiscount | null;
  /** The referral reward step has run (it runs once, after the first paid period). */
  referralChecked?: boolean;
}

export interface ChangeRequest {
  id: number;
  plan: PlanTerms;
  quantity: number;
  /** What the loop prorated it to, once it has. */
  proration?: Proration | null;
  /** The charge of the prorated net, once the gateway has answered it. */
  paymentId?: string;
}

export interface ChangeOutcome {
  id: number;
  /** `refused`: the subscription fell past due or ended before the change could be applied. */
  status: 'applied' | 'declined' | 'refused';
  proration: Proration | null;
  paymentId: string | null;
  failureCode: string | null;
  decline: DeclineKind | null;
}

export interface ResumeOutcome {
  id: number;
  status: 'resumed' | 'declined' | 'refused';
  paymentId: string | null;
  failureCode: string | null;
  decline: DeclineKind | null;
}

/** Payments whose refunded totals are kept in the state; older ones are dropped past this. */
export const MAX_REFUND_RECORDS = 50;

export interface DunningState {
  cycle: number;
  failedAt: string;
  graceEndsAt: string;
  attempts: number;
  /** Index of the next event of the timeline to act on. */
  nextEvent: number;
  retriesDone: number;
  automaticRetriesStopped: boolean;
  lastFailureCode: string | null;
  lastDecline: DeclineKind | null;
  /** Retries asked for now (new card, staff) and how many of those asks have been served. */
  retryRequests: number;
  retryRequestsServed: number;
  log: DunningLogEntry[];
  /** The failed charge whose invoice is open while dunning (void once paid, uncollectible at expiry); absent in runs from before. */
  invoicePaymentId?: string;
}

/** Who the subscription is and on what terms: the fixed part of the workflow's input. */
export interface SubscriptionIdentity {
  subscriptionId: string;
  userId: string;
  plan: PlanTerms;
}

/**
 * A subscription's row as its workflow sees it. The workflow is the authority; this row is a
 * projection for listing, reporting and support. Dates are ISO-8601 strings (workflow payloads are JSON).
 */
export interface SubscriptionProjection {
  subscriptionId: string;
  userId: string;
  planId: string;
  workflowId: string;
  status: SubscriptionStatus;
  paymentMethod: string;
  anchorDate: string;
  cycle: number;
  currentPeriodStart: string | null;
  currentPeriodEnd: string | null;
  nextBillingDate: string | null;
  trialEnd: string | null;
  cancelAtPeriodEnd: boolean;
  canceledAt: string | null;
  graceEndsAt: string | null;
  attemptCount: number;
  quantity: number;
  scheduledChange: ScheduledChange | null;
  pauseAt: string | null;
  pausedAt: string | null;
  resumesAt: string | null;
  discount: DiscountSnapshot | null;
}

/** Webhook answers kept while no charge claims them; older ones are dropped past this. */
export const MAX_UNMATCHED_SETTLEMENTS = 20;

/**
 * Notices waiting for delivery. Each is retried a bounded number of times and then dropped, so
 * the outbox drains; the cap bounds what a long mail outage can pile into the carried state.
 */
export const OUTBOX_LIMIT = 20;

/** A subscription's state before its first charge. */
export function initialState(paymentMethod: string, startedAt: Date): SubscriptionState {
  const start = startedAt.toISOString();
  return {
    status: 'incomplete',
    paymentMethod,
    startedAt: start,
    anchorDate: start,
    trialEnd: null,
    cycle: 0,
    cancelAtPeriodEnd: false,
    cancelNowRequested: false,
    canceledAt: null,
    endedAt: null,
    pendingPayment: null,
    dunning: null,
    lastPayment: null,
    settlements: [],
    outbox: [],
  };
}

/** The terms in force: the plan changed to, else the one subscribed to. */
export function termsOf(plan: PlanTerms, state: SubscriptionState): PlanTerms {
  return state.plan ?? plan;
}

export function quantityOf(state: SubscriptionState): number {
  return state.quantity ?? 1;
}

/**
 * Paid period number `cycle`, counted from the anchor; after a resume the anchor is the resume's
 * instant and `anchorCycle` the periods paid before it.
 */
export function periodOfCycle(plan: PlanTerms, state: SubscriptionState, cycle: number): { start: Date; end: Date } {
  return billingPeriod(new Date(state.anchorDate), plan.interval, cycle - (state.anchorCycle ?? 0));
}

/** End of the trial, or of the last paid period. */
export function periodEnd(plan: PlanTerms, state: SubscriptionState): string {
  const { trialEnd, cycle, anchorDate } = state;
  if (cycle === 0) return trialEnd ?? anchorDate;
  if (cycle === (state.anchorCycle ?? 0)) return anchorDate;
  return periodOfCycle(plan, state, cycle).end.toISOString();
}

/** The next dunning event of `kind` still ahead; no retry once automatic retries have stopped. */
export function upcomingDunningEvent(plan: PlanTerms, dunning: DunningState | null, kind: 'retry' | 'reminder'): DunningEvent | undefined {
  if (!dunning || (kind === 'retry' && dunning.automaticRetriesStopped)) return undefined;
  return dunningTimeline(new Date(dunning.failedAt), plan.dunning, new Date(dunning.graceEndsAt))
    .slice(dunning.nextEvent)
    .find((event) => event.kind === kind);
}

/** The period shown to people: the trial, the paid period, or the unpaid one being collected. */
function currentPeriod(plan: PlanTerms, state: SubscriptionState): { start: string; end: string } | null {
  const { status, cycle, trialEnd, startedAt, dunning } = state;
  if (status === 'paused') return null;
  const shownCycle = status === 'past_due' && dunning ? dunning.cycle : cycle;
  if (shownCycle === 0) return trialEnd ? { start: startedAt, end: trialEnd } : null;
  const period = periodOfCycle(plan, state, shownCycle);
  return { start: period.start.toISOString(), end: period.end.toISOString() };
}

/** The next charge: the period's end, or a pause's automatic resume. */
function nextBillingDate(plan: PlanTerms, state: SubscriptionState): string | null {
  const { status, cancelAtPeriodEnd, pause } = state;
  if (status === 'paused' || pause) return pause?.resumesAt ?? null;
  return (status === 'active' || status === 'trialing') && !cancelAtPeriodEnd ? periodEnd(plan, state) : null;
}

function refundedTotalOf(state: SubscriptionState): number {
  return Object.values(state.refunds ?? {}).reduce((sum, amount) => sum + amount, 0);
}

/** Everything a person needs to know about the subscription: the `state` query's answer. */
export function subscriptionSnapshot(identity: SubscriptionIdentity, s: SubscriptionState): SubscriptionSnapshot {
  const { subscriptionId, userId } = identity;
  const plan = termsOf(identity.plan, s);
  const period = currentPeriod(plan, s);
  const quantity = quantityOf(s);
  return {
    subscriptionId,
    userId,
    status: s.status,
    plan: {
      planId: plan.planId,
      code: plan.code,
      name: plan.name,
      amount: plan.amount,
      currency: plan.currency,
      interval: plan.interval,
      price: formatMoney(plan.amount, plan.currency),
    },
    quantity,
    periodAmount: plan.amount * quantity,
    scheduledChange: s.scheduledChange ? { planId: s.scheduledChange.planId, quantity: s.scheduledChange.quantity, at: s.scheduledChange.at } : null,
    pauseAt: s.pause && s.status !== 'paused' ? periodEnd(plan, s) : null,
    pausedAt: s.pausedAt ?? null,
    resumesAt: s.pause?.resumesAt ?? null,
    refundedTotal: refundedTotalOf(s),
    discount: discountSnapshot(s.discount),
    paymentMethod: s.paymentMethod,
    anchorDate: s.anchorDate,
    trialEnd: s.trialEnd,
    cycle: s.cycle,
    currentPeriodStart: period?.start ?? null,
    currentPeriodEnd: period?.end ?? null,
    nextBillingDate: nextBillingDate(plan, s),
    cancelAtPeriodEnd: s.cancelAtPeriodEnd,
    canceledAt: s.canceledAt,
    endedAt: s.endedAt,
    pendingPayment: s.pendingPayment,
    dunning: s.dunning && dunningSnapshot(plan, s.dunning),
    lastPayment: s.lastPayment,
  };
}

function dunningSnapshot(plan: PlanTerms, d: DunningState): DunningSnapshot {
  return {
    cycle: d.cycle,
    failedAt: d.failedAt,
    graceEndsAt: d.graceEndsAt,
    attempts: d.attempts,
    retriesDone: d.retriesDone,
    retriesTotal: plan.dunning.retryOffsets.length,
    nextRetryAt: upcomingDunningEvent(plan, d, 'retry')?.at.toISOString() ?? null,
    nextReminderAt: upcomingDunningEvent(plan, d, 'reminder')?.at.toISOString() ?? null,
    automaticRetriesStopped: d.automaticRetriesStopped,
    lastFailureCode: d.lastFailureCode,
    lastDecline: d.lastDecline,
    log: d.log,
  };
}

/** The `subscriptions` row the workflow writes after every change. */
export function subscriptionProjection(identity: SubscriptionIdentity, workflowId: string, state: SubscriptionState): SubscriptionProjection {
  const snapshot = subscriptionSnapshot(identity, state);
  return {
    subscriptionId: identity.subscriptionId,
    userId: identity.userId,
    planId: snapshot.plan.planId,
    workflowId,
    status: snapshot.status,
    paymentMethod: snapshot.paymentMethod,
    anchorDate: snapshot.anchorDate,
    cycle: snapshot.cycle,
    currentPeriodStart: snapshot.currentPeriodStart,
    currentPeriodEnd: snapshot.currentPeriodEnd,
    nextBillingDate: snapshot.nextBillingDate,
    trialEnd: snapshot.trialEnd,
    cancelAtPeriodEnd: snapshot.cancelAtPeriodEnd,
    canceledAt: snapshot.canceledAt,
    graceEndsAt: snapshot.dunning?.graceEndsAt ?? null,
    attemptCount: snapshot.dunning?.attempts ?? 0,
    quantity: snapshot.quantity,
    scheduledChange: snapshot.scheduledChange,
    pauseAt: snapshot.pauseAt,
    pausedAt: snapshot.pausedAt,
    resumesAt: snapshot.resumesAt,
    discount: snapshot.discount,
  };
}

/** The coupon as customers see it on their subscription: its code, what it takes off, and for how long. */
export function discountSnapshot(discount: AppliedDiscount | null | undefined): DiscountSnapshot | null {
  // Used up: nothing more comes off, so there is nothing to show.
  if (!discount || discount.remainingCycles === 0) return null;
  const { couponCode, percentOff, amountOff, currency, duration, remainingCycles } = discount;
  return { couponCode, percentOff, amountOff, currency, duration, remainingCycles };
}

/** A payment method token as workflows accept it (`pm_…`, `tok_…`). */
export function isPaymentMethodToken(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9_]{3,255}$/.test(value);
}
