import { ApplicationFailure } from '@temporalio/common';
import { and, eq, inArray, isNull, ne, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { restoreCredit, spendCredit } from '../db/credits';
import { issueInvoiceFor } from '../db/invoices';
import {
  addRefundedAmount,
  cardChargedAmount,
  chargeResultOf,
  findPayment,
  refundStatusOf,
  refundedTotalOf,
  releaseRefundReservation,
  type PaymentRow,
} from '../db/payments';
import type { Transaction } from '../db/client';
import { payments } from '../db/schema';
import {
  PAYMENT_ID_METADATA_KEY,
  GatewayRequestRejectedError,
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
import { buildInvoice, InvalidInvoiceError } from '../domain/invoice';
import type { Logger } from '../platform/logger';
import { ensureGatewayCustomer } from './customers';

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
  /** What is left to refund to the card (less what the credit paid, or was refunded already). */
  refundable: number;
  description: string | null;
  subscriptionId: string | null;
  bookingId: string | null;
}

/**
 * Charges, refunds and settlements, each exactly once per idempotency key: the `payments` row is
 * claimed first (unique key), the gateway is called with that key (it answers a repeat with the
 * first charge or refund), and its answer is recorded onto the claimed row.
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

/**
 * Claim, call, record, with no transaction or row lock open across the gateway call (a slow
 * gateway must not hold PostgreSQL connections that holds and reads need):
 * - claim: the `payments` row, unique by idempotency key, committed on its own so a pending
 *   charge stays visible even while the gateway is down; a row the gateway has answered already
 *   is returned as it is (a retried activity charges nothing). With `applyCredit`, the same
 *   transaction spends the credit balance first (claimCharge): a retry finds the row and spends
 *   nothing more, and a charge the credit covers is recorded succeeded there and never reaches
 *   the gateway;
 * - call: the gateway, for what the credit left (amount - credit_applied), with the same
 *   idempotency key however often this runs (retries, two attempts racing): the gateway answers
 *   a repeat with the first charge, never a second one;
 * - record: the answer, onto a row still unanswered only, so a late or repeated attempt cannot
 *   overwrite what the first recorded (or what the webhook settled meanwhile). A decline gives the
 *   credit back in that same transaction, so only the attempt that recorded it does so.
 */
async function chargePayment(deps: PaymentActivityDeps, input: ChargeInput): Promise<ChargeResult> {
  const { db, gateway, logger } = deps;
  const row = await claimCharge(db, input);
  if (gatewayHasAnswered(row)) return chargeResultOf(row);

  let outcome: ChargeOutcome;
  try {
    const customerId = await ensureGatewayCustomer(deps, row.userId);
    outcome = await gateway.charge({
      amount: cardChargedAmount(row),
      currency: row.currency,
      customerId,
      paymentMethod: input.paymentMethod,
      // Runs from before sessions were told apart pass none: nobody is present to authenticate.
      session: input.session ?? 'off_session',
      idempotencyKey: row.idempotencyKey,
      customerRef: row.userId,
      description: input.description,
      metadata: chargeMetadata(row),
    });
  } catch (error) {
    // Refused outright, so no charge exists: recorded failed as chargeOnce reports it (and its
    // credit given back) rather than left pending for ever, then not retried (GATEWAY_CALL).
    if (error instanceof GatewayRequestRejectedError) await recordChargeOutcome(db, row, REJECTED_CHARGE);
    throw error;
  }
  const updated = await recordChargeOutcome(db, row, outcome);
  const recorded = updated ?? (await paymentByKey(db, input.idempotencyKey))!;
  logger.info(
    { paymentId: row.id, kind: row.kind, status: recorded.status, failureCode: recorded.failureCode, gateway: gateway.name },
    'charge recorded',
  );
  return chargeResultOf(recorded);
}

/** A charge request the gateway refused outright, as workflows/charge.ts's chargeOnce answers it. */
const REJECTED_CHARGE: ChargeOutcome = { status: 'declined', gatewayPaymentId: null, decline: 'hard', failureCode: 'invalid_request' };

/**
 * Records the gateway's answer onto a row still unanswered; undefined when another attempt (or the
 * webhook) recorded one first. Only the update that moved the row from pending to failed gives
 * its credit back, in the same transaction (the ledger's unique `restore/<paymentId>` would
 * refuse a second time anyway).
 */
async function recordChargeOutcome(db: Database, row: PaymentRow, outcome: ChargeOutcome): Promise<PaymentRow | undefined> {
  return db.transaction(async (tx) => {
    const [recorded] = await tx
      .update(payments)
      .set({ ...projectionOf(outcome), updatedAt: new Date() })
      .where(and(eq(payments.id, row.id), eq(payments.status, 'pending'), isNull(payments.gatewayPaymentId)))
      .returning();
    if (recorded?.status === 'failed') await restoreCredit(tx, recorded.id);
    // Its invoice, numbered in this transaction: a rollback takes no number (db/invoices.ts).
    if (recorded) await invoiceIfSucceeded(tx, recorded);
    return recorded;
  });
}

/**
 * The claim: inserts the charge's row (unique by idempotency key; an existing row is answered as
 * it is) and, only when this call inserted it and `applyCredit` is set, spends the credit balance
 * in the same transaction: the row's `credit_applied` then says what was spent, so a retried
 * activity never spends twice. A charge the credit covers in full is succeeded at once.
 */
async function claimCharge(db: Database, input: ChargeInput): Promise<PaymentRow> {
  assertInvoiceLines(input);
  const row = await db.transaction(async (tx) => {
    const [claimed] = await tx
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
        invoiceLines: input.invoiceLines ?? null,
      })
      .onConflictDoNothing({ target: payments.idempotencyKey })
      .returning();
    if (claimed?.amount === 0) {
      // Nothing to take (a 100 % coupon, say): succeeded here with no gateway call, and invoiced.
      const [free] = await tx.update(payments).set({ status: 'succeeded', updatedAt: new Date() }).where(eq(payments.id, claimed.id)).returning();
      await invoiceIfSucceeded(tx, free);
      return free;
    }
    if (!claimed || !input.applyCredit) return claimed;
    const creditApplied = await spendCredit(tx, { userId: claimed.userId, currency: claimed.currency, upTo: claimed.amount, paymentId: claimed.id });
    if (creditApplied === 0) return claimed;
    const covered = creditApplied === claimed.amount;
    const [spent] = await tx
      .update(payments)
      .set({ creditApplied, ...(covered ? { status: 'succeeded' as const } : {}), updatedAt: new Date() })
      .where(eq(payments.id, claimed.id))
      .returning();
    // Covered by the credit: succeeded here, so invoiced here (once: only the inserting call gets here).
    await invoiceIfSucceeded(tx, spent);
    return spent;
  });
  const claimed = row ?? (await paymentByKey(db, input.idempotencyKey));
  if (!claimed) throw new Error(`payment ${input.idempotencyKey} vanished after being recorded`);
  return claimed;
}

/**
 * Claim, call, record, as for a charge. The claim (one short transaction, the charge's row
 * locked) checks what is left to refund and reserves the amount on the charge at once, so ten
 * refunds racing can never together exceed what was paid; a refund the gateway then refuses
 * gives its reservation back. The refund's own row, unique by idempotency key, makes a retried
 * activity call the gateway with the same key (one refund there) and reserve nothing twice.
 */
async function refundPayment({ db, gateway, logger }: PaymentActivityDeps, input: RefundInput): Promise<RefundResult> {
  if (!Number.isSafeInteger(input.amount) || input.amount <= 0) {
    throw ApplicationFailure.nonRetryable(`refund amount must be a positive integer, got ${input.amount}`, 'InvalidRefund');
  }
  const { original, refund } = await claimRefund(db, input);
  if (gatewayHasAnswered(refund)) {
    return { refundPaymentId: refund.id, status: refundStatusOf(refund), refundedTotal: await refundedTotalOf(db, original.id) };
  }

  const outcome = await gateway.refund({
    gatewayPaymentId: original.gatewayPaymentId!,
    amount: refund.amount,
    idempotencyKey: input.idempotencyKey,
  });
  await db.transaction(async (tx) => {
    const [recorded] = await tx
      .update(payments)
      .set({ status: outcome.status, gatewayPaymentId: outcome.gatewayRefundId, updatedAt: new Date() })
      .where(and(eq(payments.id, refund.id), eq(payments.status, 'pending'), isNull(payments.gatewayPaymentId)))
      .returning();
    // Only the attempt that recorded the refusal gives the reservation back, and only once.
    if (recorded && outcome.status === 'failed') await releaseRefundReservation(tx, original.id, refund.amount);
    // Only the attempt that recorded the success writes the credit note (one per refund row).
    if (recorded) await invoiceIfSucceeded(tx, recorded);
  });
  logger.info({ paymentId: original.id, refundPaymentId: refund.id, status: outcome.status }, 'refund recorded');
  return { refundPaymentId: refund.id, status: outcome.status, refundedTotal: await refundedTotalOf(db, original.id) };
}

async function claimRefund(db: Database, input: RefundInput): Promise<{ original: PaymentRow; refund: PaymentRow }> {
  return db.transaction(async (tx) => {
    // Locking the charge serialises the claims of its refunds.
    const [original] = await tx.select().from(payments).where(eq(payments.id, input.paymentId)).for('update');
    if (!original) throw ApplicationFailure.nonRetryable(`no payment ${input.paymentId}`, 'PaymentNotFound');
    const [existing] = await tx.select().from(payments).where(eq(payments.idempotencyKey, input.idempotencyKey));
    if (existing) {
      if (existing.refundOf !== original.id) {
        throw ApplicationFailure.nonRetryable(`idempotency key ${input.idempotencyKey} belongs to another payment`, 'InvalidRefund');
      }
      return { original, refund: existing };
    }
    assertRefundable(original, input.amount);
    const [refund] = await tx
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
      .returning();
    await addRefundedAmount(tx, original.id, input.amount);
    return { original, refund };
  });
}

/** Applies the final answer of a pending charge; later or repeated settlements change nothing. */
async function settlePayment({ db, logger }: PaymentActivityDeps, settlement: PaymentSettlement): Promise<void> {
  const settled = await db.transaction(async (tx) => {
    const moved = await tx
      .update(payments)
      .set({
        status: settlement.status,
        failureCode: settlement.status === 'failed' ? settlement.failureCode : null,
        nextAction: null,
        gatewayPaymentId: sql`coalesce(${payments.gatewayPaymentId}, ${settlement.gatewayPaymentId})`,
        updatedAt: new Date(),
      })
      .where(and(eq(payments.id, settlement.paymentId), eq(payments.status, 'pending')))
      .returning();
    // Only the settlement that moved it from pending gives a failed charge's credit back, or
    // invoices a success.
    if (moved.length > 0 && settlement.status === 'failed') await restoreCredit(tx, settlement.paymentId);
    for (const row of moved) await invoiceIfSucceeded(tx, row);
    return moved;
  });
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
  const row = await findPayment(db, paymentId);
  if (!row) throw ApplicationFailure.nonRetryable(`no payment ${paymentId}`, 'PaymentNotFound');
  if (row.status !== 'pending') return chargeResultOf(row);
  if (row.gatewayPaymentId === null) {
    // Only a charge the gateway answered `pending` (with its id) is ever waited for.
    throw ApplicationFailure.nonRetryable(`payment ${paymentId} has no gateway payment to cancel`, 'PaymentNotCancelable');
  }
  // No lock across the call: the cancel's own key makes a retry the same cancel, and the
  // gateway's answer is final (a charge it canceled cannot succeed later).
  const outcome = await gateway.cancel({ gatewayPaymentId: row.gatewayPaymentId, idempotencyKey: `${row.idempotencyKey}/cancel` });
  const final =
    outcome.status === 'succeeded'
      ? { status: 'succeeded' as const, failureCode: null }
      : { status: 'failed' as const, failureCode: PAYMENT_TIMEOUT_FAILURE_CODE };
  const updated = await db.transaction(async (tx) => {
    const [moved] = await tx
      .update(payments)
      .set({ ...final, nextAction: null, updatedAt: new Date() })
      .where(and(eq(payments.id, row.id), eq(payments.status, 'pending')))
      .returning();
    // Only the update that recorded it failed gives its credit back.
    if (moved?.status === 'failed') await restoreCredit(tx, moved.id);
    if (moved) await invoiceIfSucceeded(tx, moved);
    return moved;
  });
  const recorded = updated ?? (await findPayment(db, row.id))!;
  logger.warn({ paymentId, gatewayAnswer: outcome.status, status: recorded.status }, 'pending payment timed out; canceled at the gateway');
  return chargeResultOf(recorded);
}

/**
 * Records that a charge counted as failed (or left pending by a workflow that has ended)
 * succeeded at the gateway after all, so it can be refunded. Repeating it changes nothing.
 */
async function recordLatePaymentSuccess(
  { db, logger }: PaymentActivityDeps,
  { paymentId, gatewayPaymentId }: OrphanedPayment,
): Promise<LatePaymentSuccess> {
  await db.transaction(async (tx) => {
    const [moved] = await tx
      .update(payments)
      .set({
        status: 'succeeded',
        gatewayPaymentId: sql`coalesce(${payments.gatewayPaymentId}, ${gatewayPaymentId})`,
        updatedAt: new Date(),
      })
      .where(and(eq(payments.id, paymentId), ne(payments.kind, 'refund'), inArray(payments.status, ['pending', 'failed'])))
      .returning();
    // It took the money, so it has an invoice (the refund that follows gets its credit note).
    if (moved) await invoiceIfSucceeded(tx, moved);
    // The charge is given back in full (its card part by the refund that follows): the credit it
    // spent goes back to the balance too, whether this call or an earlier one (a cancel that found
    // it succeeded) recorded the success. Once: a charge recorded failed gave it back already,
    // and the ledger's unique `restore/<paymentId>` refuses a second time.
    // (A refund's row never spent credit: nothing to give back.)
    await restoreCredit(tx, paymentId);
  });
  const [row] = await db.select().from(payments).where(eq(payments.id, paymentId));
  if (!row || row.kind === 'refund') throw ApplicationFailure.nonRetryable(`no charge ${paymentId}`, 'PaymentNotFound');
  logger.warn({ paymentId, gatewayPaymentId, failureCode: row.failureCode }, 'late success of a payment given up; refunding it');
  return {
    userId: row.userId,
    amount: row.amount,
    currency: row.currency,
    // The card's part only: the credit it spent went back to the balance above.
    refundable: cardChargedAmount(row) - row.refundedAmount,
    description: row.description,
    subscriptionId: row.subscriptionId,
    bookingId: row.bookingId,
  };
}

/**
 * Only what the card paid can go back to the card: amount - credit_applied - refunded_amount. A
 * charge the credit paid in full never reached the gateway (no gatewayPaymentId): nothing to refund.
 */
function assertRefundable(original: PaymentRow, amount: number): void {
  if (original.kind === 'refund' || original.status !== 'succeeded' || original.gatewayPaymentId === null) {
    throw ApplicationFailure.nonRetryable(`payment ${original.id} (${original.kind}, ${original.status}) cannot be refunded`, 'PaymentNotRefundable');
  }
  const refundable = cardChargedAmount(original) - original.refundedAmount;
  if (amount > refundable) {
    throw ApplicationFailure.nonRetryable(
      `refund of ${amount} exceeds the ${refundable} still refundable on payment ${original.id}`,
      'RefundExceedsPayment',
    );
  }
}

/**
 * The invoice of a charge (credit note of a refund) that this transaction recorded succeeded.
 * Idempotent by the unique `invoices.payment_id` (db/invoices.ts): a second call writes nothing.
 */
async function invoiceIfSucceeded(tx: Transaction, row: PaymentRow): Promise<void> {
  if (row.status === 'succeeded') await issueInvoiceFor(tx, row);
}

/** Lines a workflow priced must invoice exactly what it charges; refused before anything is written. */
function assertInvoiceLines(input: ChargeInput): void {
  if (!input.invoiceLines) return;
  try {
    const { total } = buildInvoice({ lines: input.invoiceLines });
    if (total !== input.amount) throw new InvalidInvoiceError(`the invoice lines total ${total}, not the charge's ${input.amount}`);
  } catch (error) {
    if (error instanceof InvalidInvoiceError) throw ApplicationFailure.nonRetryable(error.message, 'InvalidInvoiceLines');
    throw error;
  }
}

// A final status, or a pending one the gateway already gave an id to (awaiting its webhook).
function gatewayHasAnswered(row: PaymentRow): boolean {
  return row.status !== 'pending' || row.gatewayPaymentId !== null;
}

function projectionOf(outcome: ChargeOutcome): Pick<PaymentRow, 'status' | 'gatewayPaymentId' | 'failureCode' | 'nextAction'> {
  switch (outcome.status) {
    case 'succeeded':
      return { status: 'succeeded', gatewayPaymentId: outcome.gatewayPaymentId, failureCode: null, nextAction: null };
    case 'pending':
      return { status: 'pending', gatewayPaymentId: outcome.gatewayPaymentId, failureCode: null, nextAction: outcome.nextAction };
    case 'declined':
      return { status: 'failed', gatewayPaymentId: outcome.gatewayPaymentId, failureCode: outcome.failureCode, nextAction: null };
  }
}

async function paymentByKey(db: Database, idempotencyKey: string): Promise<PaymentRow | undefined> {
  const [row] = await db.select().from(payments).where(eq(payments.idempotencyKey, idempotencyKey));
  return row;
}

// Lets the webhook find the charge even when Stripe's event outruns our write of the intent id.
function chargeMetadata(row: PaymentRow): Record<string, string> {
  return {
    [PAYMENT_ID_METADATA_KEY]: row.id,
    kind: row.kind,
    ...(row.subscriptionId ? { subscription_id: row.subscriptionId } : {}),
    ...(row.bookingId ? { booking_id: row.bookingId } : {}),
    ...(row.creditApplied > 0 ? { credit_applied: String(row.creditApplied) } : {}),
  };
}
