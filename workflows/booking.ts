import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  defineQuery,
  defineUpdate,
  getExternalWorkflowHandle,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  uuid4,
  workflowInfo,
  type RetryPolicy,
} from '@temporalio/workflow';
import type { BookingActivities, BookingTerms } from '../activities/booking';
import type { HoldActivities } from '../activities/hold';
import type { NotificationActivities } from '../activities/notification';
import type { PaymentActivities } from '../activities/payment';
import {
  allocateRefund,
  applyRefund,
  cancellationRefund,
  describeBookingFailure,
  type BookingCharge,
  type BookingFailureReason,
  type BookingStatus,
  type RefundTier,
} from '../domain/booking';
import { holdWorkflowId } from '../domain/hold';
import { formatMoney } from '../domain/money';
import type { NotificationInput } from '../domain/notification';
import {
  chargeIdempotencyKey,
  classifyDecline,
  PAYMENT_TIMEOUT_FAILURE_CODE,
  type ChargeResult,
  type PaymentSettlement,
} from '../domain/payment';
import { durationToMilliseconds } from '../domain/period';
import { bookingDetails } from '../domain/workflow-descriptions';
import { holdSettledSignal } from './hold';
import { CANCEL_PENDING_AT_TIMEOUT_PATCH, CANCEL_PENDING_PAYMENT_OPTIONS, paymentSettledSignal } from './payment';
import { BookingStatusAttribute, upsertStatusAttribute } from './search-attributes';

export interface BookingWorkflowInput {
  bookingId: string;
  holdId: string;
  userId: string;
  /** A payment method token (`pm_…`); kept for the price difference of a reschedule. */
  paymentMethod: string;
  /** ISO-8601 duration a pending charge may wait for its webhook before it counts as failed. */
  pendingPaymentTimeout: string;
}

/** The saga's answer to "is it booked?", as soon as there is one. */
export type BookingDecision =
  | { status: 'confirmed' }
  | { status: 'awaiting_payment' }
  | { status: 'failed'; reason: BookingFailureReason };

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
  /** A cancel, reschedule or staff refund being carried out; others wait until it is done. */
  operation: 'cancel' | 'reschedule' | 'refund' | null;
}

export interface CancelResult {
  tier: RefundTier;
  refundedAmount: number;
}

export interface RescheduleRequest {
  unitIds: string[];
  /** Pays a higher price; the booking's own payment method when absent. */
  paymentMethod?: string;
}

export type RescheduleResult =
  | { status: 'rescheduled'; amount: number; difference: number }
  | { status: 'unavailable'; unavailableUnitIds: string[] }
  | { status: 'rejected'; unknownUnitIds: string[] }
  | { status: 'declined'; failureCode: string | null }
  | { status: 'conflict' };

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

const PROJECTION_RETRY: RetryPolicy = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' };

const bookingSteps = proxyActivities<BookingActivities>({
  startToCloseTimeout: '30 seconds',
  retry: {
    ...PROJECTION_RETRY,
    nonRetryableErrorTypes: ['HoldNotFound', 'BookingNotFound', 'BookingNotConfirmed', 'UnknownUnits', 'MixedCurrencyError'],
  },
});

const { claimUnits, releaseHold } = proxyActivities<HoldActivities>({
  startToCloseTimeout: '30 seconds',
  retry: PROJECTION_RETRY,
});

// Unlimited attempts: every retry carries the same idempotency key, so it cannot charge or refund twice.
const { chargePayment, refundPayment, settlePayment } = proxyActivities<PaymentActivities>({
  startToCloseTimeout: '1 minute',
  retry: { ...PROJECTION_RETRY, nonRetryableErrorTypes: ['GatewayRequestRejectedError'] },
});
const { cancelPendingPayment } = proxyActivities<PaymentActivities>(CANCEL_PENDING_PAYMENT_OPTIONS);

const { notify } = proxyActivities<NotificationActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumAttempts: 5, nonRetryableErrorTypes: ['UserNotFound'] },
});

// A reschedule's claim on its new units is released by this workflow itself; the expiry is informational.
const RESCHEDULE_CLAIM_MS = 15 * 60 * 1000;

class SagaFailure extends Error {
  constructor(readonly reason: BookingFailureReason) {
    super(describeBookingFailure(reason));
  }
}

type Compensation = () => Promise<void>;

/**
 * One booking (`booking-<id>`) from checkout to the end of its offering. First a saga —
 * subscription check, charge, confirm, notify — where each step that changes the world
 * registers its compensation and a failure runs them in reverse (refund, release the units,
 * mark the booking failed, notify). A confirmed booking then waits until its offering ends,
 * taking a cancel (refund by policy) or reschedules (each a saga of its own) as updates.
 */
export async function bookingWorkflow(input: BookingWorkflowInput): Promise<BookingState> {
  const { workflowId } = workflowInfo();
  const state: BookingState = {
    bookingId: input.bookingId,
    status: 'pending',
    failureReason: null,
    awaitingPayment: false,
    unitIds: [],
    amount: 0,
    currency: '',
    refundedAmount: 0,
    charges: [],
    operation: null,
  };
  const settlements = new Map<string, PaymentSettlement>();
  let terms: BookingTerms | undefined;
  let reschedules = 0;
  let cancelAttempts = 0;
  let cancellation: (CancelResult & { refundedBefore: number }) | undefined;
  let staffRefunds = 0;

  // Registered before any charge: a payment webhook can arrive before the charge activity returns.
  setHandler(paymentSettledSignal, (settlement) => {
    if (!settlements.has(settlement.paymentId)) settlements.set(settlement.paymentId, settlement);
  });
  setHandler(bookingStateQuery, () => state);
  setHandler(bookingDecisionUpdate, async () => {
    await condition(() => state.status !== 'pending' || state.awaitingPayment);
    return decisionOf(state);
  });
  setHandler(cancelBookingUpdate, cancel, { validator: () => assertChangeable() });
  setHandler(rescheduleBookingUpdate, reschedule, {
    validator: (request) => {
      assertChangeable();
      if (request.unitIds.length === 0) throw ApplicationFailure.nonRetryable('unitIds must not be empty', 'InvalidReschedule');
      if (terms && Date.now() >= Date.parse(terms.startsAt)) {
        throw ApplicationFailure.nonRetryable('the offering has already started', 'OfferingStarted');
      }
    },
  });
  setHandler(staffRefundUpdate, staffRefund, {
    validator: (request) => {
      assertChangeable();
      const refundable = refundableAmount(state.charges);
      const amount = request?.amount ?? refundable;
      if (!Number.isSafeInteger(amount) || amount <= 0 || amount > refundable) {
        throw ApplicationFailure.nonRetryable(`the refund must be from 1 to ${refundable}, what is left of the charges`, 'InvalidRefund');
      }
      if (typeof request?.reason !== 'string' || request.reason.trim() === '') {
        throw ApplicationFailure.nonRetryable('a reason is required', 'InvalidRefund');
      }
    },
  });
  void keepDescribed();

  const confirmed = await book();
  if (!confirmed || !terms) {
    await condition(allHandlersFinished);
    return state;
  }
  await notifyQuietly(customerNotice('booking_confirmed', 'confirmed', `Booking confirmed: ${terms.offeringName}`, confirmationText(terms)));
  await condition(() => state.status === 'canceled', Math.max(1, Date.parse(terms.endsAt) - Date.now()));
  await condition(allHandlersFinished);
  return state;

  async function book(): Promise<boolean> {
    const compensations: Compensation[] = [];
    try {
      terms = await step('hold_unavailable', () =>
        bookingSteps.beginBooking({ bookingId: input.bookingId, holdId: input.holdId, userId: input.userId, workflowId }),
      );
      Object.assign(state, { unitIds: terms.unitIds, amount: terms.amount, currency: terms.currency });
      const bookingTerms = terms;
      compensations.push(() => notifyQuietly(failureNotice(bookingTerms)));
      compensations.push(markFailed);
      compensations.push(releaseTheHold);
      if (!terms.holdActive) throw new SagaFailure('hold_unavailable');

      if (terms.requiresSubscription) {
        const subscribed = await bookingSteps.hasActiveSubscription({ userId: input.userId });
        if (!subscribed) throw new SagaFailure('subscription_required');
      }

      if (terms.amount > 0) {
        const paid = await charge(terms.amount, input.paymentMethod, 0, `${terms.offeringName}: ${terms.unitIds.length} unit(s)`, () => {
          state.awaitingPayment = true;
        });
        if (paid.status !== 'succeeded') {
          throw new SagaFailure(paid.failureCode === PAYMENT_TIMEOUT_FAILURE_CODE ? 'payment_timeout' : 'payment_declined');
        }
        state.charges.push({ paymentId: paid.paymentId, amount: terms.amount, refunded: 0 });
        compensations.push(() => refundQuietly(bookingTerms.amount, 'compensation', 'Booking could not be completed'));
      }

      const outcome = await step('confirm_failed', () =>
        bookingSteps.confirmBooking({ bookingId: input.bookingId, holdId: input.holdId }),
      );
      if (outcome !== 'confirmed') throw new SagaFailure('confirm_failed');
      state.status = 'confirmed';
      state.awaitingPayment = false;
      await tellHoldWorkflow();
      return true;
    } catch (err) {
      if (!(err instanceof SagaFailure)) throw err;
      state.failureReason = err.reason;
      log.warn('booking failed; compensating', { reason: err.reason, compensations: compensations.length });
      if (compensations.length === 0) state.status = 'failed';
      for (const compensate of compensations.reverse()) await compensate();
      return false;
    }
  }

  async function markFailed(): Promise<void> {
    await bookingSteps.failBooking({ bookingId: input.bookingId, reason: state.failureReason! });
    state.status = 'failed';
    state.awaitingPayment = false;
  }

  async function releaseTheHold(): Promise<void> {
    await releaseHold({ holdId: input.holdId, reason: 'released' });
    await tellHoldWorkflow();
  }

  /** The hold's own workflow stops waiting for its TTL: this booking has settled the hold. */
  async function tellHoldWorkflow(): Promise<void> {
    try {
      await getExternalWorkflowHandle(holdWorkflowId(input.holdId)).signal(holdSettledSignal);
    } catch (err) {
      // Already finished (its TTL fired): there is nobody left to tell.
      log.info('hold workflow not signalled', { error: String(err) });
    }
  }

  /**
   * One charge of the booking; a pending one waits for the payment webhook (`onPending` is told)
   * and past the pending timeout is canceled at the gateway, whose answer is the result.
   */
  async function charge(amount: number, paymentMethod: string, cycle: number, description: string, onPending?: () => void): Promise<ChargeResult> {
    let result: ChargeResult;
    try {
      result = await chargePayment({
        kind: 'booking',
        userId: input.userId,
        bookingId: input.bookingId,
        amount,
        currency: state.currency,
        paymentMethod,
        idempotencyKey: chargeIdempotencyKey(workflowId, cycle, 1),
        cycle,
        attempt: 1,
        description,
      });
    } catch (err) {
      // Only a request the gateway refuses outright gets here (every other fault is retried).
      log.warn('charge refused by the gateway', { error: String(err) });
      return { paymentId: '', status: 'failed', gatewayPaymentId: null, failureCode: 'invalid_request', decline: 'hard' };
    }
    if (result.status !== 'pending') return result;

    onPending?.();
    const settledInTime = await condition(
      () => settlements.has(result.paymentId),
      durationToMilliseconds(input.pendingPaymentTimeout),
    );
    if (!settledInTime && patched(CANCEL_PENDING_AT_TIMEOUT_PATCH)) {
      // Canceled so a late authentication cannot take the money; a charge that succeeded first
      // is a success, and the saga goes on to confirm (or refunds it if the units are gone).
      log.warn('pending payment timed out; canceling it', { paymentId: result.paymentId });
      return cancelPendingPayment({ paymentId: result.paymentId });
    }
    const settlement: PaymentSettlement = settlements.get(result.paymentId) ?? {
      paymentId: result.paymentId,
      gatewayPaymentId: result.gatewayPaymentId!,
      status: 'failed',
      failureCode: PAYMENT_TIMEOUT_FAILURE_CODE,
    };
    if (!settledInTime) log.warn('pending payment timed out', { paymentId: result.paymentId });
    await settlePayment(settlement);
    return {
      ...result,
      status: settlement.status,
      failureCode: settlement.status === 'failed' ? settlement.failureCode : null,
      decline: settlement.status === 'failed' ? classifyDecline(settlement.failureCode) : null,
    };
  }

  /** Refunds `amount` over the booking's charges, newest first; throws when a refund fails. */
  async function refund(amount: number, purpose: string, reason: string): Promise<void> {
    for (const part of allocateRefund(state.charges, amount)) {
      const result = await refundPayment({
        paymentId: part.paymentId,
        amount: part.amount,
        idempotencyKey: `${workflowId}/${purpose}/refund-${part.paymentId}`,
        reason,
      });
      if (result.status === 'failed') {
        throw ApplicationFailure.nonRetryable(`the refund of payment ${part.paymentId} failed`, 'RefundFailed');
      }
      state.charges = applyRefund(state.charges, [part]);
    }
  }

  /** A compensation must not stop the ones after it; a refund that cannot be made is left for staff. */
  async function refundQuietly(amount: number, purpose: string, reason: string): Promise<void> {
    try {
      await refund(amount, purpose, reason);
    } catch (err) {
      log.error('refund failed; needs a person', { amount, purpose, error: String(err) });
    }
  }

  async function cancel(): Promise<CancelResult> {
    state.operation = 'cancel';
    cancelAttempts += 1;
    try {
      const bookingTerms = terms!;
      // Computed once: a cancel retried after a failed refund keeps the tier of its first attempt
      // and refunds only what the earlier attempt did not.
      cancellation ??= { ...cancellationRefundOf(bookingTerms), refundedBefore: totalRefunded(state.charges) };
      const outstanding = cancellation.refundedAmount - (totalRefunded(state.charges) - cancellation.refundedBefore);
      // A failed attempt's refund keys hold its failed answer, so each attempt uses keys of its own.
      // What staff refunded before counts towards the policy's refund.
      await refund(Math.min(outstanding, refundableAmount(state.charges)), `cancel-${cancelAttempts}`, 'Booking canceled');
      state.refundedAmount = cancellation.refundedAmount;
      await bookingSteps.cancelBooking({ bookingId: input.bookingId, refundedAmount: state.refundedAmount });
      state.status = 'canceled';
      await notifyQuietly(
        customerNotice(
          'booking_canceled',
          'canceled',
          `Booking canceled: ${bookingTerms.offeringName}`,
          `Your booking for ${bookingTerms.offeringName} is canceled. Refund: ${formatMoney(cancellation.refundedAmount, state.currency)}.`,
        ),
      );
      return { tier: cancellation.tier, refundedAmount: cancellation.refundedAmount };
    } finally {
      state.operation = null;
    }
  }

  async function staffRefund(request: StaffRefundRequest): Promise<StaffRefundResult> {
    state.operation = 'refund';
    staffRefunds += 1;
    try {
      const amount = request.amount ?? refundableAmount(state.charges);
      await refund(amount, `staff-refund-${staffRefunds}`, `Refunded by staff: ${request.reason}`);
      return { refundedAmount: amount, totalRefunded: totalRefunded(state.charges) };
    } finally {
      state.operation = null;
    }
  }

  /**
   * What support staff see in the Temporal UI follows the state: the BookingStatus search
   * attribute and the details line, republished whenever what they say changes.
   */
  async function keepDescribed(): Promise<void> {
    for (;;) {
      const details = bookingDetails({ ...state, offeringName: terms?.offeringName });
      upsertStatusAttribute(BookingStatusAttribute, state.status);
      setCurrentDetails(details);
      await condition(() => bookingDetails({ ...state, offeringName: terms?.offeringName }) !== details);
    }
  }

  function cancellationRefundOf(bookingTerms: BookingTerms): CancelResult {
    const due = cancellationRefund({
      amount: state.amount,
      startsAt: new Date(bookingTerms.startsAt),
      policy: bookingTerms.policy,
      now: new Date(),
    });
    return { tier: due.tier, refundedAmount: due.amount };
  }

  async function reschedule(request: RescheduleRequest): Promise<RescheduleResult> {
    state.operation = 'reschedule';
    reschedules += 1;
    const cycle = reschedules;
    const bookingTerms = terms!;
    const undo: Compensation[] = [];
    const runUndo = async () => {
      for (const compensate of undo.reverse()) await compensate();
    };
    try {
      const expectedUnitIds = [...state.unitIds];
      const added = request.unitIds.filter((id) => !expectedUnitIds.includes(id));
      let holdId: string | null = null;
      if (added.length > 0) {
        holdId = uuid4();
        const newHoldId = holdId;
        const claim = await claimUnits({
          holdId,
          userId: input.userId,
          offeringId: bookingTerms.offeringId,
          unitIds: added,
          expiresAt: new Date(Date.now() + RESCHEDULE_CLAIM_MS).toISOString(),
          workflowId,
        });
        if (claim.status === 'conflict') return { status: 'unavailable', unavailableUnitIds: claim.unavailableUnitIds };
        if (claim.status === 'rejected') return { status: 'rejected', unknownUnitIds: claim.unknownUnitIds };
        undo.push(async () => void (await releaseHold({ holdId: newHoldId, reason: 'released' })));
      }

      const price = await bookingSteps.priceUnits({ offeringId: bookingTerms.offeringId, unitIds: request.unitIds });
      const difference = price.amount - state.amount;
      let topUp: BookingCharge | undefined;
      if (difference > 0) {
        const paid = await charge(difference, request.paymentMethod ?? input.paymentMethod, cycle, `${bookingTerms.offeringName}: reschedule`);
        if (paid.status !== 'succeeded') {
          await runUndo();
          return { status: 'declined', failureCode: paid.failureCode };
        }
        const charged: BookingCharge = { paymentId: paid.paymentId, amount: difference, refunded: 0 };
        topUp = charged;
        undo.push(async () => {
          try {
            await refundPayment({
              paymentId: charged.paymentId,
              amount: charged.amount,
              idempotencyKey: `${workflowId}/reschedule-${cycle}/undo-refund`,
              reason: 'Reschedule could not be completed',
            });
          } catch (err) {
            log.error('refund of a reschedule top-up failed; needs a person', { error: String(err) });
          }
        });
      }

      const swapped = await bookingSteps.swapBookingUnits({
        bookingId: input.bookingId,
        expectedUnitIds,
        unitIds: request.unitIds,
        holdId,
        amount: price.amount,
      });
      if (!swapped) {
        await runUndo();
        return { status: 'conflict' };
      }
      state.unitIds = [...request.unitIds];
      state.amount = price.amount;
      if (topUp) state.charges.push(topUp);
      // Money goes back only once the cheaper units are the booking's.
      if (difference < 0) await refundQuietly(-difference, `reschedule-${cycle}`, 'Rescheduled to a lower price');
      await notifyQuietly(
        customerNotice(
          'booking_rescheduled',
          `rescheduled-${cycle}`,
          `Booking changed: ${bookingTerms.offeringName}`,
          `Your booking for ${bookingTerms.offeringName} now has ${state.unitIds.length} unit(s) for ${formatMoney(state.amount, state.currency)}.`,
        ),
      );
      return { status: 'rescheduled', amount: price.amount, difference };
    } catch (err) {
      await runUndo();
      throw err;
    } finally {
      state.operation = null;
    }
  }

  function assertChangeable(): void {
    if (state.status !== 'confirmed') {
      throw ApplicationFailure.nonRetryable(`the booking is ${state.status}`, 'BookingNotConfirmed');
    }
    if (state.operation !== null) {
      throw ApplicationFailure.nonRetryable(`a ${state.operation} of this booking is in progress`, 'BookingBusy');
    }
  }

  /** A step whose failure (after its retries) means the saga gives up for `reason`. */
  async function step<T>(reason: BookingFailureReason, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      log.warn('booking step failed', { reason, error: String(err) });
      throw new SagaFailure(reason);
    }
  }

  function customerNotice(kind: NotificationInput['kind'], event: string, subject: string, body: string): NotificationInput {
    return { userId: input.userId, bookingId: input.bookingId, kind, subject, body, dedupeKey: `${workflowId}/notify/${event}` };
  }

  function failureNotice(bookingTerms: BookingTerms): NotificationInput {
    return customerNotice(
      'booking_failed',
      'failed',
      `Booking not completed: ${bookingTerms.offeringName}`,
      `Your booking for ${bookingTerms.offeringName} could not be completed. ${describeBookingFailure(state.failureReason!)}`,
    );
  }

  function confirmationText(bookingTerms: BookingTerms): string {
    return `Your booking of ${state.unitIds.length} unit(s) for ${bookingTerms.offeringName} on ${bookingTerms.startsAt} is confirmed. Paid: ${formatMoney(state.amount, state.currency)}.`;
  }

  /** Notifications are retried a few times and then given up: they never undo a booking. */
  async function notifyQuietly(notice: NotificationInput): Promise<void> {
    try {
      await notify(notice);
    } catch (err) {
      log.error('notification not delivered', { kind: notice.kind, error: String(err) });
    }
  }
}

function totalRefunded(charges: readonly BookingCharge[]): number {
  return charges.reduce((sum, c) => sum + c.refunded, 0);
}

function refundableAmount(charges: readonly BookingCharge[]): number {
  return charges.reduce((sum, c) => sum + c.amount - c.refunded, 0);
}

function decisionOf(state: BookingState): BookingDecision {
  if (state.status === 'failed') return { status: 'failed', reason: state.failureReason ?? 'confirm_failed' };
  if (state.status === 'pending') return { status: 'awaiting_payment' };
  return { status: 'confirmed' };
}
