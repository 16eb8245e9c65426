/**
 * A reschedule of a confirmed booking to other units of its offering, as a saga of its own: the
 * new units are claimed before the old are let go, a higher price is charged first and refunded
 * if the swap fails, and a lower price is refunded only once the cheaper units are the booking's.
 */
import { log, uuid4 } from '@temporalio/workflow';
import { bookingChargeOf, type BookingCharge } from '../../domain/booking';
import { formatMoney } from '../../domain/money';
import { bookingSteps, claimUnits, releaseHold } from '../activity-options';
import { now } from '../clock';
import { notifyQuietly } from '../notify';
import { Compensations } from './compensations';
import type { RescheduleRequest, RescheduleResult } from './contract';
import type { Booking } from './workflow';

// A reschedule's claim on its new units is released by the booking workflow itself; the expiry is informational.
export const RESCHEDULE_CLAIM_MS = 15 * 60 * 1000;

export async function reschedule(booking: Booking, request: RescheduleRequest): Promise<RescheduleResult> {
  const { state, input, workflowId } = booking;
  state.operation = 'reschedule';
  booking.reschedules += 1;
  const cycle = booking.reschedules;
  const terms = booking.terms!;
  const undo = new Compensations();
  try {
    const expectedUnitIds = [...state.unitIds];
    const added = request.unitIds.filter((id) => !expectedUnitIds.includes(id));
    let holdId: string | null = null;
    if (added.length > 0) {
      const newHoldId = uuid4();
      holdId = newHoldId;
      const claim = await claimUnits({
        holdId: newHoldId,
        userId: input.userId,
        offeringId: terms.offeringId,
        unitIds: added,
        expiresAt: new Date(now().getTime() + RESCHEDULE_CLAIM_MS).toISOString(),
        workflowId,
        // The units the booking lets go make room under maxUnitsPerCustomer for the ones it gains.
        releasingUnitIds: expectedUnitIds.filter((id) => !request.unitIds.includes(id)),
      });
      if (claim.status === 'conflict') return { status: 'unavailable', unavailableUnitIds: claim.unavailableUnitIds };
      if (claim.status === 'rejected') return { status: 'rejected', unknownUnitIds: claim.unknownUnitIds };
      if (claim.status === 'limited') return { status: 'limited', refusal: claim.refusal };
      if (claim.status === 'closed') return { status: 'closed', reason: claim.reason };
      undo.add(async () => void (await releaseHold({ holdId: newHoldId, reason: 'released' })));
    }

    const price = await bookingSteps.priceUnits({ offeringId: terms.offeringId, unitIds: request.unitIds });
    const difference = price.amount - state.amount;
    let topUp: BookingCharge | undefined;
    if (difference > 0) {
      const paid = await chargeTopUp(booking, undo, {
        amount: difference,
        paymentMethod: request.paymentMethod,
        cycle,
        description: `${terms.offeringName}: reschedule`,
      });
      if (paid.status === 'declined') return paid;
      topUp = paid.charged;
    }

    const swapped = await bookingSteps.swapBookingUnits({
      bookingId: input.bookingId,
      expectedUnitIds,
      unitIds: request.unitIds,
      holdId,
      amount: price.amount,
    });
    if (!swapped) {
      await undo.runInReverse();
      return { status: 'conflict' };
    }
    state.unitIds = [...request.unitIds];
    state.amount = price.amount;
    if (topUp) state.charges.push(topUp);
    // Money goes back only once the cheaper units are the booking's.
    if (difference < 0) await booking.refundQuietly(-difference, `reschedule-${cycle}`, 'Rescheduled to a lower price');
    await notifyRescheduled(booking, cycle);
    return { status: 'rescheduled', amount: price.amount, difference };
  } catch (err) {
    await undo.runInReverse();
    throw err;
  } finally {
    state.operation = null;
  }
}

/**
 * Charges a reschedule's (or move's) higher price and registers its refund with `undo`; a declined
 * charge runs `undo` at once (the claim on the new units goes back) and says why. The charge is
 * keyed by the reschedule's `cycle` (chargeIdempotencyKey), so a retried attempt charges once.
 */
export async function chargeTopUp(
  booking: Booking,
  undo: Compensations,
  topUp: { amount: number; paymentMethod: string | undefined; cycle: number; description: string },
): Promise<{ status: 'charged'; charged: BookingCharge } | { status: 'declined'; failureCode: string | null }> {
  const paid = await booking.charge(topUp.amount, topUp.paymentMethod ?? booking.input.paymentMethod, topUp.cycle, topUp.description);
  if (paid.status !== 'succeeded') {
    await undo.runInReverse();
    return { status: 'declined', failureCode: paid.failureCode };
  }
  const charged = bookingChargeOf(paid, topUp.amount);
  undo.add(() => refundTopUp(booking, charged, topUp.cycle));
  return { status: 'charged', charged };
}

/** Gives back a reschedule's top-up when the swap did not happen; a failure is left for staff. */
async function refundTopUp(booking: Booking, charged: BookingCharge, cycle: number): Promise<void> {
  try {
    // To the card, and what the credit balance paid of it back to the balance.
    await booking.giveBack(charged, charged.amount, `${booking.workflowId}/reschedule-${cycle}/undo-refund`, 'Reschedule could not be completed');
  } catch (err) {
    log.error('refund of a reschedule top-up failed; needs a person', { error: String(err) });
  }
}

async function notifyRescheduled(booking: Booking, cycle: number): Promise<void> {
  const { state } = booking;
  const name = booking.terms!.offeringName;
  await notifyQuietly(
    booking.notice(
      'booking_rescheduled',
      `rescheduled-${cycle}`,
      `Booking changed: ${name}`,
      `Your booking for ${name} now has ${state.unitIds.length} unit(s) for ${formatMoney(state.amount, state.currency)}.`,
    ),
  );
}
