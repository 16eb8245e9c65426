/**
 * How a subscription takes money, beneath the lifecycle: one charge per (cycle, attempt) or per
 * change, the wait for a pending charge's webhook, and the withdrawal of a charge that a
 * cancel-now interrupted. Money safety comes from each charge's idempotency key, derived from the
 * workflow id and what the charge is for: the gateway and `payments.idempotency_key` both answer a
 * repeat with the first charge, so activity retries and replays never charge twice.
 */
import { patched } from '@temporalio/workflow';
import { chargeIdempotencyKey, paymentActionLink, type ChargeResult, type ChargeSession, type OrphanedPayment } from '../../domain/payment';
import { addDuration } from '../../domain/period';
import { actionRequiredNotice } from '../../domain/subscription-notices';
import { APPLY_CREDIT_PATCH, chargeOnce, settlePendingCharge } from '../charge';
import { msUntil, now } from '../clock';
import { afterCycleCharged, coversNextCycle, type AppliedDiscount } from '../../domain/coupon';
import { periodOfCycle, quantityOf } from '../../domain/subscription-state';
import { pricePeriod, type PricedCharge } from '../../domain/subscription-pricing';
import { SubscriptionRun, type AttemptOutcome } from './run';

/**
 * Runs that started before a cancel-now withdrew the charge it interrupted leave that charge
 * pending at the gateway, as their histories say they did.
 */
export const WITHDRAW_PENDING_ON_CANCEL_PATCH = 'withdraw-pending-on-cancel';

export interface ChargeOptions {
  /** Runs as soon as the gateway has replied, before any wait for a webhook. */
  onAnswered?: (charge: ChargeResult) => void;
  /**
   * What a change or a resume charges (priced with domain/subscription-pricing.ts), under its own
   * idempotency key; the period `cycle` at the price in force by default. `period`: it pays a
   * period, so it uses one of the coupon's cycles when it succeeds.
   */
  purpose?: { charge: PricedCharge; idempotencyKey: string; period?: boolean };
}

export abstract class SubscriptionCharging extends SubscriptionRun {
  /** A charge that went through as the customer canceled: refunded once the subscription has ended. */
  protected chargeToRefund: OrphanedPayment | null = null;
  /** What the last charge asked for (discount and tax included), for the notice that follows it. */
  protected chargedAmount: number | null = null;

  /**
   * Charges once for (cycle, attempt), or for `options.purpose`, and, when the gateway answers
   * pending, waits for the webhook's settlement up to the pending timeout (workflows/charge.ts
   * decides it then); a cancel-now interrupts the wait.
   */
  protected async attemptCharge(cycle: number, attempt: number, session: ChargeSession, options: ChargeOptions = {}): Promise<AttemptOutcome> {
    const { subscriptionId, userId } = this.input;
    const billed = this.billedTerms();
    const purpose = options.purpose ?? {
      charge: this.pricePeriodOf(cycle),
      idempotencyKey: chargeIdempotencyKey(this.workflowId, cycle, attempt),
      period: true,
    };
    const priced = purpose.charge;
    // The coupon that priced this charge: a period's success uses one of its cycles.
    const coupon = purpose.period && coversNextCycle(this.state.discount ?? null) ? this.state.discount! : null;
    this.chargedAmount = priced.amount;
    const charge = await chargeOnce(this.gateway, {
      kind: 'subscription',
      userId,
      subscriptionId,
      amount: priced.amount,
      currency: billed.currency,
      paymentMethod: this.state.paymentMethod,
      session,
      // The credit balance pays first; the charge's own row says what it spent (workflows/charge.ts).
      applyCredit: patched(APPLY_CREDIT_PATCH),
      idempotencyKey: purpose.idempotencyKey,
      cycle,
      attempt,
      description: priced.lines[0].description,
      // The invoice says what was charged: the plan's line, its discount and tax (db/invoices.ts).
      invoiceLines: priced.lines,
    });
    this.state.lastPayment = { paymentId: charge.paymentId, cycle, attempt, status: charge.status, at: now().toISOString() };
    options.onAnswered?.(charge);
    const outcome = await this.outcomeOf(
      charge,
      cycle,
      attempt,
      options.purpose ? { event: purpose.idempotencyKey.slice(this.workflowId.length + 1), amount: priced.amount } : undefined,
    );
    if (outcome.status === 'succeeded' && purpose.period) this.periodPaidWith(coupon);
    return outcome;
  }

  /** What a period of the terms in force costs now: seats × price, less the coupon, plus tax. */
  protected pricePeriodOf(cycle: number, { resumed = false } = {}): PricedCharge {
    const billed = this.billedTerms();
    const period = resumed ? null : periodOfCycle(billed, this.state, cycle);
    return pricePeriod({
      plan: this.terms(),
      quantity: quantityOf(this.state),
      discount: this.state.discount,
      description: `${billed.name}, period ${cycle}${resumed ? ' (resumed)' : ''}`,
      period: period && { start: period.start.toISOString(), end: period.end.toISOString() },
    });
  }

  /** The coupon that priced the period just paid is what a change in that period is discounted by; it has one cycle fewer now. */
  private periodPaidWith(coupon: AppliedDiscount | null): void {
    this.state.periodDiscount = coupon;
    if (coupon && this.state.discount?.couponId === coupon.couponId) this.state.discount = afterCycleCharged(this.state.discount);
  }

  private outcomeOf(
    charge: ChargeResult,
    cycle: number,
    attempt: number,
    notice?: { event: string; amount: number },
  ): Promise<AttemptOutcome> | AttemptOutcome {
    if (charge.status === 'succeeded') return { status: 'succeeded', paymentId: charge.paymentId };
    if (charge.status === 'failed') return this.failed(charge.paymentId, charge.failureCode);
    // A change's or resume's charge is told apart from the period's own in the notice's key and amount.
    return this.awaitSettlement(charge, cycle, attempt, notice);
  }

  private async awaitSettlement(
    pending: ChargeResult,
    cycle: number,
    attempt: number,
    notice?: { event: string; amount: number },
  ): Promise<AttemptOutcome> {
    const { paymentId } = pending;
    const since = now();
    // While past due, a charge waiting for its webhook does not hold the subscription past its grace.
    const graceEnd = this.state.dunning ? new Date(this.state.dunning.graceEndsAt) : null;
    const timeout = addDuration(since, this.input.pendingPaymentTimeout);
    const expiresAt = graceEnd && graceEnd < timeout ? graceEnd : timeout;
    this.state.pendingPayment = { paymentId, cycle, attempt, since: since.toISOString(), expiresAt: expiresAt.toISOString() };
    await this.project();
    const billed = { ...this.billedTerms(), amount: notice?.amount ?? this.chargedAmount ?? this.billedTerms().amount };
    const action = actionRequiredNotice(billed, cycle, attempt, expiresAt, paymentActionLink(this.input.paymentActionUrl, paymentId));
    this.send(notice ? { ...action, event: `${notice.event}:action` } : action);
    const decided = await settlePendingCharge(this.gateway, pending, {
      waitMs: msUntil(expiresAt),
      settlement: (id) => this.settlementOf(id),
      interrupted: () => this.state.cancelNowRequested,
      afterWait: () => {
        this.state.pendingPayment = null;
      },
    });
    const used = this.settlementOf(paymentId);
    if (used) this.state.settlements = this.state.settlements.filter((s) => s !== used);
    if (decided.status === 'interrupted') {
      if (patched(WITHDRAW_PENDING_ON_CANCEL_PATCH)) await this.withdrawInterruptedCharge(paymentId, pending.gatewayPaymentId);
      return { status: 'interrupted', paymentId };
    }
    this.state.lastPayment = { ...this.state.lastPayment!, status: decided.status };
    if (decided.status === 'succeeded') return { status: 'succeeded', paymentId };
    return this.failed(paymentId, decided.failureCode);
  }

  /**
   * The customer canceled while a charge awaited their bank: it is canceled at the gateway, so a
   * late authentication cannot take money for a subscription that has ended; one that went
   * through first is refunded when the subscription has ended.
   */
  private async withdrawInterruptedCharge(paymentId: string, gatewayPaymentId: string | null): Promise<void> {
    const final = await this.gateway.cancelPendingPayment({ paymentId });
    this.state.lastPayment = { ...this.state.lastPayment!, status: final.status === 'succeeded' ? 'succeeded' : 'failed' };
    const chargedAt = final.gatewayPaymentId ?? gatewayPaymentId;
    if (final.status === 'succeeded' && chargedAt) this.chargeToRefund = { paymentId, gatewayPaymentId: chargedAt };
  }
}
