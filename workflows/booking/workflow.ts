/**
 * One booking (`booking-<id>`) from checkout to the end of its offering. First a saga —
 * subscription check, charge, confirm, notify — where each step that changes the world
 * registers its compensation and a failure runs them in reverse (refund, release the units,
 * mark the booking failed, notify). A confirmed booking then waits until its offering ends,
 * sending its reminders (booking/reminders.ts) and taking a cancel (refund by policy),
 * reschedules (each a saga of its own, booking/reschedule.ts) and staff refunds as updates.
 */
import { allHandlersFinished, ApplicationFailure, condition, log, patched, setCurrentDetails, setHandler, workflowInfo } from '@temporalio/workflow';
import type { BookingTerms } from '../../activities/booking';
import {
  allocateRefund,
  applyRefund,
  bookingChargeOf,
  cancellationRefund,
  describeBookingFailure,
  MAX_RESCHEDULES,
  refundableAmount,
  rescheduleLimitRefusal,
  totalRefunded,
  type BookingCharge,
  type BookingFailureReason,
} from '../../domain/booking';
import { formatMoney } from '../../domain/money';
import { notificationDedupeKey, type NotificationInput } from '../../domain/notification';
import {
  chargeIdempotencyKey,
  PAYMENT_TIMEOUT_FAILURE_CODE,
  type ChargeResult,
  type PaymentSettlement,
  type RefundResult,
} from '../../domain/payment';
import { durationToMilliseconds } from '../../domain/period';
import { bookingDetails } from '../../domain/workflow-descriptions';
import { splitRefund } from '../../domain/credit';
import { bookingSteps, bookingStepsLocally, gatewayActivities, grantCredit, releaseHold } from '../activity-options';
import { APPLY_CREDIT_PATCH, chargeOnce, settlePendingCharge } from '../charge';
import { msUntil, now } from '../clock';
import { notifyQuietly } from '../notify';
import { gatewayRefundRecordedSignal, paymentSettledSignal } from '../payment';
import { BookingStatusAttribute, upsertStatusAttribute } from '../search-attributes';
import {
  bookingDecisionUpdate,
  bookingStateQuery,
  cancelBookingUpdate,
  rescheduleBookingUpdate,
  staffRefundUpdate,
  type BookingDecision,
  type BookingState,
  type BookingWorkflowInput,
  type CancelResult,
  type StaffRefundRequest,
  type StaffRefundResult,
} from './contract';
import { registerBusinessCancel } from './business-cancel';
import { recordNoShow, registerCheckIn } from './check-in';
import { Compensations } from './compensations';
import { keepHold, tellHoldSettled } from './hold-messages';
import { assertMoveAllowed, isMove, moveToOffering } from './move';
import { waitForOfferingEnd } from './reminders';
import { reschedule } from './reschedule';

/**
 * The checkout's own steps (begin, the subscription check, confirm) and the receipt run as local
 * activities, inside the workflow task that asks for them (workflows/activity-options.ts): the
 * saga is two workflow tasks and one activity task (the charge) where it was five and four.
 * Runs that began before keep scheduling activity tasks, as their histories say they did.
 */
export const BOOKING_LOCAL_STEPS_PATCH = 'booking-local-steps';

class SagaFailure extends Error {
  constructor(readonly reason: BookingFailureReason) {
    super(describeBookingFailure(reason));
  }
}

export async function bookingWorkflow(input: BookingWorkflowInput): Promise<BookingState> {
  return new Booking(input).run();
}

export class Booking {
  readonly state: BookingState;
  readonly workflowId = workflowInfo().workflowId;
  readonly gateway;
  terms: BookingTerms | undefined;
  private readonly settlements = new Map<string, PaymentSettlement>();
  /** What the gateway last reported refunded in all of each charge (the `charge.refunded` webhook). */
  private readonly gatewayRefundTotals = new Map<string, number>();
  /**
   * Reschedules accepted so far (refused ones in the saga count too): each one's number keys its
   * charge and refunds, and MAX_RESCHEDULES caps it. Rebuilt by replay, so runs from before the
   * cap count the reschedules they already took.
   */
  reschedules = 0;
  private cancelAttempts = 0;
  private cancellation: (CancelResult & { refundedBefore: number }) | undefined;
  private staffRefunds = 0;
  /** The offering's end has come: nobody checks in any more. */
  offeringEnded = false;

  constructor(readonly input: BookingWorkflowInput) {
    this.gateway = gatewayActivities(input.paymentsTaskQueue);
    this.state = {
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
  }

  async run(): Promise<BookingState> {
    this.registerHandlers();
    void this.keepDescribed();

    const confirmed = await this.book();
    const terms = this.terms;
    if (!confirmed || !terms) {
      await condition(allHandlersFinished);
      return this.state;
    }
    // The confirmation is the booking's receipt: it names the invoice of the charge that paid it.
    const receipt = this.notice('booking_confirmed', 'confirmed', `Booking confirmed: ${terms.offeringName}`, this.confirmationText(terms));
    const paidBy = this.state.charges[0]?.paymentId;
    await notifyQuietly(paidBy ? { ...receipt, paymentId: paidBy } : receipt, { locally: patched(BOOKING_LOCAL_STEPS_PATCH) });
    await waitForOfferingEnd(this, terms);
    this.offeringEnded = true;
    await condition(allHandlersFinished);
    await recordNoShow(this);
    return this.state;
  }

  private registerHandlers(): void {
    // Registered before any charge: a payment webhook can arrive before the charge activity returns.
    setHandler(paymentSettledSignal, (settlement) => {
      if (!this.settlements.has(settlement.paymentId)) this.settlements.set(settlement.paymentId, settlement);
    });
    // State only (no command): runs from before this signal existed replay unchanged.
    setHandler(gatewayRefundRecordedSignal, ({ paymentId, refundedTotal }) => {
      if (Number.isSafeInteger(refundedTotal) && refundedTotal > (this.gatewayRefundTotals.get(paymentId) ?? 0)) {
        this.gatewayRefundTotals.set(paymentId, refundedTotal);
      }
    });
    setHandler(bookingStateQuery, () => this.state);
    registerCheckIn(this);
    registerBusinessCancel(this);
    setHandler(bookingDecisionUpdate, async () => {
      await condition(() => this.state.status !== 'pending' || this.state.awaitingPayment);
      return decisionOf(this.state);
    });
    setHandler(cancelBookingUpdate, () => this.cancel(), { validator: () => this.assertChangeable() });
    // Only a request naming another offering moves the booking (booking/move.ts); see isMove.
    setHandler(rescheduleBookingUpdate, (request) => (isMove(this, request) ? moveToOffering(this, request) : reschedule(this, request)), {
      validator: (request) => {
        this.assertChangeable();
        if (request.unitIds.length === 0) throw ApplicationFailure.nonRetryable('unitIds must not be empty', 'InvalidReschedule');
        // Refused before acceptance, so past the limit a reschedule leaves no event in the history.
        const refusal = rescheduleLimitRefusal(this.reschedules);
        if (refusal) throw ApplicationFailure.nonRetryable(refusal, 'RescheduleLimitReached', { max: MAX_RESCHEDULES, current: this.reschedules });
        if (this.terms && msUntil(this.terms.startsAt) <= 0) {
          throw ApplicationFailure.nonRetryable('the offering has already started', 'OfferingStarted');
        }
        if (isMove(this, request)) assertMoveAllowed(this);
      },
    });
    setHandler(staffRefundUpdate, (request) => this.staffRefund(request), {
      validator: (request) => {
        this.assertChangeable();
        // A rejected update leaves no history, so the check may read the gateway's totals unpatched.
        const refundable = refundableAmount(this.chargesAfterGatewayRefunds());
        const amount = request?.amount ?? refundable;
        if (!Number.isSafeInteger(amount) || amount <= 0 || amount > refundable) {
          throw ApplicationFailure.nonRetryable(`the refund must be from 1 to ${refundable}, what is left of the charges`, 'InvalidRefund');
        }
        if (typeof request?.reason !== 'string' || request.reason.trim() === '') {
          throw ApplicationFailure.nonRetryable('a reason is required', 'InvalidRefund');
        }
      },
    });
  }

  // -------------------------------------------------------------------------------------------
  // The checkout saga
  // -------------------------------------------------------------------------------------------

  private async book(): Promise<boolean> {
    const { input, state } = this;
    const compensations = new Compensations();
    const steps = patched(BOOKING_LOCAL_STEPS_PATCH) ? bookingStepsLocally : bookingSteps;
    try {
      const terms = await this.step('hold_unavailable', () =>
        steps.beginBooking({ bookingId: input.bookingId, holdId: input.holdId, userId: input.userId, workflowId: this.workflowId }),
      );
      this.terms = terms;
      Object.assign(state, { unitIds: terms.unitIds, amount: terms.amount, currency: terms.currency });
      compensations.add(() => notifyQuietly(this.failureNotice(terms)));
      compensations.add(() => this.markFailed());
      compensations.add(() => this.releaseTheHold());
      if (!terms.holdActive) throw new SagaFailure('hold_unavailable');

      if (terms.requiresSubscription) {
        const subscribed = await steps.hasActiveSubscription({ userId: input.userId });
        if (!subscribed) throw new SagaFailure('subscription_required');
      }

      if (terms.amount > 0) {
        const paid = await this.charge(terms.amount, input.paymentMethod, 0, `${terms.offeringName}: ${terms.unitIds.length} unit(s)`, async () => {
          state.awaitingPayment = true;
          await keepHold(this.input.holdId);
        });
        if (paid.status !== 'succeeded') {
          throw new SagaFailure(paid.failureCode === PAYMENT_TIMEOUT_FAILURE_CODE ? 'payment_timeout' : 'payment_declined');
        }
        state.charges.push(bookingChargeOf(paid, terms.amount));
        compensations.add(() => this.refundQuietly(terms.amount, 'compensation', 'Booking could not be completed'));
      }

      const outcome = await this.step('confirm_failed', () => steps.confirmBooking({ bookingId: input.bookingId, holdId: input.holdId }));
      if (outcome !== 'confirmed') throw new SagaFailure('confirm_failed');
      state.status = 'confirmed';
      state.awaitingPayment = false;
      await tellHoldSettled(this.input.holdId);
      return true;
    } catch (err) {
      if (!(err instanceof SagaFailure)) throw err;
      state.failureReason = err.reason;
      log.warn('booking failed; compensating', { reason: err.reason, compensations: compensations.size });
      if (compensations.size === 0) state.status = 'failed';
      await compensations.runInReverse();
      return false;
    }
  }

  private async markFailed(): Promise<void> {
    await bookingSteps.failBooking({ bookingId: this.input.bookingId, reason: this.state.failureReason! });
    this.state.status = 'failed';
    this.state.awaitingPayment = false;
  }

  private async releaseTheHold(): Promise<void> {
    await releaseHold({ holdId: this.input.holdId, reason: 'released' });
    await tellHoldSettled(this.input.holdId);
  }

  /** A step whose failure (after its retries) means the saga gives up for `reason`. */
  private async step<T>(reason: BookingFailureReason, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      log.warn('booking step failed', { reason, error: String(err) });
      throw new SagaFailure(reason);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Money
  // -------------------------------------------------------------------------------------------

  /**
   * One charge of the booking (`cycle` 0 at checkout, the reschedule's number after); a pending
   * one waits for the payment webhook (`onPending` is told) up to the pending timeout.
   */
  async charge(amount: number, paymentMethod: string, cycle: number, description: string, onPending?: () => Promise<void>): Promise<ChargeResult> {
    const { input, state } = this;
    const result = await chargeOnce(this.gateway, {
      kind: 'booking',
      userId: input.userId,
      bookingId: input.bookingId,
      amount,
      currency: state.currency,
      paymentMethod,
      // The customer is booking (or moving) at the app now and can authenticate.
      session: 'on_session',
      idempotencyKey: chargeIdempotencyKey(this.workflowId, cycle, 1),
      cycle,
      attempt: 1,
      description,
      // The customer's credit balance pays first; runs from before it charge the card for it all.
      applyCredit: patched(APPLY_CREDIT_PATCH),
    });
    if (result.status !== 'pending') return result;
    await onPending?.();
    // Waits at least a millisecond, as runs from before the shared charge module did.
    const waitMs = Math.max(1, durationToMilliseconds(input.pendingPaymentTimeout));
    return settlePendingCharge(this.gateway, result, { waitMs, settlement: (paymentId) => this.settlements.get(paymentId) });
  }

  /** Refunds `amount` over the booking's charges, newest first; throws when a refund fails. */
  async refund(amount: number, purpose: string, reason: string): Promise<void> {
    const charges = this.refundableCharges();
    for (const part of allocateRefund(charges, amount)) {
      const charge = charges.find((c) => c.paymentId === part.paymentId)!;
      const result = await this.giveBack(charge, part.amount, `${this.workflowId}/${purpose}/refund-${part.paymentId}`, reason);
      if (result === 'failed') {
        throw ApplicationFailure.nonRetryable(`the refund of payment ${part.paymentId} failed`, 'RefundFailed');
      }
      // Recorded part by part: a later part that fails leaves the earlier ones counted.
      this.state.charges = applyRefund(this.state.charges, [part]);
    }
  }

  /**
   * Gives `amount` of one charge back: to the card first, up to what the card paid and was not
   * given back yet (refundPayment, keyed `refundKey`), the rest to the credit balance the charge
   * spent (grantCredit, keyed `<refundKey>/credit`, once however often this runs). A charge that
   * used no credit (every one in runs from before the credit balance) refunds to the card only.
   */
  async giveBack(charge: BookingCharge, amount: number, refundKey: string, reason: string): Promise<RefundResult['status']> {
    const { toCard, toCredit } = splitRefund(charge, amount);
    let status: RefundResult['status'] = 'succeeded';
    if (toCard > 0) {
      ({ status } = await this.gateway.refundPayment({ paymentId: charge.paymentId, amount: toCard, idempotencyKey: refundKey, reason }));
      if (status === 'failed') return status;
    }
    if (toCredit > 0) {
      const { userId } = this.input;
      const { currency } = this.state;
      await grantCredit({
        userId,
        currency,
        amount: toCredit,
        kind: 'restored',
        paymentId: charge.paymentId,
        reason,
        idempotencyKey: `${refundKey}/credit`,
      });
    }
    return status;
  }

  /**
   * The charges as a refund may take from them: with what the gateway reports refunded of each
   * (a refund made in its dashboard counts), so a refund gives back only what is left instead of
   * being refused by the payment activities. Runs that heard of no such refund, and runs from
   * before the patch, refund by their own accounting as they always did.
   */
  refundableCharges(): BookingCharge[] {
    if (this.gatewayRefundTotals.size === 0 || !patched('refund-what-is-left')) return this.state.charges;
    return this.chargesAfterGatewayRefunds();
  }

  private chargesAfterGatewayRefunds(): BookingCharge[] {
    return this.state.charges.map((c) => {
      const reported = Math.min(c.amount, this.gatewayRefundTotals.get(c.paymentId) ?? 0);
      return { ...c, refunded: Math.max(c.refunded, reported) };
    });
  }

  /** A compensation must not stop the ones after it; a refund that cannot be made is left for staff. */
  async refundQuietly(amount: number, purpose: string, reason: string): Promise<void> {
    try {
      await this.refund(amount, purpose, reason);
    } catch (err) {
      log.error('refund failed; needs a person', { amount, purpose, error: String(err) });
    }
  }

  private async cancel(): Promise<CancelResult> {
    const { state } = this;
    state.operation = 'cancel';
    this.cancelAttempts += 1;
    try {
      const terms = this.terms!;
      // Computed once: a cancel retried after a failed refund keeps the tier of its first attempt
      // and refunds only what the earlier attempt did not.
      this.cancellation ??= { ...this.cancellationRefundOf(terms), refundedBefore: totalRefunded(state.charges) };
      const cancellation = this.cancellation;
      const outstanding = cancellation.refundedAmount - (totalRefunded(state.charges) - cancellation.refundedBefore);
      // A failed attempt's refund keys hold its failed answer, so each attempt uses keys of its own.
      // What staff refunded before counts towards the policy's refund.
      // What the gateway refunded besides (its dashboard) is not given back twice.
      await this.refund(Math.min(outstanding, refundableAmount(this.refundableCharges())), `cancel-${this.cancelAttempts}`, 'Booking canceled');
      state.refundedAmount = cancellation.refundedAmount;
      await bookingSteps.cancelBooking({ bookingId: this.input.bookingId, refundedAmount: state.refundedAmount });
      state.status = 'canceled';
      await notifyQuietly(
        this.notice(
          'booking_canceled',
          'canceled',
          `Booking canceled: ${terms.offeringName}`,
          `Your booking for ${terms.offeringName} is canceled. Refund: ${formatMoney(cancellation.refundedAmount, state.currency)}.`,
        ),
      );
      return { tier: cancellation.tier, refundedAmount: cancellation.refundedAmount };
    } finally {
      state.operation = null;
    }
  }

  private cancellationRefundOf(terms: BookingTerms): CancelResult {
    const due = cancellationRefund({ amount: this.state.amount, startsAt: new Date(terms.startsAt), policy: terms.policy, now: now() });
    return { tier: due.tier, refundedAmount: due.amount };
  }

  private async staffRefund(request: StaffRefundRequest): Promise<StaffRefundResult> {
    this.state.operation = 'refund';
    this.staffRefunds += 1;
    try {
      const amount = request.amount ?? refundableAmount(this.refundableCharges());
      await this.refund(amount, `staff-refund-${this.staffRefunds}`, `Refunded by staff: ${request.reason}`);
      return { refundedAmount: amount, totalRefunded: totalRefunded(this.state.charges) };
    } finally {
      this.state.operation = null;
    }
  }

  // -------------------------------------------------------------------------------------------
  // What people see
  // -------------------------------------------------------------------------------------------

  /**
   * What support staff see in the Temporal UI follows the state: the BookingStatus search
   * attribute and the details line, republished whenever what they say changes.
   */
  private async keepDescribed(): Promise<void> {
    const describe = () => bookingDetails({ ...this.state, offeringName: this.terms?.offeringName });
    for (;;) {
      const details = describe();
      upsertStatusAttribute(BookingStatusAttribute, this.state.status);
      setCurrentDetails(details);
      await condition(() => describe() !== details);
    }
  }

  private assertChangeable(): void {
    if (this.state.status !== 'confirmed') {
      throw ApplicationFailure.nonRetryable(`the booking is ${this.state.status}`, 'BookingNotConfirmed');
    }
    if (this.state.operation !== null) {
      throw ApplicationFailure.nonRetryable(`a ${this.state.operation} of this booking is in progress`, 'BookingBusy');
    }
  }

  notice(kind: NotificationInput['kind'], event: string, subject: string, body: string): NotificationInput {
    const { userId, bookingId } = this.input;
    return { userId, bookingId, kind, subject, body, dedupeKey: notificationDedupeKey(this.workflowId, event) };
  }

  private failureNotice(terms: BookingTerms): NotificationInput {
    return this.notice(
      'booking_failed',
      'failed',
      `Booking not completed: ${terms.offeringName}`,
      `Your booking for ${terms.offeringName} could not be completed. ${describeBookingFailure(this.state.failureReason!)}`,
    );
  }

  private confirmationText(terms: BookingTerms): string {
    return `Your booking of ${this.state.unitIds.length} unit(s) for ${terms.offeringName} on ${terms.startsAt} is confirmed. Paid: ${formatMoney(this.state.amount, this.state.currency)}.`;
  }
}

function decisionOf(state: BookingState): BookingDecision {
  if (state.status === 'failed') return { status: 'failed', reason: state.failureReason ?? 'confirm_failed' };
  if (state.status === 'pending') return { status: 'awaiting_payment' };
  return { status: 'confirmed' };
}
