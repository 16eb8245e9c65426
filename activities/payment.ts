import { ApplicationFailure } from '@temporalio/common';
import { and, eq, inArray, ne, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { addRefundedAmount, chargeResultOf, refundStatusOf, type PaymentRow } from '../db/payments';
import { payments } from '../db/schema';
import {
  PAYMENT_ID_METADATA_KEY,
  PAYMENT_TIMEOUT_FAILURE_CODE,
  type ChargeInput,
  type ChargeOutcome,
  type ChargeResult,
  type OrphanedPayment,
  type PaymentGateway,
  type PaymentSettlement,
  type RefundInput,
  type RefundResult,
} from '../domain/payment';
import type { Logger } from '../platform/logger';

export interface PaymentActivityDeps {
  db: Database;
  gateway: PaymentGateway;
  logger: Logger;
}

export type PaymentActivities = ReturnType<typeof createPaymentActivities>;

/** What the refund of an orphaned charge needs to know about it. */
export interface LatePaymentSuccess {
  userId: string;
  amount: number;
  currency: string;
  /** What is left to refund (less when part of it was refunded already). */
  refundable: number;
  description: string | null;
  subscriptionId: string | null;
  bookingId: string | null;
}

/**
 * Charges, refunds and settlements, each exactly once per idempotency key. The `payments` row
 * is claimed first (unique key) and locked while the gateway is called, so a retried or
 * concurrent activity either waits and reuses the recorded answer or repeats the call with the
 * same key, which the gateway answers with the same charge.
 */
export function createPaymentActivities({ db, gateway, logger }: PaymentActivityDeps) {
  const deps: PaymentActivityDeps = { db, gateway, logger };
  return {
    chargePayment: (input: ChargeInput): Promise<ChargeResult> => chargePayment(deps, input),
    refundPayment: (input: RefundInput): Promise<RefundResult> => refundPayment(deps, input),
    settlePayment: (settlement: PaymentSettlement): Promise<void> => settlePayment(deps, settlement),
    cancelPendingPayment: (input: { paymentId: string }): Promise<ChargeResult> => cancelPendingPayment(deps, input),
    recordLatePaymentSuccess: (input: OrphanedPayment): Promise<LatePaymentSuccess> => recordLatePaymentSuccess(deps, input),
  };
}

async function chargePayment({ db, gateway, logger }: PaymentActivityDeps, input: ChargeInput): Promise<ChargeResult> {
  // Committed on its own so the pending charge stays visible even while the gateway is down.
  await db
    .insert(payments)
    .values({
      ...(input.paymentId ? { id: input.paymentId } : {}),
      kind: input.kind,
      userId: input.userId,
      subscriptionId: input.subscriptionId,
      bookingId: input.bookingId,
      amount: input.amount,
      currency: input.currency,
      status: 'pending',
      cycle: input.cycle,
      attempt: input.attempt,
      idempotencyKey: input.idempotencyKey,
      description: input.description,
    })
    .onConflictDoNothing({ target: payments.idempotencyKey });

  return db.transaction(async (tx) => {
    const [row] = await tx.select().from(payments).where(eq(payments.idempotencyKey, input.idempotencyKey)).for('update');
    if (!row) throw new Error(`payment ${input.idempotencyKey} vanished after being recorded`);
    if (gatewayHasAnswered(row)) return chargeResultOf(row);

    const outcome = await gateway.charge({
      amount: row.amount,
      currency: row.currency,
      paymentMethod: input.paymentMethod,
      idempotencyKey: row.idempotencyKey,
      customerRef: row.userId,
      description: input.description,
      metadata: chargeMetadata(row),
    });
    const [updated] = await tx
      .update(payments)
      .set({ ...projectionOf(outcome), updatedAt: new Date() })
      .where(eq(payments.id, row.id))
      .returning();
    logger.info(
      { paymentId: row.id, kind: row.kind, status: updated.status, failureCode: updated.failureCode, gateway: gateway.name },
      'charge recorded',
    );
    return chargeResultOf(updated);
  });
}

async function refundPayment({ db, gateway, logger }: PaymentActivityDeps, input: RefundInput): Promise<RefundResult> {
  if (!Number.isSafeInteger(input.amount) || input.amount <= 0) {
    throw ApplicationFailure.nonRetryable(`refund amount must be a positive integer, got ${input.amount}`, 'InvalidRefund');
  }
  return db.transaction(async (tx) => {
    // Locking the charge serialises refunds of it, so two can never exceed what was paid.
    const [original] = await tx.select().from(payments).where(eq(payments.id, input.paymentId)).for('update');
    if (!original) throw ApplicationFailure.nonRetryable(`no payment ${input.paymentId}`, 'PaymentNotFound');

    await tx
      .insert(payments)
      .values({
        kind: 'refund',
        userId: original.userId,
        subscriptionId: original.subscriptionId,
        bookingId: original.bookingId,
        amount: input.amount,
        currency: original.currency,
        status: 'pending',
        idempotencyKey: input.idempotencyKey,
        refundOf: original.id,
        description: input.reason,
      })
      .onConflictDoNothing({ target: payments.idempotencyKey });
    const [refund] = await tx.select().from(payments).where(eq(payments.idempotencyKey, input.idempotencyKey));
    if (refund.refundOf !== original.id) {
      throw ApplicationFailure.nonRetryable(`idempotency key ${input.idempotencyKey} belongs to another payment`, 'InvalidRefund');
    }
    if (gatewayHasAnswered(refund)) return { refundPaymentId: refund.id, status: refundStatusOf(refund) };

    assertRefundable(original, input.amount);
    const outcome = await gateway.refund({
      gatewayPaymentId: original.gatewayPaymentId!,
      amount: input.amount,
      idempotencyKey: input.idempotencyKey,
    });
    await tx
      .update(payments)
      .set({ status: outcome.status, gatewayPaymentId: outcome.gatewayRefundId, updatedAt: new Date() })
      .where(eq(payments.id, refund.id));
    // A pending refund has been accepted by the gateway; it counts against what may still be refunded.
    if (outcome.status !== 'failed') await addRefundedAmount(tx, original.id, input.amount);
    logger.info({ paymentId: original.id, refundPaymentId: refund.id, status: outcome.status }, 'refund recorded');
    return { refundPaymentId: refund.id, status: outcome.status };
  });
}

/** Applies the final answer of a pending charge; later or repeated settlements change nothing. */
async function settlePayment({ db, logger }: PaymentActivityDeps, settlement: PaymentSettlement): Promise<void> {
  const settled = await db
    .update(payments)
    .set({
      status: settlement.status,
      failureCode: settlement.status === 'failed' ? settlement.failureCode : null,
      gatewayPaymentId: sql`coalesce(${payments.gatewayPaymentId}, ${settlement.gatewayPaymentId})`,
      updatedAt: new Date(),
    })
    .where(and(eq(payments.id, settlement.paymentId), eq(payments.status, 'pending')))
    .returning({ id: payments.id });
  logger.info({ paymentId: settlement.paymentId, status: settlement.status, applied: settled.length > 0 }, 'payment settlement');
}

/**
 * A pending charge whose timeout has passed: canceled at the gateway so a late success cannot
 * take money for something we have given up, and recorded `failed`. The gateway may answer
 * that it succeeded after all, which is recorded and returned as a success. The row stays
 * locked meanwhile, so a webhook's settlement and this cancel cannot both win; a row already
 * final (settled while the workflow was deciding) is returned as it is.
 */
async function cancelPendingPayment({ db, gateway, logger }: PaymentActivityDeps, { paymentId }: { paymentId: string }): Promise<ChargeResult> {
  return db.transaction(async (tx) => {
    const [row] = await tx.select().from(payments).where(eq(payments.id, paymentId)).for('update');
    if (!row) throw ApplicationFailure.nonRetryable(`no payment ${paymentId}`, 'PaymentNotFound');
    if (row.status !== 'pending') return chargeResultOf(row);
    if (row.gatewayPaymentId === null) {
      // Only a charge the gateway answered `pending` (with its id) is ever waited for.
      throw ApplicationFailure.nonRetryable(`payment ${paymentId} has no gateway payment to cancel`, 'PaymentNotCancelable');
    }
    const outcome = await gateway.cancel({ gatewayPaymentId: row.gatewayPaymentId, idempotencyKey: `${row.idempotencyKey}/cancel` });
    const final =
      outcome.status === 'succeeded'
        ? { status: 'succeeded' as const, failureCode: null }
        : { status: 'failed' as const, failureCode: PAYMENT_TIMEOUT_FAILURE_CODE };
    const [updated] = await tx
      .update(payments)
      .set({ ...final, updatedAt: new Date() })
      .where(eq(payments.id, row.id))
      .returning();
    logger.warn({ paymentId, gatewayAnswer: outcome.status, status: updated.status }, 'pending payment timed out; canceled at the gateway');
    return chargeResultOf(updated);
  });
}

/**
 * Records that a charge counted as failed (or left pending by a workflow that has ended)
 * succeeded at the gateway after all, so it can be refunded. Repeating it changes nothing.
 */
async function recordLatePaymentSuccess(
  { db, logger }: PaymentActivityDeps,
  { paymentId, gatewayPaymentId }: OrphanedPayment,
): Promise<LatePaymentSuccess> {
  await db
    .update(payments)
    .set({
      status: 'succeeded',
      gatewayPaymentId: sql`coalesce(${payments.gatewayPaymentId}, ${gatewayPaymentId})`,
      updatedAt: new Date(),
    })
    .where(and(eq(payments.id, paymentId), ne(payments.kind, 'refund'), inArray(payments.status, ['pending', 'failed'])));
  const [row] = await db.select().from(payments).where(eq(payments.id, paymentId));
  if (!row || row.kind === 'refund') throw ApplicationFailure.nonRetryable(`no charge ${paymentId}`, 'PaymentNotFound');
  logger.warn({ paymentId, gatewayPaymentId, failureCode: row.failureCode }, 'late success of a payment given up; refunding it');
  return {
    userId: row.userId,
    amount: row.amount,
    currency: row.currency,
    refundable: row.amount - row.refundedAmount,
    description: row.description,
    subscriptionId: row.subscriptionId,
    bookingId: row.bookingId,
  };
}

function assertRefundable(original: PaymentRow, amount: number): void {
  if (original.kind === 'refund' || original.status !== 'succeeded' || original.gatewayPaymentId === null) {
    throw ApplicationFailure.nonRetryable(`payment ${original.id} (${original.kind}, ${original.status}) cannot be refunded`, 'PaymentNotRefundable');
  }
  const refundable = original.amount - original.refundedAmount;
  if (amount > refundable) {
    throw ApplicationFailure.nonRetryable(
      `refund of ${amount} exceeds the ${refundable} still refundable on payment ${original.id}`,
      'RefundExceedsPayment',
    );
  }
}

// A final status, or a pending one the gateway already gave an id to (awaiting its webhook).
function gatewayHasAnswered(row: PaymentRow): boolean {
  return row.status !== 'pending' || row.gatewayPaymentId !== null;
}

function projectionOf(outcome: ChargeOutcome): Pick<PaymentRow, 'status' | 'gatewayPaymentId' | 'failureCode'> {
  switch (outcome.status) {
    case 'succeeded':
    case 'pending':
      return { status: outcome.status, gatewayPaymentId: outcome.gatewayPaymentId, failureCode: null };
    case 'declined':
      return { status: 'failed', gatewayPaymentId: outcome.gatewayPaymentId, failureCode: outcome.failureCode };
  }
}

// Lets the webhook find the charge even when Stripe's event outruns our write of the intent id.
function chargeMetadata(row: PaymentRow): Record<string, string> {
  return {
    [PAYMENT_ID_METADATA_KEY]: row.id,
    kind: row.kind,
    ...(row.subscriptionId ? { subscription_id: row.subscriptionId } : {}),
    ...(row.bookingId ? { booking_id: row.bookingId } : {}),
  };
}
