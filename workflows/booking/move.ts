/**
 * A reschedule to another offering of the booking's series (another date or time of the same
 * event or service), as a saga of its own like booking/reschedule.ts: the series rules first
 * (domain/move.ts), then the new units are claimed in the target before the old are let go, a
 * higher price is charged first and refunded if the switch fails, one transaction hands the
 * booking to the target, and a lower price is refunded only once it has. The booking's terms
 * are then the target's: its start, end, cancellation policy and reminders.
 *
 * Money steps and their idempotency: the top-up is keyed by the reschedule's cycle number
 * (`chargeIdempotencyKey(workflowId, cycle, 1)`, as a same-offering reschedule's), its undo
 * refund by `<workflowId>/reschedule-<cycle>/undo-refund`, and a lower price's refund by
 * `<workflowId>/reschedule-<cycle>/refund-<paymentId>`; each cycle is used by one update only.
 */
import { ApplicationFailure, upsertSearchAttributes, uuid4 } from '@temporalio/workflow';
import type { BookingTerms } from '../../activities/booking';
import type { MoveOfferingFacts } from '../../activities/booking-move';
import type { BookingCharge } from '../../domain/booking';
import { formatMoney } from '../../domain/money';
import { moveCurrencyRefusal, moveRefusal, moveWindowRefusal, type MoveOffering } from '../../domain/move';
import { bookingSteps, claimUnits, releaseHold } from '../activity-options';
import { now } from '../clock';
import { notifyQuietly } from '../notify';
import { OfferingIdAttribute } from '../search-attributes';
import { Compensations } from './compensations';
import type { RescheduleRequest, RescheduleResult } from './contract';
import { chargeTopUp, RESCHEDULE_CLAIM_MS } from './reschedule';
import type { Booking } from './workflow';

type MoveRequest = RescheduleRequest & { offeringId: string };

/**
 * Whether a reschedule request moves the booking to another offering. No history recorded before
 * moves existed carries an `offeringId`, so this branch needs no patch: every such run takes
 * reschedule() and emits exactly the commands it always did.
 */
export function isMove(booking: Booking, request: RescheduleRequest): request is MoveRequest {
  return typeof request.offeringId === 'string' && request.offeringId !== booking.terms?.offeringId;
}

/**
 * The update validator's part of a move: past the free-cancellation window the booking may not
 * leave its offering. Refused before acceptance, so such a refusal leaves no event in the history.
 */
export function assertMoveAllowed(booking: Booking): void {
  const terms = booking.terms;
  if (!terms) return;
  const refusal = moveWindowRefusal({ startsAt: new Date(terms.startsAt), policy: terms.policy }, now());
  if (refusal) throw ApplicationFailure.nonRetryable(refusal.detail, 'MoveNotAllowed', refusal);
}

export async function moveToOffering(booking: Booking, request: MoveRequest): Promise<RescheduleResult> {
  const { state } = booking;
  state.operation = 'reschedule';
  booking.reschedules += 1;
  const cycle = booking.reschedules;
  const undo = new Compensations();
  try {
    return await move(booking, request, cycle, undo);
  } catch (err) {
    await undo.runInReverse();
    throw err;
  } finally {
    state.operation = null;
  }
}

async function move(booking: Booking, request: MoveRequest, cycle: number, undo: Compensations): Promise<RescheduleResult> {
  const { state, input, workflowId } = booking;
  const from = booking.terms!;
  const { offeringId, unitIds } = request;
  const target = await bookingSteps.readMoveTarget({ fromOfferingId: from.offeringId, toOfferingId: offeringId });
  if (!target) return { status: 'unknown_offering', offeringId };
  // The booking's own start and policy are the ones its workflow holds; the series is the row's.
  const current = { ...moveOffering(target.from), startsAt: new Date(from.startsAt), policy: from.policy };
  const refusal = moveRefusal(current, moveOffering(target.to), now());
  if (refusal) return { status: 'refused', refusal };

  // The old units are in another offering: nothing of this claim is released in the target, so
  // the customer's fair use there counts all of the new units.
  const holdId = uuid4();
  const expiresAt = new Date(now().getTime() + RESCHEDULE_CLAIM_MS).toISOString();
  const claim = await claimUnits({ holdId, userId: input.userId, offeringId, unitIds, expiresAt, workflowId });
  if (claim.status === 'conflict') return { status: 'unavailable', unavailableUnitIds: claim.unavailableUnitIds };
  if (claim.status === 'rejected') return { status: 'rejected', unknownUnitIds: claim.unknownUnitIds };
  if (claim.status === 'limited') return { status: 'limited', refusal: claim.refusal };
  if (claim.status === 'closed') return { status: 'closed', reason: claim.reason };
  undo.add(async () => void (await releaseHold({ holdId, reason: 'released' })));

  const price = await bookingSteps.priceUnits({ offeringId, unitIds });
  const otherCurrency = moveCurrencyRefusal(state.currency, price.currency);
  if (otherCurrency) {
    await undo.runInReverse();
    return { status: 'refused', refusal: otherCurrency };
  }
  const difference = price.amount - state.amount;
  let topUp: BookingCharge | undefined;
  if (difference > 0) {
    const description = `${target.to.name}: moved from ${from.offeringName}`;
    const paid = await chargeTopUp(booking, undo, { amount: difference, paymentMethod: request.paymentMethod, cycle, description });
    if (paid.status === 'declined') return paid;
    topUp = paid.charged;
  }

  const switched = await bookingSteps.moveBooking({
    bookingId: input.bookingId,
    fromOfferingId: from.offeringId,
    expectedUnitIds: [...state.unitIds],
    offeringId,
    unitIds,
    holdId,
    amount: price.amount,
  });
  if (switched.status !== 'moved') {
    await undo.runInReverse();
    if (switched.status === 'conflict') return { status: 'conflict' };
    return { status: 'refused', refusal: { code: 'offering_canceled', detail: `offering ${offeringId} was canceled` } };
  }
  state.unitIds = [...unitIds];
  state.amount = price.amount;
  if (topUp) state.charges.push(topUp);
  // Replaced whole: whatever plans from the terms (reminders, the end-of-booking wait) follows the new offering.
  const terms: BookingTerms = { ...from, ...switched.terms, unitIds: [...unitIds], amount: price.amount };
  booking.terms = terms;
  // Support staff find a booking by its offering in the Temporal UI: the one it is in now.
  upsertSearchAttributes([{ key: OfferingIdAttribute, value: offeringId }]);
  // Money goes back only once the booking is the cheaper offering's.
  if (difference < 0) await booking.refundQuietly(-difference, `reschedule-${cycle}`, 'Moved to a lower price');
  await notifyMoved(booking, from.offeringName, cycle);
  return { status: 'rescheduled', amount: price.amount, difference };
}

function moveOffering(facts: MoveOfferingFacts): MoveOffering {
  return { id: facts.id, seriesId: facts.seriesId, status: facts.status, startsAt: new Date(facts.startsAt) };
}

async function notifyMoved(booking: Booking, fromName: string, cycle: number): Promise<void> {
  const { state } = booking;
  const { offeringName, startsAt } = booking.terms!;
  await notifyQuietly(
    booking.notice(
      'booking_rescheduled',
      `rescheduled-${cycle}`,
      `Booking moved: ${offeringName} on ${startsAt}`,
      `Your booking for ${fromName} is moved to ${offeringName} on ${startsAt}: ${state.unitIds.length} unit(s) for ${formatMoney(state.amount, state.currency)}.`,
    ),
  );
}
