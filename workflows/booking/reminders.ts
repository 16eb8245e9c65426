/**
 * A confirmed booking's wait for its offering's end, with the offering's reminders on the way:
 * each offset before `startsAt` is a time on the workflow's own clock at which the customer is
 * told once. The plan follows `booking.terms`: a move to another date (terms replaced) drops the
 * old date's reminders and plans the new date's that are still ahead; a cancel ends the wait.
 */
import { condition, patched } from '@temporalio/workflow';
import type { BookingTerms } from '../../activities/booking';
import { reminderSchedule, remindersProblem, type ReminderDue } from '../../domain/offering';
import { msUntil, now } from '../clock';
import { notifyQuietly } from '../notify';
import type { Booking } from './workflow';

/** Runs from before reminders waited for their offering's end on one timer and sent nothing. */
export const REMINDERS_PATCH = 'booking-reminders';

interface Plan {
  /** What the plan was made from; another value means the terms changed and the plan is stale. */
  basis: string;
  /** Reminders still to send, earliest first. */
  due: ReminderDue[];
  endsAt: string;
}

/** Returns once the offering has ended (by the current terms) or the booking was canceled. */
export async function waitForOfferingEnd(booking: Booking, terms: BookingTerms): Promise<void> {
  const canceled = () => booking.state.status === 'canceled';
  if (!patched(REMINDERS_PATCH)) {
    // Runs from before this patch wait on their one timer until the offering's end, as they always did.
    await condition(canceled, Math.max(1, msUntil(terms.endsAt)));
    return;
  }
  // The terms the booking has now: a move to another offering replaces them.
  const termsNow = () => booking.terms ?? terms;
  let plan = planFrom(terms);
  for (;;) {
    // Checked before waiting too: a wait whose predicate already holds would start a timer for nothing.
    if (canceled()) return;
    const current = termsNow();
    if (basisOf(current) !== plan.basis) {
      plan = planFrom(current);
      continue;
    }
    const next = plan.due[0];
    await condition(() => canceled() || basisOf(termsNow()) !== plan.basis, Math.max(1, msUntil(next ? next.at : plan.endsAt)));
    // Woken by a cancel or a move (even one in the same instant as the timer): nothing for the old date.
    if (canceled() || basisOf(termsNow()) !== plan.basis) continue;
    if (!next) return;
    plan.due.shift();
    // A holder already checked in needs no reminder. The terms now name the offering (a move to one at the same time keeps the plan).
    if (booking.state.status === 'confirmed') await notifyQuietly(reminderNotice(booking, termsNow(), next));
  }
}

/** The reminders of `terms` still ahead of the workflow clock: those already past are never sent. */
function planFrom(terms: BookingTerms): Plan {
  const at = now().getTime();
  // The API refuses a bad offset; one written around it (P1M has no fixed length) is skipped rather than failing every workflow task.
  const offsets = (terms.reminders ?? []).filter((offset) => remindersProblem([offset]) === undefined);
  const due = reminderSchedule(new Date(terms.startsAt), offsets).filter((r) => r.at.getTime() > at);
  return { basis: basisOf(terms), due, endsAt: terms.endsAt };
}

function basisOf(terms: BookingTerms): string {
  return JSON.stringify([terms.startsAt, terms.endsAt, terms.reminders ?? []]);
}

/**
 * Keyed by the offset and the start it was for: a retry or replay is the same notification, a
 * booking moved to another date gets its new date's reminders as new ones.
 */
function reminderNotice(booking: Booking, terms: BookingTerms, reminder: ReminderDue) {
  const { offeringName, startsAt } = terms;
  const units = booking.state.unitIds.length;
  return booking.notice(
    'booking_reminder',
    `reminder:${reminder.offset}:${startsAt}`,
    `Reminder: ${offeringName} on ${startsAt}`,
    `Your booking of ${units} unit(s) for ${offeringName} starts on ${startsAt}.`,
  );
}
