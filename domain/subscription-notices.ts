/**
 * What a subscription tells its customer, and when: the copy of every notice, with the event
 * name that keys it (one notice per event: `3:paid`, `3:failed`, `3:reminder:2`, …). Pure, so
 * the wording is tested without a workflow.
 */
import type { DeclineKind } from './payment';
import { formatMoney } from './money';
import type { NotificationKind } from './notification';
import type { PlanTerms } from './subscription';

export interface SubscriptionNotice {
  kind: NotificationKind;
  /** Names the event within the subscription's workflow; the dedupe key is built from it. */
  event: string;
  subject: string;
  body: string;
}

function notice(kind: NotificationKind, event: string, subject: string, lines: string[]): SubscriptionNotice {
  return { kind, event, subject, body: lines.join('\n\n') };
}

function price(plan: PlanTerms): string {
  return formatMoney(plan.amount, plan.currency);
}

/** "2025-03-17 09:00 UTC": dates in messages name the time too, since short plans renew within a day. */
export function formatNoticeInstant(date: Date): string {
  const iso = date.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

export function periodPaidNotice(plan: PlanTerms, cycle: number, period: { start: Date; end: Date }, endsThen: boolean): SubscriptionNotice {
  return notice('payment_succeeded', `${cycle}:paid`, `Payment received for ${plan.name}`, [
    `We received ${price(plan)} for ${plan.name}, covering ${formatNoticeInstant(period.start)} to ${formatNoticeInstant(period.end)}.`,
    endsThen ? 'Your subscription ends then.' : `Your next payment is due on ${formatNoticeInstant(period.end)}.`,
  ]);
}

export function renewalFailedNotice(
  plan: PlanTerms,
  cycle: number,
  failure: { failureCode: string; decline: DeclineKind },
  nextRetryAt: Date | undefined,
  graceEndsAt: Date,
): SubscriptionNotice {
  return notice('payment_failed', `${cycle}:failed`, `Your payment for ${plan.name} failed`, [
    `We could not charge ${price(plan)} for ${plan.name} (${failure.failureCode}).`,
    failure.decline === 'hard' || !nextRetryAt
      ? 'We will not retry this payment method.'
      : `We will try again on ${formatNoticeInstant(nextRetryAt)}.`,
    `Update your payment method before ${formatNoticeInstant(graceEndsAt)} to keep your subscription.`,
  ]);
}

export function actionRequiredNotice(plan: PlanTerms, cycle: number, attempt: number, expiresAt: Date, actionLink?: string): SubscriptionNotice {
  return notice('payment_action_required', `${cycle}:${attempt}:action`, `Confirm your payment for ${plan.name}`, [
    `Your bank needs you to confirm the payment of ${price(plan)} for ${plan.name}.`,
    actionLink
      ? `Please confirm it at ${actionLink} before ${formatNoticeInstant(expiresAt)}.`
      : `Please confirm it before ${formatNoticeInstant(expiresAt)}.`,
  ]);
}

export function graceReminderNotice(
  plan: PlanTerms,
  cycle: number,
  reminder: number,
  timeLeft: string,
  lastFailureCode: string | null,
  graceEndsAt: Date,
): SubscriptionNotice {
  return notice('grace_reminder', `${cycle}:reminder:${reminder}`, `${timeLeft} left to keep ${plan.name}`, [
    `Your payment of ${price(plan)} for ${plan.name} is still outstanding (${lastFailureCode}).`,
    `You have ${timeLeft} left: update your payment method before ${formatNoticeInstant(graceEndsAt)} or your subscription expires.`,
  ]);
}

export function expiredNotice(plan: PlanTerms): SubscriptionNotice {
  return notice('subscription_expired', 'expired', `Your ${plan.name} subscription has expired`, [
    `We could not collect ${price(plan)} for ${plan.name} before the grace period ended, so the subscription has expired.`,
    'You are welcome to subscribe again at any time.',
  ]);
}

export function canceledNotice(plan: PlanTerms, at: Date): SubscriptionNotice {
  return notice('subscription_canceled', 'canceled', `Your ${plan.name} subscription has ended`, [
    `Your ${plan.name} subscription was canceled on ${formatNoticeInstant(at)}. You will not be charged again.`,
  ]);
}

/** A plan or seat change applied now: what it cost or credited. `change` numbers it in the run. */
export function planChangedNotice(
  plan: PlanTerms,
  quantity: number,
  change: number,
  proration: { net: number; currency: string } | null,
): SubscriptionNotice {
  const seats = quantity === 1 ? '' : ` for ${quantity} seats`;
  const money =
    !proration || proration.net === 0
      ? 'Nothing was charged for the rest of this period.'
      : proration.net > 0
        ? `We charged ${formatMoney(proration.net, proration.currency)} for the rest of this period.`
        : `We added ${formatMoney(-proration.net, proration.currency)} to your credit balance for the rest of this period; it pays your next charges.`;
  return notice('subscription_changed', `change:${change}`, `Your subscription is now ${plan.name}${seats}`, [
    `Your subscription is now ${plan.name}${seats}, at ${formatMoney(plan.amount * quantity, plan.currency)} a period.`,
    money,
  ]);
}

export function pausedNotice(plan: PlanTerms, cycle: number, resumesAt: Date | null): SubscriptionNotice {
  return notice('subscription_paused', `${cycle}:paused`, `Your ${plan.name} subscription is paused`, [
    `Your ${plan.name} subscription is paused. You will not be charged while it is paused.`,
    resumesAt ? `It resumes on ${formatNoticeInstant(resumesAt)}.` : 'Resume it whenever you like.',
  ]);
}

export function resumedNotice(plan: PlanTerms, cycle: number, period: { start: Date; end: Date }, amount: number): SubscriptionNotice {
  return notice('subscription_resumed', `${cycle}:resumed`, `Your ${plan.name} subscription has resumed`, [
    `Welcome back. We received ${formatMoney(amount, plan.currency)} for ${plan.name}, covering ${formatNoticeInstant(period.start)} to ${formatNoticeInstant(period.end)}.`,
  ]);
}
