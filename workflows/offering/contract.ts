/**
 * What the API and tests may know of an offering's cancellation workflow
 * (`offering-cancel-<offeringId>`): its input, progress and messages. Imported by ordinary Node
 * code too, so nothing here runs workflow code.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';

export interface OfferingCancellationInput {
  offeringId: string;
  reason: string;
  /** Set by continue-as-new: the offering is canceled, its holds and waitlist done; bookings go on from `afterBookingId`. */
  resume?: { canceled: CanceledOffering; afterBookingId: string | null; progress: OfferingCancellationProgress };
}

export interface OfferingCancellationProgress {
  phase: 'canceling_offering' | 'releasing_holds' | 'closing_waitlist' | 'refunding_bookings' | 'done';
  /** Confirmed and checked-in bookings when the refunds began. */
  total: number;
  /** Refunded in full and canceled. */
  canceled: number;
  /** Found already canceled, failed or ended: nothing to do. */
  skipped: number;
  /** Their refund failed at the gateway: staff finish them (the booking's workflow logged it). */
  failed: number;
  /** Minor units refunded by this cancellation. */
  refundedAmount: number;
  holdsReleased: number;
  waitlistEntriesClosed: number;
}

/** The offering as the first step left it: canceled, at that instant, for that reason. */
export interface CanceledOffering {
  offeringId: string;
  canceledAt: string;
  cancelReason: string;
}

export function offeringCancellationWorkflowId(offeringId: string): string {
  return `offering-cancel-${offeringId}`;
}

/** Sent with the start (update-with-start): answers once the offering is marked canceled. */
export const offeringCanceledUpdate = defineUpdate<CanceledOffering>('offeringCanceled');
export const offeringCancellationProgressQuery = defineQuery<OfferingCancellationProgress>('progress');

/** What one booking's cancelByBusiness came to, as the cancellation counts it. */
export type BookingCancelOutcome = { status: 'canceled'; refundedAmount: number } | { status: 'skipped' } | { status: 'failed'; error: string };
