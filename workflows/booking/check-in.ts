/**
 * The end of a confirmed booking: staff check its holder in (the checkIn update) while its
 * offering runs, and a booking nobody checked in by the offering's end becomes a no-show. The
 * workflow owns the status; the activities only project it onto the booking's row.
 */
import { ApplicationFailure, patched, setHandler } from '@temporalio/workflow';
import { checkInRefusal } from '../../domain/booking';
import { bookingSteps } from '../activity-options';
import { now } from '../clock';
import { checkInBookingUpdate, type CheckInResult } from './contract';
import type { Booking } from './workflow';

/** Runs from before check-in ended at their offering's end without a word on the booking's row. */
export const CHECK_IN_PATCH = 'booking-check-in';

export function registerCheckIn(booking: Booking): void {
  setHandler(checkInBookingUpdate, () => checkIn(booking), { validator: () => assertCheckInAllowed(booking) });
}

function assertCheckInAllowed(booking: Booking): void {
  const { state } = booking;
  // Between the offering's end and the no-show being recorded the status still says confirmed.
  const status = booking.offeringEnded && state.status === 'confirmed' ? 'no_show' : state.status;
  const refusal = checkInRefusal(status, state.checkedInAt ?? null);
  if (refusal !== null) throw ApplicationFailure.nonRetryable(refusal, 'BookingCheckInRefused');
  if (state.operation !== null) {
    throw ApplicationFailure.nonRetryable(`a ${state.operation} of this booking is in progress`, 'BookingBusy');
  }
}

async function checkIn(booking: Booking): Promise<CheckInResult> {
  const { state, input } = booking;
  // The status changes at once: a second check-in, a cancel or a reschedule is refused from now on.
  const checkedInAt = now().toISOString();
  state.status = 'checked_in';
  state.checkedInAt = checkedInAt;
  await bookingSteps.checkInBooking({ bookingId: input.bookingId, checkedInAt });
  return { checkedInAt };
}

/** At the offering's end (its changes all finished): a booking still only confirmed is a no-show. */
export async function recordNoShow(booking: Booking): Promise<void> {
  if (booking.state.status !== 'confirmed' || !patched(CHECK_IN_PATCH)) return;
  await bookingSteps.markNoShow({ bookingId: booking.input.bookingId });
  booking.state.status = 'no_show';
}
