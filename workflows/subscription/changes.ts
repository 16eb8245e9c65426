/**
 * What a customer changes on a running subscription: plan and seats (now, prorated, or at the
 * period end), pause and resume, and withdrawing a cancel-at-period-end. Each is a workflow update
 * whose validator refuses what the state does not allow, so a refusal leaves no trace in the
 * history; the handler records the request and the main loop applies it (only the loop charges),
 * so a change and a renewal never interleave.
 *
 * Money: a change's charge carries the key `<workflowId>/change-<n>` and a resume's
 * `<workflowId>/resume-<n>`, n counted in the carried state, so a retried activity is one charge;
 * a downgrade's credit carries `proration/<workflowId>/change-<n>`, unique in the credit ledger.
 */
import { ApplicationFailure, condition, setHandler } from '@temporalio/workflow';
import { prorationCreditKey } from '../../domain/credit';
import { isValidQuantity, prorate, type Proration } from '../../domain/proration';
import {
  planChangeRefusal,
  planChangeStatusRefusal,
  planTermsProblems,
  transition,
  type PlanTerms,
  type SubscriptionSnapshot,
} from '../../domain/subscription';
import { pausedNotice, planChangedNotice } from '../../domain/subscription-notices';
import { MAX_REFUND_RECORDS, periodOfCycle, quantityOf, type ChangeOutcome, type ResumeOutcome } from '../../domain/subscription-state';
import { quoteChange, type PricedCharge } from '../../domain/subscription-pricing';
import { grantCredit } from '../activity-options';
import { now } from '../clock';
import { gatewayRefundRecordedSignal } from '../payment';
import { SubscriptionAccounts } from './accounts';
import {
  cancelScheduledChangeUpdate,
  changeQuoteQuery,
  changeSubscriptionUpdate,
  pauseSubscriptionUpdate,
  reactivateSubscriptionUpdate,
  resumeSubscriptionUpdate,
  SUBSCRIPTION_FAILURES,
  type ChangeQuoteAnswer,
  type ChangeQuoteRequest,
  type PauseRequest,
  type ResumeResult,
  type SubscriptionChange,
  type SubscriptionChangeResult,
} from './contract';
import type { AttemptOutcome } from './run';

/** How far ahead a pause may be set to end by itself. */
const LONGEST_PAUSE_MS = 2 * 366 * 24 * 3600_000;

type Failed = Extract<AttemptOutcome, { status: 'failed' }>;

export abstract class SubscriptionChanges extends SubscriptionAccounts {
  protected abstract startPaidPeriod(cycle: number, resumed?: boolean): Promise<void>;
  protected abstract startDunning(cycle: number, failure: Failed): Promise<void>;
  protected abstract cancelNow(at?: string): Promise<void>;

  // -------------------------------------------------------------------------------------------
  // Applied by the main loop
  // -------------------------------------------------------------------------------------------

  /**
   * A change asked for now: the rest of the paid period is credited on the old terms and charged
   * on the new (domain/proration.ts), the net charged at once or credited to the balance, and the
   * new terms are in force from here; the billing anchor stays. A declined net changes nothing.
   */
  protected async applyRequestedChange(): Promise<void> {
    const request = this.state.changeRequest!;
    const proration = this.prorationOf(request.plan, request.quantity);
    request.proration = proration;
    const quote =
      proration && quoteChange({ proration, plan: request.plan, quantity: request.quantity, periodDiscount: this.state.periodDiscount, at: now() });
    const charge = quote?.due ? await this.chargeProration(request.id, quote.due) : null;
    this.state.changeRequest = null;
    if (charge && charge.status !== 'succeeded') {
      this.state.lastChange = declinedChange(request.id, proration, charge);
      await this.project();
      return;
    }
    // What the customer paid for the unused part: a percentage coupon on the period shrinks it too.
    const credit = quote?.credit ?? 0;
    if (proration && credit > 0) {
      await grantCredit({
        userId: this.input.userId,
        currency: proration.currency,
        amount: credit,
        kind: 'proration',
        reason: `${this.terms().name} → ${request.plan.name} × ${request.quantity}, rest of the period to ${proration.periodEnd}`,
        idempotencyKey: prorationCreditKey(this.workflowId, `change-${request.id}`),
      });
    }
    this.switchTerms(request.id, request.plan, request.quantity, proration);
    this.state.lastChange = { id: request.id, status: 'applied', proration, paymentId: charge?.paymentId ?? null, failureCode: null, decline: null };
    await this.project();
  }

  /** A change scheduled for the period end, applied as the period ends, before its renewal is charged. */
  protected applyScheduledChange(): void {
    const scheduled = this.state.scheduledChange;
    if (!scheduled) return;
    this.switchTerms(this.nextChangeId(), scheduled.plan, scheduled.quantity, null);
  }

  /** A request left unserved because the subscription fell past due or ended first. */
  protected refusePendingRequests(): void {
    const reason = { status: 'refused', paymentId: null, failureCode: null, decline: null } as const;
    if (this.state.changeRequest) this.state.lastChange = { id: this.state.changeRequest.id, proration: null, ...reason };
    if (this.state.resumeRequest) this.state.lastResume = { id: this.state.resumeRequest.id, ...reason };
    this.state.changeRequest = null;
    this.state.resumeRequest = null;
  }

  /** The paid period has ended with a pause asked for: no renewal until a resume. */
  protected async enterPause(): Promise<void> {
    const pausedAt = this.periodEnd();
    this.state.status = transition(this.state.status, 'paused');
    this.state.pausedAt = pausedAt;
    await this.project();
    const resumesAt = this.state.pause?.resumesAt;
    this.send(pausedNotice(this.terms(), this.state.cycle, resumesAt ? new Date(resumesAt) : null));
  }

  /**
   * While paused nothing is charged and no reminder is sent. A resume charges a new period from
   * now (a decline leaves it paused); `resumesAt` does the same by timer, off session, and a
   * decline then starts dunning as a renewal's would. True when a period was paid.
   */
  protected async runPaused(): Promise<boolean> {
    for (;;) {
      if (this.state.cancelNowRequested) {
        await this.cancelNow();
        return false;
      }
      if (this.state.resumeRequest) {
        if (await this.resumeNow()) return true;
        continue;
      }
      const resumesAt = this.state.pause?.resumesAt;
      if (!resumesAt) {
        await this.waitForWakeup();
        continue;
      }
      if (await this.sleepUntil(new Date(resumesAt))) return this.resumeOnSchedule(resumesAt);
    }
  }

  private async resumeNow(): Promise<boolean> {
    const request = this.state.resumeRequest!;
    const cycle = this.state.cycle + 1;
    const from = now().toISOString();
    const outcome = await this.attemptCharge(cycle, 1, 'on_session', {
      onAnswered: (charge) => {
        request.paymentId = charge.paymentId;
      },
      purpose: { charge: this.pricePeriodOf(cycle, { resumed: true }), idempotencyKey: `${this.workflowId}/resume-${request.id}`, period: true },
    });
    this.state.resumeRequest = null;
    if (outcome.status !== 'succeeded') {
      this.state.lastResume = { id: request.id, ...failureOf(outcome) };
      await this.project();
      return false;
    }
    this.reanchor(from);
    await this.startPaidPeriod(cycle, true);
    this.state.lastResume = { id: request.id, status: 'resumed', paymentId: outcome.paymentId, failureCode: null, decline: null };
    return true;
  }

  private async resumeOnSchedule(resumesAt: string): Promise<boolean> {
    this.reanchor(resumesAt);
    const cycle = this.state.cycle + 1;
    const outcome = await this.attemptCharge(cycle, 1, 'off_session');
    if (outcome.status === 'succeeded') {
      await this.startPaidPeriod(cycle, true);
      return true;
    }
    if (outcome.status === 'interrupted') await this.cancelNow();
    else await this.startDunning(cycle, outcome);
    return false;
  }

  /** Periods count anew from a resume: the next one starts at `at`. */
  private reanchor(at: string): void {
    this.state.anchorDate = at;
    this.state.anchorCycle = this.state.cycle;
    this.state.pause = null;
    this.state.pausedAt = null;
  }

  private prorationOf(plan: PlanTerms, quantity: number, at: Date = now()): Proration | null {
    // In a trial nothing was paid, so nothing is prorated: the new terms apply from the trial's end.
    if (this.state.status !== 'active' || this.state.cycle === 0) return null;
    const current = this.terms();
    const period = periodOfCycle(current, this.state, this.state.cycle);
    return prorate({
      periodStart: period.start,
      periodEnd: period.end,
      at,
      from: { amount: current.amount, quantity: quantityOf(this.state) },
      to: { amount: plan.amount, quantity },
      currency: current.currency,
    });
  }

  private chargeProration(id: number, due: PricedCharge): Promise<AttemptOutcome> {
    const request = this.state.changeRequest!;
    return this.attemptCharge(this.state.cycle, 1, 'on_session', {
      onAnswered: (charge) => {
        request.paymentId = charge.paymentId;
      },
      purpose: { charge: due, idempotencyKey: `${this.workflowId}/change-${id}` },
    });
  }

  /** What a change would cost at `at`, as applyRequestedChange would charge it: the preview's answer. */
  private quote({ plan, quantity, at }: ChangeQuoteRequest): ChangeQuoteAnswer {
    const next = { plan: plan ?? this.terms(), quantity: quantity ?? quantityOf(this.state) };
    const refusal = planChangeStatusRefusal(this.state.status) ?? planChangeRefusal({ plan: this.terms(), quantity: quantityOf(this.state) }, next);
    if (refusal) return { refusal, proration: null, amountDue: 0, credit: 0 };
    const when = new Date(at);
    const proration = this.prorationOf(next.plan, next.quantity, when) ?? {
      credit: 0,
      charge: 0,
      net: 0,
      currency: this.terms().currency,
      periodEnd: this.periodEnd(),
    };
    const quote = quoteChange({ proration, plan: next.plan, quantity: next.quantity, periodDiscount: this.state.periodDiscount, at: when });
    return { refusal: null, proration, amountDue: quote.due?.amount ?? 0, credit: quote.credit };
  }

  private switchTerms(id: number, plan: PlanTerms, quantity: number, proration: Proration | null): void {
    this.state.plan = plan;
    this.state.quantity = quantity;
    this.state.scheduledChange = null;
    this.send(planChangedNotice(plan, quantity, id, proration));
  }

  private nextChangeId(): number {
    this.state.changeCount = (this.state.changeCount ?? 0) + 1;
    return this.state.changeCount;
  }

  // -------------------------------------------------------------------------------------------
  // Updates
  // -------------------------------------------------------------------------------------------

  protected registerChangeHandlers(): void {
    setHandler(changeSubscriptionUpdate, (change) => this.change(change), { validator: (change) => this.validateChange(change) });
    setHandler(changeQuoteQuery, (request) => this.quote(request));

    setHandler(
      cancelScheduledChangeUpdate,
      async () => {
        this.state.scheduledChange = null;
        await this.project();
        return this.snapshot();
      },
      {
        validator: () => {
          if (!this.state.scheduledChange) refuse('no plan change is scheduled');
        },
      },
    );

    setHandler(pauseSubscriptionUpdate, (request) => this.pause(request), { validator: (request) => this.validatePause(request) });

    setHandler(resumeSubscriptionUpdate, () => this.resume(), {
      validator: () => {
        this.assertChangeable();
        if (this.state.status !== 'paused' && !this.state.pause) refuse(`the subscription is ${this.state.status}, not paused`);
        if (this.state.resumeRequest) refuse('a resume is already being charged');
      },
    });

    setHandler(
      reactivateSubscriptionUpdate,
      async () => {
        this.state.cancelAtPeriodEnd = false;
        this.state.canceledAt = null;
        this.wakeups += 1;
        await this.project();
        return this.snapshot();
      },
      {
        validator: () => {
          this.assertChangeable();
          const { status, cancelAtPeriodEnd } = this.state;
          if (!cancelAtPeriodEnd || (status !== 'active' && status !== 'trialing')) {
            refuse(`the subscription is ${status} and not set to cancel at the period end`);
          }
        },
      },
    );

    // The refund workflow reports each payment's refunded total (so a repeat changes nothing).
    setHandler(gatewayRefundRecordedSignal, ({ paymentId, refundedTotal }) => {
      if (typeof paymentId !== 'string' || !Number.isSafeInteger(refundedTotal) || refundedTotal < 0) return;
      const refunds = { ...(this.state.refunds ?? {}) };
      refunds[paymentId] = Math.max(refunds[paymentId] ?? 0, refundedTotal);
      const kept = Object.entries(refunds).slice(-MAX_REFUND_RECORDS);
      this.state.refunds = Object.fromEntries(kept);
      this.publish();
    });
  }

  private validateChange(change: SubscriptionChange): void {
    this.assertChangeable();
    const { status } = this.state;
    const statusRefusal = planChangeStatusRefusal(status);
    if (statusRefusal) refuse(statusRefusal);
    if (this.state.changeRequest) refuse('a plan change is already being charged');
    if (this.state.resumeRequest) refuse('a resume is being charged');
    if (change?.when !== 'now' && change?.when !== 'period_end') invalid('when', "must be 'now' or 'period_end'");
    if (!isValidQuantity(change.quantity)) invalid('quantity', 'must be a whole number from 1 to 10000');
    if (change.plan !== undefined && (change.plan === null || planTermsProblems(change.plan).length > 0))
      invalid('planId', 'must name a plan on sale');
    const refusal = planChangeRefusal(
      { plan: this.terms(), quantity: quantityOf(this.state) },
      { plan: change.plan ?? this.terms(), quantity: change.quantity },
    );
    if (refusal) refuse(refusal);
    if (this.state.cancelAtPeriodEnd) refuse('the subscription cancels at the period end; reactivate it first');
  }

  private async change(request: SubscriptionChange): Promise<SubscriptionChangeResult> {
    const change = { ...request, plan: request.plan ?? this.terms() };
    const id = this.nextChangeId();
    if (change.when === 'period_end') {
      this.state.scheduledChange = { planId: change.plan.planId, quantity: change.quantity, at: this.periodEnd(), plan: change.plan };
      await this.project();
      return { subscription: this.snapshot(), proration: null, payment: null };
    }
    this.state.changeRequest = { id, plan: change.plan, quantity: change.quantity };
    this.wakeups += 1;
    const {
      pending,
      outcome,
      request: served,
    } = await this.servedByLoop(
      id,
      () => this.state.changeRequest,
      () => this.state.lastChange,
    );
    if (pending) return { subscription: this.snapshot(), proration: served?.proration ?? null, payment: { paymentId: pending, status: 'pending' } };
    return answerOf(outcome, id, this.snapshot());
  }

  /**
   * Waits until the main loop has served request `id`: its outcome, or its charge waiting for the
   * customer. Then it waits for the projections asked for so far, since the API answers from the
   * row. What it answers is taken before that wait, so a settlement meanwhile cannot change it.
   */
  private async servedByLoop<R extends { id: number; paymentId?: string }, O extends { id: number }>(
    id: number,
    request: () => R | null | undefined,
    outcome: () => O | null | undefined,
  ): Promise<{ pending: string | null; outcome: O | null | undefined; request: R | null | undefined }> {
    const pendingCharge = () => {
      const current = request();
      const paymentId = current?.id === id ? current.paymentId : undefined;
      return paymentId !== undefined && this.state.pendingPayment?.paymentId === paymentId ? paymentId : null;
    };
    await condition(() => outcome()?.id === id || pendingCharge() !== null || this.hasEnded());
    const served = { pending: pendingCharge(), outcome: outcome(), request: request() && { ...request()! } };
    await this.projections;
    return served;
  }

  private validatePause(request: PauseRequest): void {
    this.assertChangeable();
    const { status } = this.state;
    if (status === 'paused') refuse('the subscription is already paused');
    if (status !== 'active' && status !== 'trialing') refuse(`a ${status} subscription cannot be paused`);
    if (this.state.pause) refuse('a pause is already scheduled');
    if (this.state.cancelAtPeriodEnd) refuse('the subscription cancels at the period end');
    if (this.state.changeRequest) refuse('a plan change is being charged');
    const resumesAt = request?.resumesAt;
    if (resumesAt === undefined || resumesAt === null) return;
    const at = typeof resumesAt === 'string' ? Date.parse(resumesAt) : NaN;
    if (Number.isNaN(at)) invalid('resumesAt', 'must be an ISO-8601 date-time');
    if (at <= new Date(this.periodEnd()).getTime()) invalid('resumesAt', `must be after the paid period ends (${this.periodEnd()})`);
    if (at - now().getTime() > LONGEST_PAUSE_MS) invalid('resumesAt', 'must be within two years');
  }

  private async pause(request: PauseRequest): Promise<SubscriptionSnapshot> {
    const resumesAt = request?.resumesAt ? new Date(request.resumesAt).toISOString() : null;
    this.state.pause = { resumesAt };
    this.wakeups += 1;
    await this.project();
    return this.snapshot();
  }

  private async resume(): Promise<ResumeResult> {
    if (this.state.status !== 'paused') {
      // Still in the paid period: the pause is withdrawn and renewal goes on as scheduled.
      this.state.pause = null;
      this.wakeups += 1;
      await this.project();
      return { subscription: this.snapshot(), payment: null };
    }
    const id = this.nextChangeId();
    this.state.resumeRequest = { id };
    this.wakeups += 1;
    const { pending, outcome } = await this.servedByLoop(
      id,
      () => this.state.resumeRequest,
      () => this.state.lastResume,
    );
    if (pending) return { subscription: this.snapshot(), payment: { paymentId: pending, status: 'pending' } };
    const resumed = servedOutcome(outcome, id, this.state.status);
    return { subscription: this.snapshot(), payment: paidWith(resumed.paymentId) };
  }
}

function answerOf(outcome: ChangeOutcome | null | undefined, id: number, subscription: SubscriptionSnapshot): SubscriptionChangeResult {
  const applied = servedOutcome(outcome, id, subscription.status);
  return { subscription, proration: applied.proration, payment: paidWith(applied.paymentId) };
}

/**
 * The loop's outcome of request `id` when it went through; a refusal (the subscription fell past
 * due or ended first) or a declined charge is thrown as the update's failure.
 */
function servedOutcome<O extends ChangeOutcome | ResumeOutcome>(outcome: O | null | undefined, id: number, status: string): O {
  if (!outcome || outcome.id !== id || outcome.status === 'refused') refuse(`the subscription is ${status}`);
  if (outcome.status === 'declined') throw declinedFailure(outcome);
  return outcome;
}

function paidWith(paymentId: string | null): { paymentId: string; status: 'succeeded' } | null {
  return paymentId ? { paymentId, status: 'succeeded' } : null;
}

function declinedChange(id: number, proration: Proration | null, charge: AttemptOutcome): ChangeOutcome {
  return { id, proration, ...failureOf(charge) };
}

function failureOf(charge: AttemptOutcome): Omit<ResumeOutcome, 'id' | 'status'> & { status: 'declined' } {
  const failed = charge.status === 'failed';
  return {
    status: 'declined',
    paymentId: charge.paymentId,
    // Interrupted: the customer canceled while the charge awaited their bank.
    failureCode: failed ? charge.failureCode : 'canceled',
    decline: failed ? charge.decline : null,
  };
}

function declinedFailure(outcome: ChangeOutcome | ResumeOutcome): ApplicationFailure {
  return ApplicationFailure.create({
    type: SUBSCRIPTION_FAILURES.declined,
    message: `the charge was declined (${outcome.failureCode})`,
    nonRetryable: true,
    details: [{ paymentId: outcome.paymentId, failureCode: outcome.failureCode, decline: outcome.decline }],
  });
}

function refuse(message: string): never {
  throw ApplicationFailure.create({ type: SUBSCRIPTION_FAILURES.notAllowed, message, nonRetryable: true });
}

function invalid(field: string, message: string): never {
  throw ApplicationFailure.create({
    type: SUBSCRIPTION_FAILURES.invalidRequest,
    message: `${field}: ${message}`,
    nonRetryable: true,
    details: [{ field }],
  });
}
