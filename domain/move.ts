/**
 * Moving a booking to another offering of its series (another date or time of the same event or
 * service): which target it may move to, and until when. Pure: the caller passes the time.
 */
import { refundTier, type CancellationPolicy } from './booking';
import { offeringClosedReason, type OfferingStatus } from './offering';

/** Why a move is refused; the API answers each with a 409 that names it as `reason`. */
export type MoveRefusalCode = 'not_in_series' | 'other_series' | 'offering_canceled' | 'offering_started' | 'outside_free_window' | 'other_currency';

export interface MoveRefusal {
  code: MoveRefusalCode;
  detail: string;
}

/** What the rules need of an offering a booking moves to (or from). */
export interface MoveOffering {
  id: string;
  seriesId: string | null;
  status: OfferingStatus;
  startsAt: Date;
}

/**
 * Why a booking may not leave its current offering at `now`, or undefined when it may. A move
 * happens "within the cancellation window's rules": only while a cancel would refund in full, so
 * moving is never a way round a late-cancellation fee. Without a `freeUntil` the full refund, and
 * so moving, lasts until the offering starts.
 */
export function moveWindowRefusal(from: { startsAt: Date; policy: CancellationPolicy }, now: Date): MoveRefusal | undefined {
  if (refundTier(from.startsAt, from.policy, now) === 'full') return undefined;
  return {
    code: 'outside_free_window',
    detail:
      from.policy.freeUntil === null
        ? 'the booking’s offering has started: it can no longer be moved'
        : `a booking can be moved only while its cancellation is free (until ${from.policy.freeUntil} before its offering starts)`,
  };
}

/**
 * Why a booking of `from` may not move to `to` at `now`, or undefined when it may: the target must
 * share the booking's (non-null) series, still be scheduled and not have started.
 */
export function moveTargetRefusal(from: Pick<MoveOffering, 'seriesId'>, to: MoveOffering, now: Date): MoveRefusal | undefined {
  if (from.seriesId === null)
    return { code: 'not_in_series', detail: 'the booking’s offering belongs to no series: it has no other dates to move to' };
  if (to.seriesId !== from.seriesId) return { code: 'other_series', detail: `offering ${to.id} is not of the booking’s series` };
  const closed = offeringClosedReason(to, now);
  if (closed) return { code: to.status === 'canceled' ? 'offering_canceled' : 'offering_started', detail: `offering ${to.id}: ${closed}` };
  return undefined;
}

/** Both rules: the target first (it names what is wrong with the request), then the window. */
export function moveRefusal(from: MoveOffering & { policy: CancellationPolicy }, to: MoveOffering, now: Date): MoveRefusal | undefined {
  return moveTargetRefusal(from, to, now) ?? moveWindowRefusal(from, now);
}

/** Prices in two currencies have no difference to charge or refund: such a move is refused. */
export function moveCurrencyRefusal(bookingCurrency: string, targetCurrency: string): MoveRefusal | undefined {
  if (bookingCurrency === targetCurrency) return undefined;
  return { code: 'other_currency', detail: `the booking is paid in ${bookingCurrency}; the new units are priced in ${targetCurrency}` };
}
