/**
 * The lines support staff read in the Temporal UI: a workflow's summary (set when it starts,
 * fixed for its life) and its current details (kept up to date as its state changes), e.g.
 * "past_due · pro-monthly · retry 2 of 3 on 2026-12-25 · expires 2026-12-29".
 */
import type { BookingFailureReason, BookingStatus } from './booking';
import { formatMoney } from './money';
import type { PlanTerms, SubscriptionSnapshot } from './subscription';

const SEPARATOR = ' · ';

/** Who a workflow is for: the email when the starter knows it, else the user id. */
function customerLabel(customer: { userId: string; email?: string }): string {
  return customer.email ?? `user ${customer.userId}`;
}

/** "pro-monthly · ada@example.com". */
export function subscriptionSummary(planCode: string, customer: { userId: string; email?: string }): string {
  return [planCode, customerLabel(customer)].join(SEPARATOR);
}

/** The terms the subscription was sold on: "Pro · $19.99 every P1M · trial P14D · retries after P1D, P3D · grace P7D". */
export function planTermsDetails(plan: PlanTerms): string {
  const { dunning } = plan;
  return [
    plan.name,
    `${formatMoney(plan.amount, plan.currency)} every ${plan.interval}`,
    ...(plan.trialPeriod ? [`trial ${plan.trialPeriod}`] : []),
    dunning.retryOffsets.length > 0 ? `retries after ${dunning.retryOffsets.join(', ')}` : 'no retries',
    `grace ${dunning.gracePeriod}`,
  ].join(SEPARATOR);
}

/** The subscription's status, plan and whatever comes next for it. */
export function subscriptionDetails(s: SubscriptionSnapshot): string {
  return [s.status, s.plan.code, ...subscriptionOutlook(s)].join(SEPARATOR);
}

function subscriptionOutlook(s: SubscriptionSnapshot): string[] {
  const pending = s.pendingPayment && `payment awaiting confirmation until ${formatInstant(s.pendingPayment.expiresAt)}`;
  switch (s.status) {
    case 'incomplete':
      if (pending) return [pending];
      return [s.endedAt ? `first payment ${s.lastPayment?.status === 'failed' ? 'declined' : 'not completed'}` : 'first payment under way'];
    case 'trialing':
      return [
        s.cancelAtPeriodEnd ? `trial ends ${formatInstant(s.trialEnd!)}, then the subscription ends` : `trial ends ${formatInstant(s.trialEnd!)}`,
      ];
    case 'active':
      if (pending) return [`renewal ${pending}`];
      if (s.cancelAtPeriodEnd && s.currentPeriodEnd) return [`ends ${formatInstant(s.currentPeriodEnd)}`];
      if (s.pauseAt) return [`pauses ${formatInstant(s.pauseAt)}`];
      return s.nextBillingDate ? [`renews ${formatInstant(s.nextBillingDate)}`] : [];
    case 'past_due':
      return s.dunning ? [pending ?? nextRetry(s.dunning), `expires ${formatInstant(s.dunning.graceEndsAt)}`] : [];
    case 'paused':
      if (pending) return [`resume ${pending}`];
      return [s.resumesAt ? `resumes ${formatInstant(s.resumesAt)}` : 'paused until the customer resumes'];
    case 'canceled':
    case 'expired':
      return s.endedAt ? [`ended ${formatInstant(s.endedAt)}`] : [];
  }
}

function nextRetry(d: NonNullable<SubscriptionSnapshot['dunning']>): string {
  if (d.nextRetryAt) return `retry ${d.retriesDone + 1} of ${d.retriesTotal} on ${formatInstant(d.nextRetryAt)}`;
  if (d.automaticRetriesStopped) return `retries stopped after a hard decline (${d.lastFailureCode})`;
  return `no retries left (${d.lastFailureCode})`;
}

/** "2 unit(s) of Hamlet · ada@example.com". */
export function bookingSummary(unitCount: number, offeringName: string, customer: { userId: string; email?: string }): string {
  return [`${unitCount} unit(s) of ${offeringName}`, customerLabel(customer)].join(SEPARATOR);
}

export interface BookingDescription {
  status: BookingStatus;
  failureReason: BookingFailureReason | null;
  awaitingPayment: boolean;
  unitIds: readonly string[];
  amount: number;
  currency: string;
  charges: readonly { amount: number; refunded: number }[];
  /** Known once the saga has read the booking's terms. */
  offeringName?: string;
}

/** "confirmed · 2 unit(s) of Hamlet · $40.00 · $10.00 refunded". */
export function bookingDetails(b: BookingDescription): string {
  const refunded = b.charges.reduce((sum, c) => sum + c.refunded, 0);
  const what = b.offeringName && `${b.unitIds.length} unit(s) of ${b.offeringName}`;
  const price = b.currency ? formatMoney(b.amount, b.currency) : undefined;
  const parts: Array<string | undefined> = [b.status];
  if (b.status === 'failed') parts.push(b.failureReason?.replaceAll('_', ' '));
  else if (b.status === 'pending') parts.push(what, b.awaitingPayment ? 'payment awaiting confirmation' : 'booking under way');
  else parts.push(what, price);
  if (refunded > 0 && b.currency) parts.push(`${formatMoney(refunded, b.currency)} refunded`);
  return parts.filter((part): part is string => Boolean(part)).join(SEPARATOR);
}

/** "$12.50 · Gift card · ada@example.com". */
export function paymentSummary(amount: number, currency: string, description: string, customer: { userId: string; email?: string }): string {
  return [formatMoney(amount, currency), description, customerLabel(customer)].join(SEPARATOR);
}

/** "Refund of $3.00 of $10.00 · Gift card · ada@example.com": a staff refund of a charge. */
export function paymentRefundSummary(
  refund: { amount: number; chargeAmount: number; currency: string; description: string | null },
  customer: { userId: string; email?: string },
): string {
  const what = `Refund of ${formatMoney(refund.amount, refund.currency)} of ${formatMoney(refund.chargeAmount, refund.currency)}`;
  return [what, ...(refund.description ? [refund.description] : []), customerLabel(customer)].join(SEPARATOR);
}

/** Where a one-time payment stands; `awaiting_confirmation` waits for the payment webhook. */
export type OneTimePaymentPhase = 'charging' | 'awaiting_confirmation' | 'succeeded' | 'failed';

/** "failed · $12.50 · card_declined". */
export function oneTimePaymentDetails(p: { phase: OneTimePaymentPhase; amount: number; currency: string; failureCode: string | null }): string {
  return [p.phase, formatMoney(p.amount, p.currency), ...(p.phase === 'failed' && p.failureCode ? [p.failureCode] : [])].join(SEPARATOR);
}

/**
 * An instant as briefly as it reads exactly: "2026-12-25" at midnight UTC, else with the time
 * ("2026-12-25 14:03 UTC", "2026-12-25 14:03:07 UTC": short plans renew within a minute).
 */
export function formatInstant(iso: string): string {
  const date = new Date(iso).toISOString();
  const day = date.slice(0, 10);
  if (date.slice(11, 23) === '00:00:00.000') return day;
  const time = date.slice(17, 19) === '00' ? date.slice(11, 16) : date.slice(11, 19);
  return `${day} ${time} UTC`;
}
