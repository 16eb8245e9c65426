/**
 * One workflow per subscription, for its whole life: the first charge (or a trial), a durable
 * timer to each billing date, renewal, dunning after a failed renewal, cancellation and expiry.
 * It continues as new after every paid period, carrying its whole state, so history stays small.
 *
 * Only the main loop changes the lifecycle. Handlers record what was asked, wake the loop and,
 * where the caller needs the outcome (cancel now, a new card while past due), wait for the loop
 * to apply it.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { NotificationActivities } from '../activities/notification';
import type { PaymentActivities } from '../activities/payment';
import type { SubscriptionActivities, SubscriptionProjection } from '../activities/subscription';
import { dunningTimeline, type DunningEvent } from '../domain/dunning';
import { formatMoney } from '../domain/money';
import type { NotificationInput, NotificationKind } from '../domain/notification';
import {
  chargeIdempotencyKey,
  classifyDecline,
  PAYMENT_TIMEOUT_FAILURE_CODE,
  type DeclineKind,
  type OrphanedPayment,
  type PaymentSettlement,
} from '../domain/payment';
import { addDuration, describeTimeSpan, isIsoDuration, isPositiveDuration } from '../domain/period';
import {
  billingPeriod,
  isFinalStatus,
  transition,
  type DunningLogEntry,
  type DunningSnapshot,
  type PlanTerms,
  type SubscriptionSnapshot,
  type SubscriptionStatus,
} from '../domain/subscription';
import { subscriptionDetails } from '../domain/workflow-descriptions';
import {
  CANCEL_PENDING_AT_TIMEOUT_PATCH,
  CANCEL_PENDING_PAYMENT_OPTIONS,
  paymentSettledSignal,
  refundOrphanedCharge,
  WITHDRAW_PENDING_ON_CANCEL_PATCH,
} from './payment';
import { SubscriptionStatusAttribute, upsertStatusAttribute } from './search-attributes';

// ---------------------------------------------------------------------------------------------
// Contract: input, result, signals, updates, queries
// ---------------------------------------------------------------------------------------------

export interface SubscriptionWorkflowInput {
  subscriptionId: string;
  userId: string;
  /** The plan's terms at subscribe time; later plan edits do not change a running subscription. */
  plan: PlanTerms;
  paymentMethod: string;
  /** How long a charge may wait for its webhook (ISO-8601, e.g. `P1D`) before it counts as failed. */
  pendingPaymentTimeout: string;
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

// ---------------------------------------------------------------------------------------------
// Activities (types only: the worker supplies the implementations)
// ---------------------------------------------------------------------------------------------

// Infrastructure faults are retried until they pass; business outcomes (declines) are results.
const { recordSubscription } = proxyActivities<SubscriptionActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});
// One key per (workflow, cycle, attempt), so retrying this activity can never charge twice.
const { chargePayment, settlePayment } = proxyActivities<PaymentActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});
const { cancelPendingPayment } = proxyActivities<PaymentActivities>(CANCEL_PENDING_PAYMENT_OPTIONS);
const { notify } = proxyActivities<NotificationActivities>({
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumInterval: '10 minutes',
    nonRetryableErrorTypes: ['UserNotFound'],
  },
});

// ---------------------------------------------------------------------------------------------
// State carried across continue-as-new
// ---------------------------------------------------------------------------------------------

export interface SubscriptionState {
  status: SubscriptionStatus;
  paymentMethod: string;
  startedAt: string;
  /** Every billing date is counted from here: the start, or the trial's end. */
  anchorDate: string;
  trialEnd: string | null;
  /** Paid periods so far. */
  cycle: number;
  cancelAtPeriodEnd: boolean;
  cancelNowRequested: boolean;
  canceledAt: string | null;
  endedAt: string | null;
  pendingPayment: SubscriptionSnapshot['pendingPayment'];
  dunning: DunningState | null;
  lastPayment: SubscriptionSnapshot['lastPayment'];
  /** Webhook answers not yet matched to the pending charge (a webhook can outrun the charge's reply). */
  settlements: PaymentSettlement[];
  /** Notifications not yet delivered. */
  outbox: NotificationInput[];
}

interface DunningState {
  cycle: number;
  failedAt: string;
  graceEndsAt: string;
  attempts: number;
  /** Index of the next event of the timeline to act on. */
  nextEvent: number;
  retriesDone: number;
  automaticRetriesStopped: boolean;
  lastFailureCode: string | null;
  lastDecline: DeclineKind | null;
  /** Retries asked for now (new card, staff) and how many of those asks have been served. */
  retryRequests: number;
  retryRequestsServed: number;
  log: DunningLogEntry[];
}

type AttemptOutcome =
  | { status: 'succeeded'; paymentId: string }
  | { status: 'failed'; paymentId: string; failureCode: string; decline: DeclineKind }
  // Cancel-now arrived while the charge waited for its webhook.
  | { status: 'interrupted'; paymentId: string };

const MAX_UNMATCHED_SETTLEMENTS = 20;
const OUTBOX_DRAIN_WAIT = '1 minute';

// ---------------------------------------------------------------------------------------------
// The workflow
// ---------------------------------------------------------------------------------------------

export async function subscriptionWorkflow(input: SubscriptionWorkflowInput): Promise<SubscriptionSnapshot> {
  return new Subscription(input).run();
}

class Subscription {
  private readonly state: SubscriptionState;
  private readonly workflowId = workflowInfo().workflowId;
  private activation: ActivationResult | null = null;
  /** Bumped by every handler that gives the main loop something to look at. */
  private wakeups = 0;
  private projections: Promise<void> = Promise.resolve();
  /** A charge that went through as the customer canceled: refunded once the subscription has ended. */
  private chargeToRefund: OrphanedPayment | null = null;

  constructor(private readonly input: SubscriptionWorkflowInput) {
    this.state = input.carried ?? initialState(input.paymentMethod, now());
  }

  async run(): Promise<SubscriptionSnapshot> {
    this.registerHandlers();
    this.publish();
    for (const notification of this.state.outbox) this.deliver(notification);
    if (this.input.carried) {
      this.activation = { outcome: activationOutcomeOf(this.state.status), subscription: this.snapshot(), payment: null };
    } else {
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
    const { trialPeriod } = this.input.plan;
    if (trialPeriod) {
      const trialEnd = addDuration(new Date(this.state.startedAt), trialPeriod).toISOString();
      Object.assign(this.state, { status: transition('incomplete', 'trialing'), trialEnd, anchorDate: trialEnd });
      await this.project();
      this.activation = { outcome: 'trialing', subscription: this.snapshot(), payment: null };
      return;
    }
    const outcome = await this.attemptCharge(1, 1, (charge) => {
      if (charge.status !== 'pending') return;
      this.activation = { outcome: 'pending', subscription: this.snapshot(), payment: paymentOf(charge) };
    });
    if (outcome.status === 'succeeded') {
      await this.startPaidPeriod(1);
    } else if (outcome.status === 'interrupted') {
      await this.cancelNow();
    } else {
      this.state.endedAt = now().toISOString();
      await this.project();
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
      default:
        throw new Error(`no step for status ${this.state.status}`);
    }
  }

  /** Sleeps until the period (or trial) ends, then charges the next period. */
  private async waitAndRenew(): Promise<boolean> {
    const due = await this.sleepUntil(new Date(this.periodEnd()));
    if (this.state.cancelNowRequested) {
      await this.cancelNow();
      return false;
    }
    if (!due) return false;
    if (this.state.cancelAtPeriodEnd) {
      await this.cancelNow(this.periodEnd());
      return false;
    }
    const cycle = this.state.cycle + 1;
    const outcome = await this.attemptCharge(cycle, 1);
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

  private async startPaidPeriod(cycle: number): Promise<void> {
    this.state.status = transition(this.state.status, 'active');
    this.state.cycle = cycle;
    this.state.dunning = null;
    await this.project();
    const { plan } = this.input;
    const period = billingPeriod(new Date(this.state.anchorDate), plan.interval, cycle);
    this.notify('payment_succeeded', `${cycle}:paid`, `Payment received for ${plan.name}`, [
      `We received ${formatMoney(plan.amount, plan.currency)} for ${plan.name}, covering ${formatInstant(period.start)} to ${formatInstant(period.end)}.`,
      this.state.cancelAtPeriodEnd ? 'Your subscription ends then.' : `Your next payment is due on ${formatInstant(period.end)}.`,
    ]);
  }

  private async startDunning(cycle: number, failure: Extract<AttemptOutcome, { status: 'failed' }>): Promise<void> {
    const failedAt = now();
    const graceEndsAt = addDuration(failedAt, this.input.plan.dunning.gracePeriod);
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
    const { plan } = this.input;
    const nextRetry = this.upcoming('retry');
    this.notify('payment_failed', `${cycle}:failed`, `Your payment for ${plan.name} failed`, [
      `We could not charge ${formatMoney(plan.amount, plan.currency)} for ${plan.name} (${failure.failureCode}).`,
      failure.decline === 'hard' || !nextRetry
        ? 'We will not retry this payment method.'
        : `We will try again on ${formatInstant(nextRetry.at)}.`,
      `Update your payment method before ${formatInstant(graceEndsAt)} to keep your subscription.`,
    ]);
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
      const event = dunningTimeline(new Date(dunning.failedAt), this.input.plan.dunning, new Date(dunning.graceEndsAt))[dunning.nextEvent];
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
    const outcome = await this.attemptCharge(dunning.cycle, attempt);
    dunning.attempts = attempt;
    if (outcome.status === 'succeeded') {
      this.log({ kind, attempt, outcome: 'succeeded' });
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
    const { plan } = this.input;
    const timeLeft = describeTimeSpan(event.timeLeftMs);
    this.log({ kind: 'reminder', detail: `reminder ${event.reminder} of ${event.of}: ${timeLeft} left` });
    await this.project();
    this.notify('grace_reminder', `${dunning.cycle}:reminder:${event.reminder}`, `${timeLeft} left to keep ${plan.name}`, [
      `Your payment of ${formatMoney(plan.amount, plan.currency)} for ${plan.name} is still outstanding (${dunning.lastFailureCode}).`,
      `You have ${timeLeft} left: update your payment method before ${formatInstant(new Date(dunning.graceEndsAt))} or your subscription expires.`,
    ]);
  }

  private async expire(): Promise<void> {
    this.state.status = transition(this.state.status, 'expired');
    this.state.endedAt = now().toISOString();
    this.log({ kind: 'expired' });
    await this.project();
    const { plan } = this.input;
    this.notify('subscription_expired', 'expired', `Your ${plan.name} subscription has expired`, [
      `We could not collect ${formatMoney(plan.amount, plan.currency)} for ${plan.name} before the grace period ended, so the subscription has expired.`,
      'You are welcome to subscribe again at any time.',
    ]);
  }

  /** Ends the subscription; `at` is the period end for a cancel-at-period-end. */
  private async cancelNow(at = now().toISOString()): Promise<void> {
    this.state.status = transition(this.state.status, 'canceled');
    this.state.cancelNowRequested = false;
    this.state.canceledAt ??= at;
    this.state.endedAt = at;
    await this.project();
    const { plan } = this.input;
    this.notify('subscription_canceled', 'canceled', `Your ${plan.name} subscription has ended`, [
      `Your ${plan.name} subscription was canceled on ${formatInstant(new Date(at))}. You will not be charged again.`,
    ]);
    if (this.chargeToRefund) await refundOrphanedCharge(this.chargeToRefund);
  }

  // -------------------------------------------------------------------------------------------
  // Charging
  // -------------------------------------------------------------------------------------------

  /**
   * Charges once for (cycle, attempt) and, when the gateway answers pending, waits for the
   * webhook's settlement up to the pending timeout; a charge still pending then is canceled at
   * the gateway and counts as failed, unless the gateway says it succeeded first.
   * `onAnswered` runs as soon as the gateway has replied, before any wait.
   */
  private async attemptCharge(
    cycle: number,
    attempt: number,
    onAnswered?: (charge: Awaited<ReturnType<PaymentActivities['chargePayment']>>) => void,
  ): Promise<AttemptOutcome> {
    const { plan, subscriptionId, userId } = this.input;
    const charge = await chargePayment({
      kind: 'subscription',
      userId,
      subscriptionId,
      amount: plan.amount,
      currency: plan.currency,
      paymentMethod: this.state.paymentMethod,
      idempotencyKey: chargeIdempotencyKey(this.workflowId, cycle, attempt),
      cycle,
      attempt,
      description: `${plan.name}, period ${cycle}`,
    });
    this.state.lastPayment = { paymentId: charge.paymentId, cycle, attempt, status: charge.status, at: now().toISOString() };
    onAnswered?.(charge);
    if (charge.status === 'succeeded') return { status: 'succeeded', paymentId: charge.paymentId };
    if (charge.status === 'failed') return this.failed(charge.paymentId, charge.failureCode);
    return this.awaitSettlement(charge.paymentId, charge.gatewayPaymentId, cycle, attempt);
  }

  private async awaitSettlement(paymentId: string, gatewayPaymentId: string | null, cycle: number, attempt: number): Promise<AttemptOutcome> {
    const since = now();
    // While past due, a charge waiting for its webhook does not hold the subscription past its grace.
    const graceEnd = this.state.dunning ? new Date(this.state.dunning.graceEndsAt) : null;
    const timeout = addDuration(since, this.input.pendingPaymentTimeout);
    const expiresAt = graceEnd && graceEnd < timeout ? graceEnd : timeout;
    this.state.pendingPayment = { paymentId, cycle, attempt, since: since.toISOString(), expiresAt: expiresAt.toISOString() };
    await this.project();
    const { plan } = this.input;
    this.notify('payment_action_required', `${cycle}:${attempt}:action`, `Confirm your payment for ${plan.name}`, [
      `Your bank needs you to confirm the payment of ${formatMoney(plan.amount, plan.currency)} for ${plan.name}.`,
      `Please confirm it before ${formatInstant(expiresAt)}.`,
    ]);
    const remaining = expiresAt.getTime() - now().getTime();
    if (remaining > 0) {
      await condition(() => this.settlementOf(paymentId) !== undefined || this.state.cancelNowRequested, remaining);
    }
    this.state.pendingPayment = null;
    const settlement = this.settlementOf(paymentId);
    if (settlement) {
      this.state.settlements = this.state.settlements.filter((s) => s !== settlement);
      // Usually the webhook has recorded it already; recording it here too keeps the row right
      // whoever signalled (a settlement only ever changes a pending payment).
      await settlePayment(settlement);
      this.state.lastPayment = { ...this.state.lastPayment!, status: settlement.status };
      if (settlement.status === 'succeeded') return { status: 'succeeded', paymentId };
      return this.failed(paymentId, settlement.failureCode);
    }
    if (this.state.cancelNowRequested) {
      if (patched(WITHDRAW_PENDING_ON_CANCEL_PATCH)) await this.withdrawInterruptedCharge(paymentId, gatewayPaymentId);
      return { status: 'interrupted', paymentId };
    }
    if (!patched(CANCEL_PENDING_AT_TIMEOUT_PATCH)) {
      // Runs from before the cancel: counted as failed without asking the gateway.
      await settlePayment({ paymentId, gatewayPaymentId: gatewayPaymentId ?? '', status: 'failed', failureCode: PAYMENT_TIMEOUT_FAILURE_CODE });
      this.state.lastPayment = { ...this.state.lastPayment!, status: 'failed' };
      return this.failed(paymentId, PAYMENT_TIMEOUT_FAILURE_CODE);
    }
    return this.cancelTimedOutCharge(paymentId);
  }

  /**
   * Cancels a charge whose pending timeout has passed, so a late authentication cannot take
   * money for a failed attempt. The gateway may answer that it succeeded first: then it is paid.
   */
  private async cancelTimedOutCharge(paymentId: string): Promise<AttemptOutcome> {
    const final = await cancelPendingPayment({ paymentId });
    const paid = final.status === 'succeeded';
    this.state.lastPayment = { ...this.state.lastPayment!, status: paid ? 'succeeded' : 'failed' };
    if (paid) return { status: 'succeeded', paymentId };
    return this.failed(paymentId, final.failureCode);
  }

  /**
   * The customer canceled while a charge awaited their bank: it is canceled at the gateway, so a
   * late authentication cannot take money for a subscription that has ended; one that went
   * through first is refunded when the subscription has ended.
   */
  private async withdrawInterruptedCharge(paymentId: string, gatewayPaymentId: string | null): Promise<void> {
    const final = await cancelPendingPayment({ paymentId });
    this.state.lastPayment = { ...this.state.lastPayment!, status: final.status === 'succeeded' ? 'succeeded' : 'failed' };
    const chargedAt = final.gatewayPaymentId ?? gatewayPaymentId;
    if (final.status === 'succeeded' && chargedAt) this.chargeToRefund = { paymentId, gatewayPaymentId: chargedAt };
  }

  private failed(paymentId: string, failureCode: string | null): AttemptOutcome {
    const code = failureCode ?? 'card_declined';
    return { status: 'failed', paymentId, failureCode: code, decline: classifyDecline(code) };
  }

  private settlementOf(paymentId: string): PaymentSettlement | undefined {
    return this.state.settlements.find((s) => s.paymentId === paymentId);
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
      { validator: (change) => { this.assertChangeable(); assertPaymentMethod(change); } },
    );

    setHandler(paymentMethodUpdatedSignal, async (change) => {
      if (this.hasEnded() || !isPaymentMethod(change?.paymentMethod)) {
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
      if (this.state.status !== 'past_due' || !dunning || !isIsoDuration(by) || !isPositiveDuration(by)) {
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

  /** Canceled, expired, or never started (first charge declined). */
  private hasEnded(): boolean {
    return isFinalStatus(this.state.status) || this.state.endedAt !== null;
  }

  private assertChangeable(): void {
    if (this.hasEnded()) {
      throw new Error(`the subscription is ${this.state.status}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing
  // -------------------------------------------------------------------------------------------

  /** Waits for `at` on a durable timer; false when a handler woke the loop first. */
  private async sleepUntil(at: Date): Promise<boolean> {
    const seen = this.wakeups;
    const remaining = at.getTime() - now().getTime();
    if (remaining <= 0) return true;
    const woken = await condition(() => this.wakeups !== seen || this.state.cancelNowRequested, remaining);
    return !woken;
  }

  /**
   * The next run starts with this state. Handlers finish first (their effects are in the state
   * carried over); a cancel-now asked for meanwhile is applied here instead of hopping.
   */
  private async continueAsNewWhenIdle(): Promise<void> {
    // Usually the receipt is on its way: let it land here rather than send it again next run.
    if (this.state.outbox.length > 0) await condition(() => this.state.outbox.length === 0, OUTBOX_DRAIN_WAIT);
    // Checked last, so no handler can start between this check and the hop.
    await condition(() => allHandlersFinished() || this.state.cancelNowRequested);
    if (this.state.cancelNowRequested) return;
    await continueAsNew<typeof subscriptionWorkflow>({ ...this.input, carried: this.state });
  }

  /** Writes the row from the state at the time of writing; writes run one at a time, in order. */
  private project(): Promise<void> {
    this.publish();
    const write = this.projections.then(() => recordSubscription(this.projection()));
    this.projections = write.catch(() => undefined);
    return write;
  }

  /**
   * What support staff see in the Temporal UI, kept current: every state change is projected, so
   * it is published here too (a `SubscriptionStatus` search attribute, the details line).
   */
  private publish(): void {
    upsertStatusAttribute(SubscriptionStatusAttribute, this.state.status);
    setCurrentDetails(subscriptionDetails(this.snapshot()));
  }

  /**
   * Sends a notification without waiting for it: a mail outage must not hold up billing. Until
   * delivered it stays in the state's outbox, so a run that continues as new sends it again
   * (the dedupe key makes that one notification).
   */
  private notify(kind: NotificationKind, key: string, subject: string, lines: string[]): void {
    const notification: NotificationInput = {
      userId: this.input.userId,
      subscriptionId: this.input.subscriptionId,
      kind,
      subject,
      body: lines.join('\n\n'),
      dedupeKey: `${this.workflowId}:${key}`,
    };
    this.state.outbox.push(notification);
    this.deliver(notification);
  }

  private deliver(notification: NotificationInput): void {
    const delivered = () => {
      this.state.outbox = this.state.outbox.filter((n) => n.dedupeKey !== notification.dedupeKey);
    };
    notify(notification).then(delivered, (error: unknown) => {
      log.warn('notification dropped', { dedupeKey: notification.dedupeKey, error: String(error) });
      delivered();
    });
  }

  private log(entry: Omit<DunningLogEntry, 'at'>): void {
    this.state.dunning?.log.push({ at: now().toISOString(), ...entry });
  }

  private upcoming(kind: 'retry' | 'reminder'): DunningEvent | undefined {
    const dunning = this.state.dunning;
    if (!dunning || (kind === 'retry' && dunning.automaticRetriesStopped)) return undefined;
    return dunningTimeline(new Date(dunning.failedAt), this.input.plan.dunning, new Date(dunning.graceEndsAt))
      .slice(dunning.nextEvent)
      .find((event) => event.kind === kind);
  }

  /** End of the trial, or of the last paid period. */
  private periodEnd(): string {
    const { trialEnd, cycle, anchorDate } = this.state;
    if (cycle === 0) return trialEnd ?? anchorDate;
    return billingPeriod(new Date(anchorDate), this.input.plan.interval, cycle).end.toISOString();
  }

  /** The period shown to people: the trial, the paid period, or the unpaid one being collected. */
  private currentPeriod(): { start: string; end: string } | null {
    const { status, cycle, anchorDate, trialEnd, startedAt, dunning } = this.state;
    const shownCycle = status === 'past_due' && dunning ? dunning.cycle : cycle;
    if (shownCycle === 0) return trialEnd ? { start: startedAt, end: trialEnd } : null;
    const period = billingPeriod(new Date(anchorDate), this.input.plan.interval, shownCycle);
    return { start: period.start.toISOString(), end: period.end.toISOString() };
  }

  private nextBillingDate(): string | null {
    const { status, cancelAtPeriodEnd } = this.state;
    return (status === 'active' || status === 'trialing') && !cancelAtPeriodEnd ? this.periodEnd() : null;
  }

  private snapshot(): SubscriptionSnapshot {
    const { plan, subscriptionId, userId } = this.input;
    const period = this.currentPeriod();
    const s = this.state;
    return {
      subscriptionId,
      userId,
      status: s.status,
      plan: {
        planId: plan.planId,
        code: plan.code,
        name: plan.name,
        amount: plan.amount,
        currency: plan.currency,
        interval: plan.interval,
        price: formatMoney(plan.amount, plan.currency),
      },
      paymentMethod: s.paymentMethod,
      anchorDate: s.anchorDate,
      trialEnd: s.trialEnd,
      cycle: s.cycle,
      currentPeriodStart: period?.start ?? null,
      currentPeriodEnd: period?.end ?? null,
      nextBillingDate: this.nextBillingDate(),
      cancelAtPeriodEnd: s.cancelAtPeriodEnd,
      canceledAt: s.canceledAt,
      endedAt: s.endedAt,
      pendingPayment: s.pendingPayment,
      dunning: s.dunning && this.dunningSnapshot(s.dunning),
      lastPayment: s.lastPayment,
    };
  }

  private dunningSnapshot(d: DunningState): DunningSnapshot {
    return {
      cycle: d.cycle,
      failedAt: d.failedAt,
      graceEndsAt: d.graceEndsAt,
      attempts: d.attempts,
      retriesDone: d.retriesDone,
      retriesTotal: this.input.plan.dunning.retryOffsets.length,
      nextRetryAt: this.upcoming('retry')?.at.toISOString() ?? null,
      nextReminderAt: this.upcoming('reminder')?.at.toISOString() ?? null,
      automaticRetriesStopped: d.automaticRetriesStopped,
      lastFailureCode: d.lastFailureCode,
      lastDecline: d.lastDecline,
      log: d.log,
    };
  }

  private projection(): SubscriptionProjection {
    const snapshot = this.snapshot();
    return {
      subscriptionId: this.input.subscriptionId,
      userId: this.input.userId,
      planId: this.input.plan.planId,
      workflowId: this.workflowId,
      status: snapshot.status,
      paymentMethod: snapshot.paymentMethod,
      anchorDate: snapshot.anchorDate,
      cycle: snapshot.cycle,
      currentPeriodStart: snapshot.currentPeriodStart,
      currentPeriodEnd: snapshot.currentPeriodEnd,
      nextBillingDate: snapshot.nextBillingDate,
      trialEnd: snapshot.trialEnd,
      cancelAtPeriodEnd: snapshot.cancelAtPeriodEnd,
      canceledAt: snapshot.canceledAt,
      graceEndsAt: snapshot.dunning?.graceEndsAt ?? null,
      attemptCount: snapshot.dunning?.attempts ?? 0,
    };
  }
}

/** A subscription's state before its first charge. */
export function initialState(paymentMethod: string, startedAt: Date): SubscriptionState {
  const start = startedAt.toISOString();
  return {
    status: 'incomplete',
    paymentMethod,
    startedAt: start,
    anchorDate: start,
    trialEnd: null,
    cycle: 0,
    cancelAtPeriodEnd: false,
    cancelNowRequested: false,
    canceledAt: null,
    endedAt: null,
    pendingPayment: null,
    dunning: null,
    lastPayment: null,
    settlements: [],
    outbox: [],
  };
}

/** The workflow clock: inside the workflow sandbox `Date` reads the deterministic workflow time. */
function now(): Date {
  return new Date();
}

function activationOutcomeOf(status: SubscriptionStatus): ActivationResult['outcome'] {
  return status === 'trialing' ? 'trialing' : status === 'incomplete' ? 'pending' : 'active';
}

function paymentOf(charge: Awaited<ReturnType<PaymentActivities['chargePayment']>>): ActivationResult['payment'] {
  return { paymentId: charge.paymentId, status: charge.status, failureCode: charge.failureCode, decline: charge.decline };
}

function isPaymentMethod(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9_]{3,255}$/.test(value);
}

function assertPaymentMethod(change: PaymentMethodChange): void {
  if (!isPaymentMethod(change?.paymentMethod)) throw new Error('paymentMethod must be a payment method token such as pm_card_visa');
}

/** "2025-03-17 09:00 UTC": dates in messages name the time too, since short plans renew within a day. */
function formatInstant(date: Date): string {
  const iso = date.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}
