/**
 * One way to charge with a pending outcome, for every workflow that takes money: charge once,
 * and when the gateway answers pending (3-D Secure, a slow bank) wait for the payment webhook's
 * settlement up to a timeout; a charge still pending then is canceled at the gateway, whose
 * answer decides it (it may have succeeded first), or, in runs from before that patch, recorded
 * as failed. Money safety comes from the charge's idempotency key (workflow, cycle, attempt):
 * the gateway and the unique `payments.idempotency_key` column both answer a repeat with the
 * first charge, so activity retries and replays never charge twice.
 */
import { ActivityFailure, ApplicationFailure, condition, log, patched } from '@temporalio/workflow';
import { classifyDecline, PAYMENT_TIMEOUT_FAILURE_CODE, type ChargeInput, type ChargeResult, type PaymentSettlement } from '../domain/payment';
import { settlePayment, type GatewayActivities } from './activity-options';

/**
 * Runs that started before a pending charge was canceled at its timeout keep recording it failed
 * without asking the gateway, as their histories say they did.
 */
export const CANCEL_PENDING_AT_TIMEOUT_PATCH = 'cancel-pending-at-timeout';

/**
 * Charges pay from the customer's credit balance first (`ChargeInput.applyCredit`), the card only
 * for the rest. Runs replaying histories recorded before the credit balance existed take the old
 * path (the card for the whole amount), as their histories say they did; every workflow that
 * charges (one-time payments, bookings, subscriptions) passes `applyCredit: patched(APPLY_CREDIT_PATCH)`.
 */
export const APPLY_CREDIT_PATCH = 'apply-credit-balance';

/** The wait ended without a settlement because the caller asked it to (a cancel-now). */
export const INTERRUPTED = { status: 'interrupted' } as const;

export interface SettlementWait {
  /** How long the charge may stay pending from now; nothing is awaited when 0 or less. */
  waitMs: number;
  /** The webhook's settlement of this charge, once it has arrived. */
  settlement(paymentId: string): PaymentSettlement | undefined;
  /** Ends the wait early, leaving the charge undecided; the answer is then INTERRUPTED. */
  interrupted?(): boolean;
  /** Told as soon as the wait is over, before anything is recorded (state shown to handlers). */
  afterWait?(): void;
}

/**
 * Charges once. A request the gateway refuses outright can never succeed: it is answered as a
 * hard decline rather than failing the workflow. (Every other fault is retried by the preset.)
 */
export async function chargeOnce(gateway: GatewayActivities, input: ChargeInput): Promise<ChargeResult> {
  try {
    return await gateway.chargePayment(input);
  } catch (err) {
    if (!(err instanceof ActivityFailure) || !(err.cause instanceof ApplicationFailure) || !err.cause.nonRetryable) throw err;
    log.warn('charge refused by the gateway', { error: String(err.cause) });
    return {
      paymentId: input.paymentId ?? '',
      status: 'failed',
      gatewayPaymentId: null,
      failureCode: 'invalid_request',
      decline: 'hard',
      creditApplied: 0,
    };
  }
}

/**
 * Decides a pending charge: the webhook's settlement if it comes within `wait.waitMs`, else the
 * gateway's answer to a cancel. The settlement is recorded on the payment row here too (usually
 * the webhook has done it already; a settlement only ever changes a pending payment).
 */
export function settlePendingCharge(
  gateway: GatewayActivities,
  pending: ChargeResult,
  wait: Omit<SettlementWait, 'interrupted'>,
): Promise<ChargeResult>;
export function settlePendingCharge(
  gateway: GatewayActivities,
  pending: ChargeResult,
  wait: SettlementWait & Required<Pick<SettlementWait, 'interrupted'>>,
): Promise<ChargeResult | typeof INTERRUPTED>;
export async function settlePendingCharge(
  gateway: GatewayActivities,
  pending: ChargeResult,
  wait: SettlementWait,
): Promise<ChargeResult | typeof INTERRUPTED> {
  const { paymentId } = pending;
  if (wait.waitMs > 0) {
    await condition(() => wait.settlement(paymentId) !== undefined || (wait.interrupted?.() ?? false), wait.waitMs);
  }
  wait.afterWait?.();
  const settlement = wait.settlement(paymentId);
  if (settlement) {
    await settlePayment(settlement);
    return settled(pending, settlement);
  }
  if (wait.interrupted?.()) return INTERRUPTED;
  if (patched(CANCEL_PENDING_AT_TIMEOUT_PATCH)) {
    // Canceled so a late authentication cannot take money for an attempt counted as failed.
    log.warn('pending payment timed out; canceling it', { paymentId });
    return gateway.cancelPendingPayment({ paymentId });
  }
  log.warn('pending payment timed out', { paymentId });
  const timedOut: PaymentSettlement = {
    paymentId,
    gatewayPaymentId: pending.gatewayPaymentId ?? '',
    status: 'failed',
    failureCode: PAYMENT_TIMEOUT_FAILURE_CODE,
  };
  await settlePayment(timedOut);
  return settled(pending, timedOut);
}

function settled(pending: ChargeResult, settlement: PaymentSettlement): ChargeResult {
  const failed = settlement.status === 'failed';
  return {
    ...pending,
    status: settlement.status,
    failureCode: failed ? settlement.failureCode : null,
    decline: failed ? classifyDecline(settlement.failureCode) : null,
  };
}
