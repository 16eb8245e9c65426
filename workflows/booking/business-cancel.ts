/**
 * The business cancels a booking with its offering (the offering's cancellation workflow sends
 * the cancelByBusiness update to each booking): a full refund of whatever is left, whatever the
 * policy tiers say, and the booking canceled. A new update handler: runs from before it replay
 * unchanged, since their histories never carry it.
 */
import { condition, setHandler } from '@temporalio/workflow';
import { refundableAmount, totalRefunded } from '../../domain/booking';
import { formatMoney } from '../../domain/money';
import { bookingSteps } from '../activity-options';
import { notifyQuietly } from '../notify';
import { cancelByBusinessUpdate, type BusinessCancelRequest, type BusinessCancelResult } from './contract';
import type { Booking } from './workflow';

/** Refund keys `<workflowId>/business-cancel/refund-<paymentId>`: one refund per payment however often this runs. */
const REFUND_PURPOSE = 'business-cancel';

export function registerBusinessCancel(booking: Booking): void {
  setHandler(cancelByBusinessUpdate, (request) => cancelByBusiness(booking, request));
}

async function cancelByBusiness(booking: Booking, request: BusinessCancelRequest): Promise<BusinessCancelResult> {
  const { state } = booking;
  // A saga still deciding, a reschedule or a staff refund finishes first: the refund then covers
  // what they charged or gave back, and the status is the one they left.
  await condition(() => state.status !== 'pending' && state.operation === null);
  if (state.status !== 'confirmed' && state.status !== 'checked_in') return { status: 'skipped', bookingStatus: state.status };
  state.operation = 'cancel';
  try {
    const reason = request?.reason?.trim() || 'the offering was canceled';
    // The charges less what staff and the gateway's dashboard already gave back: all of it goes now.
    const refundable = refundableAmount(booking.refundableCharges());
    if (refundable > 0) await booking.refund(refundable, REFUND_PURPOSE, `Offering canceled: ${reason}`);
    const refunded = totalRefunded(booking.refundableCharges());
    state.refundedAmount = refunded;
    // Idempotent: a booking already canceled is left as it is (the row is locked while it is decided).
    await bookingSteps.cancelBooking({ bookingId: booking.input.bookingId, refundedAmount: refunded });
    state.status = 'canceled';
    const name = booking.terms?.offeringName ?? 'your booking';
    await notifyQuietly(
      booking.notice(
        'booking_canceled_by_business',
        'canceled-by-business',
        `Canceled by the organiser: ${name}`,
        `We are sorry: ${name} was canceled (${reason}). Your booking is canceled and ` +
          `${formatMoney(refundable, state.currency)} is refunded in full` +
          (refunded > refundable ? ` (${formatMoney(refunded, state.currency)} in all, with earlier refunds).` : '.'),
      ),
    );
    return { status: 'canceled', refundedAmount: refundable, totalRefunded: refunded };
  } finally {
    state.operation = null;
  }
}
