/**
 * What the API and tests may know of a booking's workflow: its input, state, messages and
 * answers. Imported by ordinary Node code too, so nothing here runs workflow code.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { BookingCharge, BookingFailureReason, BookingStatus, RefundTier } from '../../domain/booking';
import type { HoldLimitRefusal } from '../../domain/hold';
import type { MoveRefusal } from '../../domain/move';

export interface BookingWorkflowInput {
  bookingId: string;
  holdId: string;
  userId: string;
  /** A payment method token (`pm_…`); kept for the price difference of a reschedule. */
  paymentMethod: string;
  /** ISO-8601 duration a pending charge may wait for its webhook before it counts as failed. */
  pendingPaymentTimeout: string;
  /** The task queue of gateway calls; `payments` when absent. */
  paymentsTaskQueue?: string;
}

/** The saga's answer to "is it booked?", as soon as there is one. */
export type BookingDecision = { status: 'confirmed' } | { status: 'awaiting_payment' } | { status: 'failed'; reason: BookingFailureReason };

export interface BookingState {
  bookingId: string;
  status: BookingStatus;
  failureReason: BookingFailureReason | null;
  awaitingPayment: boolean;
  unitIds: string[];
  amount: number;
  currency: string;
  refundedAmount: number;
  charges: BookingCharge[];
  /** When staff checked the booking in (the workflow's clock); absent until then. */
  checkedInAt?: string;
  /** A cancel, reschedule or staff refund being carried out; others wait until it is done. */
  operation: 'cancel' | 'reschedule' | 'refund' | null;
}

export interface CancelResult {
  tier: RefundTier;
  refundedAmount: number;
}

export interface RescheduleRequest {
  /** The booking's new units: of `offeringId` when given, else of its current offering. */
  unitIds: string[];
  /** Pays a higher price; the booking's own payment method when absent. */
  paymentMethod?: string;
  /**
   * Another offering of the booking's series to move to (booking/move.ts). Absent, or the
   * booking's own offering: other units of the same offering, as before moves existed.
   */
  offeringId?: string;
}

export type RescheduleResult =
  | { status: 'rescheduled'; amount: number; difference: number }
  | { status: 'unavailable'; unavailableUnitIds: string[] }
  | { status: 'rejected'; unknownUnitIds: string[] }
  | { status: 'limited'; refusal: HoldLimitRefusal }
  | { status: 'declined'; failureCode: string | null }
  /** The offering was canceled: its units take no new claims. */
  | { status: 'closed'; reason: string }
  | { status: 'conflict' }
  /** A move the series rules refuse (domain/move.ts): nothing changed. */
  | { status: 'refused'; refusal: MoveRefusal }
  /** A move to an offering that does not exist: nothing changed. */
  | { status: 'unknown_offering'; offeringId: string };

/** Sent with the workflow's start (update-with-start): answers once the booking is decided. */
export const bookingDecisionUpdate = defineUpdate<BookingDecision>('bookingDecision');
export const cancelBookingUpdate = defineUpdate<CancelResult>('cancelBooking');
export const rescheduleBookingUpdate = defineUpdate<RescheduleResult, [RescheduleRequest]>('rescheduleBooking');
export const bookingStateQuery = defineQuery<BookingState>('state');

export interface StaffRefundRequest {
  /** Minor units; all that is left to refund when absent. */
  amount?: number;
  reason: string;
}

export interface StaffRefundResult {
  refundedAmount: number;
  /** Refunded over the booking's charges so far, this refund included. */
  totalRefunded: number;
}

/**
 * Staff: give money back on a confirmed booking (goodwill, a complaint) without canceling it,
 * through the payments that paid for it and never more than they left to refund.
 */
export const staffRefundUpdate = defineUpdate<StaffRefundResult, [StaffRefundRequest]>('staffRefund');

export interface CheckInResult {
  checkedInAt: string;
}

/**
 * Staff: the booking's holder is at the door. Refused (`BookingCheckInRefused`, saying why) unless
 * the booking is confirmed and its offering has not ended; the booking is then `checked_in`.
 */
export const checkInBookingUpdate = defineUpdate<CheckInResult>('checkIn');

export interface BusinessCancelRequest {
  /** Why the business canceled the offering; told to the customer. */
  reason: string;
}

export type BusinessCancelResult =
  /** `refundedAmount` given back now; `totalRefunded` over the booking's charges, earlier refunds included. */
  | { status: 'canceled'; refundedAmount: number; totalRefunded: number }
  /** Not confirmed or checked in (already canceled, failed, a no-show): nothing was done. */
  | { status: 'skipped'; bookingStatus: BookingStatus };

/**
 * The business canceled the booking's offering: everything still refundable over all its charges
 * (checkout and reschedule top-ups, less what staff or the gateway's dashboard refunded) goes
 * back, the booking is canceled and its customer told. Waits for a change in progress; repeating
 * it (the same updateId, or another) refunds nothing more.
 */
export const cancelByBusinessUpdate = defineUpdate<BusinessCancelResult, [BusinessCancelRequest]>('cancelByBusiness');
