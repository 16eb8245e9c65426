/**
 * One workflow per subscription, for its whole life: the first charge (or a trial), a durable
 * timer to each billing date, renewal, dunning after a failed renewal, cancellation and expiry.
 * It continues as new after every paid period, carrying its whole state, so history stays small.
 *
 * Only the main loop changes the lifecycle. Handlers record what was asked, wake the loop and,
 * where the caller needs the outcome (cancel now, a new card while past due), wait for the loop
 * to apply it. What the state looks like to people (snapshot, projection) and what the customer
 * is told are pure functions in domain/ (subscription-state.ts, subscription-notices.ts).
 */
import { allHandlersFinished, condition, log, makeContinueAsNewFunc, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import type { DunningEvent } from '../../domain/dunning';
import { dunningTimeline } from '../../domain/dunning';
import type { ChargeResult } from '../../domain/payment';
import { addDuration, describeTimeSpan, isDurationWithin } from '../../domain/period';
import { isFinalStatus, transition, type SubscriptionSnapshot, type SubscriptionStatus } from '../../domain/subscription';
import {
  canceledNotice,
  expiredNotice,
  graceReminderNotice,
  periodPaidNotice,
  renewalFailedNotice,
  resumedNotice,
} from '../../domain/subscription-notices';
import {
  isPaymentMethodToken,
  MAX_UNMATCHED_SETTLEMENTS,
  periodOfCycle,
  upcomingDunningEvent,
  type DunningState,
} from '../../domain/subscription-state';
import { TASK_QUEUES } from '../../platform/task-queues';
import { msUntil, now } from '../clock';
import { paymentSettledSignal, refundOrphanedCharge } from '../payment';
import { SubscriptionChanges } from './changes';
import {
  activationUpdate,
  cancelSubscriptionUpdate,
  extendGraceSignal,
  paymentMethodUpdatedSignal,
  retryPaymentNowSignal,
  subscriptionStateQuery,
  updatePaymentMethodUpdate,
  type ActivationResult,
  type PaymentMethodChange,
  type SubscriptionWorkflowInput,
} from './contract';
import type { AttemptOutcome } from './run';

/** The longest a staff member may extend a customer's grace by at once. */
export const LONGEST_GRACE_EXTENSION = 'P1Y';

const OUTBOX_DRAIN_WAIT = '1 minute';

/**
 * Continues as new onto the renewals queue (TaskQueues.renewals), so that renewals, background
 * work, never queue in front of a customer's subscribe on `billing`. Runs without the marker
 * continue where they run, as they did.
 */
export const RENEWALS_QUEUE_PATCH = 'renewals-on-their-own-queue';

export async function subscriptionWorkflow(input: SubscriptionWorkflowInput): Promise<SubscriptionSnapshot> {
  return new Subscription(input).run();
}

class Subscription extends SubscriptionChanges {
  private activation: ActivationResult | null = null;

  async run(): Promise<SubscriptionSnapshot> {
    // Updates first, then signals: buffered messages are applied in the order they were registered.
    this.registerHandlers();
    this.registerChangeHandlers();
    this.registerCouponHandler();
    this.registerSignals();
    this.publish();
    for (const notification of this.state.outbox) this.deliver(notification);
    if (this.input.carried) {
      this.activation = { outcome: activationOutcomeOf(this.state.status), subscription: this.snapshot(), payment: null };
    } else {
      this.applyCouponFromInput();
      await this.begin();
    }
    while (this.state.status !== 'incomplete' && !isFinalStatus(this.state.status)) {
      const paid = await this.step();
      if (paid) await this.continueAsNewWhenIdle();
    }
    // The final notice is delivered before the workflow closes.
    await condition(() => allHandlersFinished() && this.state.outbox.length === 0);
    return this.snapshot();
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle
  // -------------------------------------------------------------------------------------------

  /** The first charge, or the start of a trial. Ends `incomplete` when the first charge fails. */
  private async begin(): Promise<void> {
    await this.project(); // payments reference the row, so it exists before any charge
    const { trialPeriod } = this.terms();
    if (trialPeriod) {
      const trialEnd = addDuration(new Date(this.state.startedAt), trialPeriod).toISOString();
      Object.assign(this.state, { status: transition('incomplete', 'trialing'), trialEnd, anchorDate: trialEnd });
      await this.project();
      this.activation = { outcome: 'trialing', subscription: this.snapshot(), payment: null };
      return;
    }
    // The customer is subscribing at the app now: they can authenticate, and the card is saved for renewals.
    const outcome = await this.attemptCharge(1, 1, 'on_session', {
      onAnswered: (charge) => {
        if (charge.status !== 'pending') return;
        this.activation = { outcome: 'pending', subscription: this.snapshot(), payment: paymentOf(charge) };
      },
    });
    if (outcome.status === 'succeeded') {
      await this.startPaidPeriod(1);
    } else if (outcome.status === 'interrupted') {
      await this.cancelNow();
    } else {
      this.state.endedAt = now().toISOString();
      await this.project();
      if (this.hasUnusedCoupon()) await this.releaseUnusedCoupon();
    }
    this.activation ??= {
      outcome: outcome.status === 'succeeded' ? 'active' : 'declined',
      subscription: this.snapshot(),
      payment: this.state.lastPayment && {
        paymentId: this.state.lastPayment.paymentId,
        status: this.state.lastPayment.status,
        failureCode: outcome.status === 'failed' ? outcome.failureCode : null,
        decline: outcome.status === 'failed' ? outcome.decline : null,
      },
    };
  }

  /** Runs the current status until something changes; true when a period was just paid. */
  private async step(): Promise<boolean> {
    switch (this.state.status) {
      case 'trialing':
      case 'active':
        return this.waitAndRenew();
      case 'past_due':
        return this.runDunning();
      case 'paused':
        return this.runPaused();
      default:
        throw new Error(`no step for status ${this.state.status}`);
    }
  }

  /**
   * Sleeps until the period (or trial) ends, then charges the next period. A change asked for
   * meanwhile is applied first, so a change racing the renewal is prorated (nothing, once the
   * period has ended) and the renewal is charged on the new terms.
   */
  private async waitAndRenew(): Promise<boolean> {
    // A change already waiting (it came as the last run hopped) is applied before any sleep.
    const due = this.state.changeRequest ? msUntil(this.periodEnd()) <= 0 : await this.sleepUntil(new Date(this.periodEnd()));
    if (this.state.cancelNowRequested) {
      await this.cancelNow();
      return false;
    }
    if (this.state.changeRequest) await this.applyRequestedChange();
    if (!due) return false;
    if (this.state.cancelAtPeriodEnd) {
      await this.cancelNow(this.periodEnd());
      return false;
    }
    if (this.state.pause) {
      await this.enterPause();
      return false;
    }
    this.applyScheduledChange();
    const cycle = this.state.cycle + 1;
    const outcome = await this.attemptCharge(cycle, 1, 'off_session');
    if (outcome.status === 'succeeded') {
      await this.startPaidPeriod(cycle);
      return true;
    }
    if (outcome.status === 'interrupted') {
      await this.cancelNow();
      return false;
    }
    await this.startDunning(cycle, outcome);
    return false;
  }

  protected async startPaidPeriod(cycle: number, resumed = false): Promise<void> {
    this.state.status = transition(this.state.status, 'active');
    this.state.cycle = cycle;
    this.state.dunning = null;
    await this.project();
    const billed = this.chargedTerms();
    const period = periodOfCycle(billed, this.state, cycle);
    const paymentId = this.state.lastPayment?.paymentId;
    const notice = resumed
      ? resumedNotice(billed, cycle, period, billed.amount)
      : periodPaidNotice(billed, cycle, period, this.state.cancelAtPeriodEnd);
    this.send(notice, { paymentId });
    if (this.awaitsReferralReward()) await this.rewardReferralOnce(paymentId);
  }

  protected async startDunning(cycle: number, failure: Extract<AttemptOutcome, { status: 'failed' }>): Promise<void> {
    const failedAt = now();
    const graceEndsAt = addDuration(failedAt, this.terms().dunning.gracePeriod);
    this.refusePendingRequests();
    this.state.status = transition(this.state.status, 'past_due');
    this.state.dunning = {
      cycle,
      failedAt: failedAt.toISOString(),
      graceEndsAt: graceEndsAt.toISOString(),
      attempts: 1,
      nextEvent: 0,
      retriesDone: 0,
      automaticRetriesStopped: failure.decline === 'hard',
      lastFailureCode: failure.failureCode,
      lastDecline: failure.decline,
      retryRequests: 0,
      retryRequestsServed: 0,
      log: [{ at: failedAt.toISOString(), kind: 'failed', attempt: 1, outcome: 'failed', failureCode: failure.failureCode }],
    };
    await this.project();
    if (this.opensDunningInvoice()) await this.openDunningInvoice(failure.paymentId);
    const nextRetry = upcomingDunningEvent(this.terms(), this.state.dunning, 'retry');
    this.send(renewalFailedNotice(this.chargedTerms(), cycle, failure, nextRetry?.at, graceEndsAt), { paymentId: failure.paymentId });
  }

  /**
   * Walks the dunning timeline: retries, reminders, expiry. A new card or a staff request charges
   * at once; any success starts the unpaid period on its original dates.
   */
  private async runDunning(): Promise<boolean> {
    const dunning = this.state.dunning!;
    for (;;) {
      if (this.state.cancelNowRequested) {
        await this.cancelNow();
        return false;
      }
      if (dunning.retryRequests > dunning.retryRequestsServed) {
        const served = dunning.retryRequests;
        const paid = await this.dunningAttempt('manual_retry');
        dunning.retryRequestsServed = served;
        if (paid) return true;
        continue;
      }
      const event = dunningTimeline(new Date(dunning.failedAt), this.terms().dunning, new Date(dunning.graceEndsAt))[dunning.nextEvent];
      if (!(await this.sleepUntil(event.at))) continue;
      dunning.nextEvent += 1;
      if (event.kind === 'expiry') {
        await this.expire();
        return false;
      }
      if (event.kind === 'reminder') {
        await this.remind(event);
        continue;
      }
      dunning.retriesDone += 1;
      if (dunning.automaticRetriesStopped) {
        this.log({ kind: 'retry', detail: `retry ${event.retry} of ${event.of} skipped after a hard decline` });
        await this.project();
        continue;
      }
      if (await this.dunningAttempt('retry')) return true;
    }
  }

  /** One more charge of the unpaid period; true when it was paid (and the period started). */
  private async dunningAttempt(kind: 'retry' | 'manual_retry'): Promise<boolean> {
    const dunning = this.state.dunning!;
    const attempt = dunning.attempts + 1;
    const outcome = await this.attemptCharge(dunning.cycle, attempt, 'off_session');
    dunning.attempts = attempt;
    if (outcome.status === 'succeeded') {
      this.log({ kind, attempt, outcome: 'succeeded' });
      // This attempt's own invoice is paid; the one opened for the first failure is void.
      if (this.hasDunningInvoice()) await this.closeDunningInvoice('void');
      await this.startPaidPeriod(dunning.cycle);
      return true;
    }
    if (outcome.status === 'failed') {
      this.log({ kind, attempt, outcome: 'failed', failureCode: outcome.failureCode });
      dunning.lastFailureCode = outcome.failureCode;
      dunning.lastDecline = outcome.decline;
      if (outcome.decline === 'hard') dunning.automaticRetriesStopped = true;
    }
    // Interrupted: cancel-now is applied by the dunning loop on its next turn.
    await this.project();
    return false;
  }

  private async remind(event: Extract<DunningEvent, { kind: 'reminder' }>): Promise<void> {
    const dunning = this.state.dunning!;
    const timeLeft = describeTimeSpan(event.timeLeftMs);
    this.log({ kind: 'reminder', detail: `reminder ${event.reminder} of ${event.of}: ${timeLeft} left` });
    await this.project();
    this.send(
      graceReminderNotice(this.chargedTerms(), dunning.cycle, event.reminder, timeLeft, dunning.lastFailureCode, new Date(dunning.graceEndsAt)),
      { paymentId: dunning.invoicePaymentId },
    );
  }

  private async expire(): Promise<void> {
    this.refusePendingRequests();
    this.state.status = transition(this.state.status, 'expired');
    this.state.endedAt = now().toISOString();
    this.log({ kind: 'expired' });
    await this.project();
    if (this.hasDunningInvoice()) await this.closeDunningInvoice('uncollectible');
    this.send(expiredNotice(this.chargedTerms()), { paymentId: this.state.dunning?.invoicePaymentId });
  }

  /** Ends the subscription; `at` is the period end for a cancel-at-period-end. */
  protected async cancelNow(at = now().toISOString()): Promise<void> {
    this.refusePendingRequests();
    const firstChargeWithdrawn = this.state.status === 'incomplete';
    this.state.status = transition(this.state.status, 'canceled');
    this.state.cancelNowRequested = false;
    this.state.canceledAt ??= at;
    this.state.endedAt = at;
    await this.project();
    // Canceled while past due: the unpaid period's invoice is void; before any payment, the coupon goes back.
    if (this.hasDunningInvoice()) await this.closeDunningInvoice('void');
    if (firstChargeWithdrawn && this.hasUnusedCoupon()) await this.releaseUnusedCoupon();
    this.send(canceledNotice(this.terms(), new Date(at)));
    if (this.chargeToRefund) await refundOrphanedCharge(this.gateway, this.chargeToRefund);
  }

  // -------------------------------------------------------------------------------------------
  // Handlers
  // -------------------------------------------------------------------------------------------

  private registerHandlers(): void {
    setHandler(subscriptionStateQuery, () => this.snapshot());

    setHandler(activationUpdate, async () => {
      await condition(() => this.activation !== null);
      return this.activation!;
    });

    setHandler(
      cancelSubscriptionUpdate,
      async ({ atPeriodEnd }) => {
        const { status } = this.state;
        if (atPeriodEnd && (status === 'active' || status === 'trialing')) {
          this.state.cancelAtPeriodEnd = true;
          this.state.canceledAt = now().toISOString();
        } else {
          // Nothing paid to keep (past due, or the first charge still pending): end now.
          this.state.cancelNowRequested = true;
          this.wakeups += 1;
          await condition(() => this.hasEnded());
        }
        await this.project();
        return this.snapshot();
      },
      {
        validator: (request) => {
          this.assertChangeable();
          if (typeof request?.atPeriodEnd !== 'boolean') throw new Error('atPeriodEnd must be true or false');
        },
      },
    );

    setHandler(
      updatePaymentMethodUpdate,
      async (change) => {
        const retry = this.changePaymentMethod(change);
        // Answers with the retry's outcome, unless it waits for a webhook (the snapshot says so).
        if (retry) {
          await condition(
            () =>
              this.state.dunning !== retry.dunning ||
              retry.dunning.retryRequestsServed >= retry.request ||
              this.state.pendingPayment !== null ||
              this.hasEnded(),
          );
        }
        await this.project();
        return this.snapshot();
      },
      {
        validator: (change) => {
          this.assertChangeable();
          if (!isPaymentMethodToken(change?.paymentMethod)) throw new Error('paymentMethod must be a payment method token such as pm_card_visa');
        },
      },
    );
  }

  /** Messages that need no answer: a card from a webhook, staff actions, payment settlements. */
  private registerSignals(): void {
    setHandler(paymentMethodUpdatedSignal, async (change) => {
      if (this.hasEnded() || !isPaymentMethodToken(change?.paymentMethod)) {
        log.warn('payment method change ignored', { status: this.state.status });
        return;
      }
      this.changePaymentMethod(change);
      await this.project();
    });

    setHandler(retryPaymentNowSignal, () => {
      if (this.state.status !== 'past_due') return;
      this.state.dunning!.retryRequests += 1;
      this.wakeups += 1;
    });

    setHandler(extendGraceSignal, async (extension) => {
      const dunning = this.state.dunning;
      const by = extension?.by;
      // Bounded here as well as at the API: an unbounded one would make an invalid date at every replay.
      if (this.state.status !== 'past_due' || !dunning || typeof by !== 'string' || !isDurationWithin(by, LONGEST_GRACE_EXTENSION)) {
        log.warn('grace extension ignored', { status: this.state.status, by });
        return;
      }
      const graceEndsAt = addDuration(new Date(dunning.graceEndsAt), by);
      this.log({ kind: 'grace_extended', detail: `by ${by}, until ${graceEndsAt.toISOString()}` });
      dunning.graceEndsAt = graceEndsAt.toISOString();
      this.wakeups += 1;
      await this.project();
    });

    setHandler(paymentSettledSignal, (settlement) => {
      this.state.settlements.push(settlement);
      this.state.settlements.splice(0, Math.max(0, this.state.settlements.length - MAX_UNMATCHED_SETTLEMENTS));
    });
  }

  /** Records the method; while past due, also asks the loop for a retry and says which request it is. */
  private changePaymentMethod({ paymentMethod }: PaymentMethodChange): { dunning: DunningState; request: number } | null {
    this.state.paymentMethod = paymentMethod;
    this.wakeups += 1;
    const { dunning } = this.state;
    if (this.state.status !== 'past_due' || !dunning) return null;
    dunning.automaticRetriesStopped = false;
    dunning.retryRequests += 1;
    return { dunning, request: dunning.retryRequests };
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing
  // -------------------------------------------------------------------------------------------

  /**
   * The next run starts with this state. Handlers finish first (their effects are in the state
   * carried over); a cancel-now asked for meanwhile is applied here instead of hopping.
   */
  private async continueAsNewWhenIdle(): Promise<void> {
    // Usually the receipt is on its way: let it land here rather than send it again next run.
    if (this.state.outbox.length > 0) await condition(() => this.state.outbox.length === 0, OUTBOX_DRAIN_WAIT);
    // Checked last, so no handler can start between this check and the hop. A handler waiting for
    // the loop (a change or resume to charge) is served first: this run goes on instead of hopping.
    const waitingForLoop = () => this.state.changeRequest != null || this.state.resumeRequest != null;
    await condition(() => allHandlersFinished() || this.state.cancelNowRequested || waitingForLoop());
    if (this.state.cancelNowRequested || waitingForLoop()) return;
    const taskQueue = this.renewalsTaskQueue();
    await makeContinueAsNewFunc<typeof subscriptionWorkflow>(taskQueue ? { taskQueue } : {})({ ...this.input, carried: this.state });
  }

  /**
   * Where the next run goes: the queue the starter named, or for runs started before it was named,
   * `renewals` when this one runs on the production `billing` (tests use queues of their own).
   */
  private renewalsTaskQueue(): string | undefined {
    if (!patched(RENEWALS_QUEUE_PATCH)) return undefined;
    if (this.input.renewalsTaskQueue) return this.input.renewalsTaskQueue;
    return workflowInfo().taskQueue === TASK_QUEUES.billing ? TASK_QUEUES.renewals : undefined;
  }
}

function activationOutcomeOf(status: SubscriptionStatus): ActivationResult['outcome'] {
  return status === 'trialing' ? 'trialing' : status === 'incomplete' ? 'pending' : 'active';
}

function paymentOf(charge: ChargeResult): ActivationResult['payment'] {
  return { paymentId: charge.paymentId, status: charge.status, failureCode: charge.failureCode, decline: charge.decline };
}
