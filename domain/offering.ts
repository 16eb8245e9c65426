/**
 * An offering's own rules beyond its units and prices: whether it still takes bookings, when its
 * bookings are reminded, and how long a waitlist offer lasts. Pure: the caller passes the time.
 */
import { durationToMilliseconds, isIsoDuration, isPositiveDuration } from './period';

/** `scheduled` takes holds and bookings until it starts; `canceled` (by the business) never again. */
export type OfferingStatus = 'scheduled' | 'canceled';
export const OFFERING_STATUSES = ['scheduled', 'canceled'] as const satisfies readonly OfferingStatus[];

export const DEFAULT_WAITLIST_OFFER_TTL = 'PT15M';
// An offer is a hold for someone who is not at the checkout yet: long enough to read a mail, never days.
const MAX_WAITLIST_OFFER_TTL_MS = 24 * 60 * 60 * 1000;
/** Reminders an offering may list; each is a timer in every confirmed booking's workflow. */
export const MAX_REMINDERS = 5;
// Further ahead than any business reminds its customers; keeps a typo (P10Y) from being a timer.
const MAX_REMINDER_OFFSET_MS = 90 * 24 * 60 * 60 * 1000;

/** What is wrong with a waitlist offer TTL, or undefined when it is a positive duration of at most a day. */
export function waitlistOfferTtlProblem(ttl: string): string | undefined {
  const ms = fixedLengthMs(ttl);
  if (ms === undefined) return 'Must be a positive ISO-8601 duration such as PT15M';
  if (ms > MAX_WAITLIST_OFFER_TTL_MS) return 'Must be at most a day (PT24H)';
  return undefined;
}

/** What is wrong with a list of reminder offsets, or undefined: positive durations, at most 90 days, no repeats. */
export function remindersProblem(reminders: readonly string[]): string | undefined {
  if (reminders.length > MAX_REMINDERS) return `At most ${MAX_REMINDERS} reminders`;
  const seen = new Set<number>();
  for (const offset of reminders) {
    const ms = fixedLengthMs(offset);
    if (ms === undefined) return `"${offset}" is not a positive ISO-8601 duration of days, hours or minutes such as P1D or PT2H`;
    if (ms > MAX_REMINDER_OFFSET_MS) return `"${offset}" is more than 90 days`;
    if (seen.has(ms)) return `"${offset}" is listed twice`;
    seen.add(ms);
  }
  return undefined;
}

export interface ReminderDue {
  /** The offset as the offering lists it: names the reminder and keys its notification. */
  offset: string;
  at: Date;
}

/** When each reminder of a booking for an offering starting at `startsAt` is due, earliest first. */
export function reminderSchedule(startsAt: Date, reminders: readonly string[]): ReminderDue[] {
  return reminders
    .map((offset) => ({ offset, at: new Date(startsAt.getTime() - durationToMilliseconds(offset)) }))
    .sort((a, b) => a.at.getTime() - b.at.getTime());
}

/** Why an offering takes no new holds, bookings or moves now, or undefined when it does. */
export function offeringClosedReason(offering: { status: OfferingStatus; startsAt: Date }, now: Date): string | undefined {
  if (offering.status === 'canceled') return 'the offering was canceled';
  if (offering.startsAt.getTime() <= now.getTime()) return 'the offering has already started';
  return undefined;
}

/** A positive duration's length in ms; undefined for anything else, months and years included (their length depends on the date). */
function fixedLengthMs(text: string): number | undefined {
  if (!isIsoDuration(text) || !isPositiveDuration(text)) return undefined;
  try {
    return durationToMilliseconds(text);
  } catch {
    return undefined;
  }
}
