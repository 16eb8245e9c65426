/**
 * What the API, tests and the bench may know of a subscription's workflow: its input, messages
 * and answers. Imported by ordinary Node code too, so nothing here runs workflow code.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { DeclineKind } from '../../domain/payment';
import type { SubscriptionState } from '../../domain/subscription-state';
import type { PlanTerms, SubscriptionSnapshot } from '../../domain/subscription';

export type { SubscriptionState } from '../../domain/subscription-state';
export { initialState } from '../../domain/subscription-state';

export interface SubscriptionWorkflowInput {
  subscriptionId: string;
  userId: string;
  /** The plan's terms at subscribe time; later plan edits do not change a running subscription. */
  plan: PlanTerms;
  paymentMethod: string;
  /** How long a charge may wait for its webhook (ISO-8601, e.g. `P1D`) before it counts as failed. */
  pendingPaymentTimeout: string;
  /** PAYMENT_ACTION_URL: where a customer completes a charge that needs them; absent in older runs. */
  paymentActionUrl?: string;
  /** The task queue of gateway calls; `payments` when absent (runs started before it was named). */
  paymentsTaskQueue?: string;
  /** Set by the workflow when it continues as new; starters leave it out. */
  carried?: SubscriptionState;
}

/** What the `activation` update answers once the first charge (or the trial) has been decided. */
export interface ActivationResult {
  /**
   * `active` or `trialing`: subscribed. `declined`: the first charge failed and the workflow has
   * ended with status `incomplete`. `pending`: the gateway wants customer action; the workflow
   * waits for the payment webhook (status `incomplete` until then).
   */
  outcome: 'active' | 'trialing' | 'declined' | 'pending';
  subscription: SubscriptionSnapshot;
  payment: { paymentId: string; status: 'succeeded' | 'pending' | 'failed'; failureCode: string | null; decline: DeclineKind | null } | null;
}

export interface CancelRequest {
  /** `true`: keep the paid period and end at its end, with no further charge. `false`: end now. */
  atPeriodEnd: boolean;
}

export interface PaymentMethodChange {
  paymentMethod: string;
}

export interface GraceExtension {
  /** ISO-8601 duration added to the grace period's end, e.g. `P3D`. */
  by: string;
}

/** Waits for the first charge's outcome; the API sends it with the start (update-with-start). */
export const activationUpdate = defineUpdate<ActivationResult>('activation');
/** Cancels now or at period end; answers the subscription after the change is recorded. */
export const cancelSubscriptionUpdate = defineUpdate<SubscriptionSnapshot, [CancelRequest]>('cancel');
/** A new payment method; while past due it is charged at once and the answer includes that retry. */
export const updatePaymentMethodUpdate = defineUpdate<SubscriptionSnapshot, [PaymentMethodChange]>('updatePaymentMethod');
/** The same change without waiting for it, for senders that cannot wait (a gateway webhook). */
export const paymentMethodUpdatedSignal = defineSignal<[PaymentMethodChange]>('paymentMethodUpdated');
/** Staff: charge the unpaid period now, even after a hard decline. No effect unless past due. */
export const retryPaymentNowSignal = defineSignal('retryPaymentNow');
/** Staff: give a past-due customer more time before expiry. No effect unless past due. */
export const extendGraceSignal = defineSignal<[GraceExtension]>('extendGrace');
/** Everything a person needs to know about the subscription right now. */
export const subscriptionStateQuery = defineQuery<SubscriptionSnapshot>('state');
