/**
 * The plumbing of a subscription's run, beneath the lifecycle in workflow.ts: the carried state,
 * the workflow clock's timers, the projection to PostgreSQL and the Web UI, and the notice outbox.
 */
import { condition, log, patched, setCurrentDetails, workflowInfo } from '@temporalio/workflow';
import { notificationDedupeKey, type NotificationInput } from '../../domain/notification';
import { classifyDecline, type DeclineKind, type PaymentSettlement } from '../../domain/payment';
import { isFinalStatus, type DunningLogEntry, type PlanTerms, type SubscriptionSnapshot } from '../../domain/subscription';
import type { SubscriptionNotice } from '../../domain/subscription-notices';
import {
  initialState,
  OUTBOX_LIMIT,
  periodEnd,
  quantityOf,
  termsOf,
  subscriptionProjection,
  subscriptionSnapshot,
  type SubscriptionProjection,
  type SubscriptionState,
} from '../../domain/subscription-state';
import { subscriptionDetails } from '../../domain/workflow-descriptions';
import { gatewayActivities, notify, notifyLocally, recordSubscription, recordSubscriptionLocally, type GatewayActivities } from '../activity-options';
import { msUntil, now } from '../clock';
import { SubscriptionStatusAttribute, upsertStatusAttribute } from '../search-attributes';
import type { SubscriptionWorkflowInput } from './contract';

/**
 * The projection and the notices run as local activities, inside the workflow task that asks for
 * them (workflows/activity-options.ts, LOCAL_PROJECTION). Runs that began before keep scheduling
 * activity tasks, as their histories say they did.
 */
export const LOCAL_STEPS_PATCH = 'subscription-local-steps';

export type AttemptOutcome =
  | { status: 'succeeded'; paymentId: string }
  | { status: 'failed'; paymentId: string; failureCode: string; decline: DeclineKind }
  // Cancel-now arrived while the charge waited for its webhook.
  | { status: 'interrupted'; paymentId: string };

export abstract class SubscriptionRun {
  protected readonly state: SubscriptionState;
  protected readonly workflowId = workflowInfo().workflowId;
  protected readonly gateway: GatewayActivities;
  /** What the last charge asked for (coupon and tax included), for the notice that follows it. */
  protected chargedAmount: number | null = null;
  /** Bumped by every handler that gives the main loop something to look at. */
  protected wakeups = 0;
  protected projections: Promise<void> = Promise.resolve();

  constructor(protected readonly input: SubscriptionWorkflowInput) {
    this.state = input.carried ?? { ...initialState(input.paymentMethod, now()), ...(input.quantity ? { quantity: input.quantity } : {}) };
    this.gateway = gatewayActivities(input.paymentsTaskQueue);
  }

  /** The plan in force: the one subscribed to, or the one changed to since. */
  protected terms(): PlanTerms {
    return termsOf(this.input.plan, this.state);
  }

  /** The plan in force with its price for every seat: what a period costs, as charges and notices state it. */
  protected billedTerms(): PlanTerms {
    const plan = this.terms();
    return { ...plan, amount: plan.amount * quantityOf(this.state) };
  }

  /** The terms in force with what the last charge asked for (coupon and tax included), as its notice states it. */
  protected chargedTerms(): PlanTerms {
    const billed = this.billedTerms();
    return { ...billed, amount: this.chargedAmount ?? billed.amount };
  }

  protected failed(paymentId: string, failureCode: string | null): AttemptOutcome {
    const code = failureCode ?? 'card_declined';
    return { status: 'failed', paymentId, failureCode: code, decline: classifyDecline(code) };
  }

  protected settlementOf(paymentId: string): PaymentSettlement | undefined {
    return this.state.settlements.find((s) => s.paymentId === paymentId);
  }

  /** Canceled, expired, or never started (first charge declined). */
  protected hasEnded(): boolean {
    return isFinalStatus(this.state.status) || this.state.endedAt !== null;
  }

  protected assertChangeable(): void {
    if (this.hasEnded()) {
      throw new Error(`the subscription is ${this.state.status}`);
    }
  }

  /** Waits for `at` on a durable timer; false when a handler woke the loop first. */
  protected async sleepUntil(at: Date): Promise<boolean> {
    const seen = this.wakeups;
    const remaining = msUntil(at);
    if (remaining <= 0) return true;
    const woken = await condition(() => this.wakeups !== seen || this.state.cancelNowRequested, remaining);
    return !woken;
  }

  /** Waits for a handler to wake the loop (or a cancel-now), with no timer. */
  protected async waitForWakeup(): Promise<void> {
    const seen = this.wakeups;
    await condition(() => this.wakeups !== seen || this.state.cancelNowRequested);
  }

  /** Writes the row from the state at the time of writing; writes run one at a time, in order. */
  protected project(): Promise<void> {
    this.publish();
    const record = patched(LOCAL_STEPS_PATCH) ? recordSubscriptionLocally : recordSubscription;
    const write = this.projections.then(() => record(this.projection()));
    this.projections = write.catch(() => undefined);
    return write;
  }

  /**
   * What support staff see in the Temporal UI, kept current: every state change is projected, so
   * it is published here too (a `SubscriptionStatus` search attribute, the details line).
   */
  protected publish(): void {
    upsertStatusAttribute(SubscriptionStatusAttribute, this.state.status);
    setCurrentDetails(subscriptionDetails(this.snapshot()));
  }

  /**
   * Sends a notice without waiting for it: a mail outage must not hold up billing. Until it is
   * delivered or given up (the NOTIFICATION preset's bounded retries) it stays in the state's
   * outbox, so a run that continues as new sends it again (the dedupe key makes that one notice).
   * The outbox is capped: past OUTBOX_LIMIT the oldest notice is dropped, with a log line.
   */
  protected send({ kind, event, subject, body }: SubscriptionNotice, about: { paymentId?: string } = {}): void {
    const { userId, subscriptionId } = this.input;
    const dedupeKey = notificationDedupeKey(this.workflowId, event);
    // A notice about a charge names its invoice: the notification activity looks it up by the payment.
    const notification: NotificationInput = {
      userId,
      subscriptionId,
      kind,
      subject,
      body,
      dedupeKey,
      ...(about.paymentId ? { paymentId: about.paymentId } : {}),
    };
    this.state.outbox.push(notification);
    for (const dropped of this.state.outbox.splice(0, Math.max(0, this.state.outbox.length - OUTBOX_LIMIT))) {
      log.warn('notification dropped: outbox full', { dedupeKey: dropped.dedupeKey });
    }
    this.deliver(notification);
  }

  protected deliver(notification: NotificationInput): void {
    const delivered = () => {
      this.state.outbox = this.state.outbox.filter((n) => n.dedupeKey !== notification.dedupeKey);
    };
    const send = patched(LOCAL_STEPS_PATCH) ? notifyLocally : notify;
    send(notification).then(delivered, (error: unknown) => {
      log.warn('notification dropped', { dedupeKey: notification.dedupeKey, error: String(error) });
      delivered();
    });
  }

  protected log(entry: Omit<DunningLogEntry, 'at'>): void {
    this.state.dunning?.log.push({ at: now().toISOString(), ...entry });
  }

  /** End of the trial, or of the last paid period. */
  protected periodEnd(): string {
    return periodEnd(this.terms(), this.state);
  }

  protected snapshot(): SubscriptionSnapshot {
    return subscriptionSnapshot(this.input, this.state);
  }

  protected projection(): SubscriptionProjection {
    return subscriptionProjection(this.input, this.workflowId, this.state);
  }
}
