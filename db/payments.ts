import { and, eq, ne, sql, type SQL } from 'drizzle-orm';
import { classifyDecline, type ChargeResult, type RefundResult } from '../domain/payment';
import type { Database, Transaction } from './client';
import { payments } from './schema';

/**
 * Reads and writes of `payments` rows shared by the payment activities and the API (its webhook
 * and its answers), so both sides read a row the same way.
 */
export type PaymentRow = typeof payments.$inferSelect;

/** What the card was charged of a payment: its amount less what the credit balance paid. */
export function cardChargedAmount(row: Pick<PaymentRow, 'amount' | 'creditApplied'>): number {
  return row.amount - row.creditApplied;
}

const CARD_CHARGED = sql`(${payments.amount} - ${payments.creditApplied})`;

/** The payment with this id, or undefined. */
export async function findPayment(db: Database | Transaction, id: string): Promise<PaymentRow | undefined> {
  const [row] = await db.select().from(payments).where(eq(payments.id, id));
  return row;
}

/**
 * What is left to refund of a charge as its row stands: what the API offers staff (a full refund
 * when no amount is given) and checks first. The refund activity checks it again under the
 * charge's row lock, which is what guarantees that refunds never exceed it.
 */
export function refundableAmount(row: Pick<PaymentRow, 'amount' | 'creditApplied' | 'refundedAmount'>): number {
  return Math.max(0, cardChargedAmount(row) - row.refundedAmount);
}

/** What has been refunded of a charge in all (0 when there is no such charge). */
export async function refundedTotalOf(db: Database | Transaction, paymentId: string): Promise<number> {
  const [row] = await db.select({ refundedAmount: payments.refundedAmount }).from(payments).where(eq(payments.id, paymentId));
  return row?.refundedAmount ?? 0;
}

/** The payment a charge just recorded; its absence is a bug, not a client error. */
export async function chargedPayment(db: Database, id: string): Promise<PaymentRow> {
  const row = await findPayment(db, id);
  if (!row) throw new Error(`payment ${id} was charged but has no row`);
  return row;
}

/**
 * What a gateway event's intent id (and the payment id in its metadata) names among our charges:
 * - `found`: the charge whose recorded intent id it is (the metadata, if any, names it too);
 * - `not_recorded_yet`: no charge has the intent id, but the metadata names a charge still
 *   pending with no intent id recorded: the event outran the charge activity's write;
 * - `foreign`: anything else (no such intent, or metadata naming a charge of another intent).
 */
export type GatewayChargeMatch = { match: 'found'; payment: PaymentRow } | { match: 'not_recorded_yet'; paymentId: string } | { match: 'foreign' };

/**
 * The charge (never a refund) of a gateway payment, found only by the intent id we recorded:
 * metadata can be written by anyone who can create an intent, so it may confirm, never decide.
 * Locked, so a cancel of the pending charge in flight finishes first and the status read here is
 * the one it left; callers keep the transaction short (no network call inside it).
 */
export async function chargeOfGatewayPayment(tx: Transaction, gatewayPaymentId: string, paymentId: string | undefined): Promise<GatewayChargeMatch> {
  const [byIntent] = await tx
    .select()
    .from(payments)
    .where(and(eq(payments.gatewayPaymentId, gatewayPaymentId), ne(payments.kind, 'refund')))
    .limit(1)
    .for('update');
  if (byIntent) return paymentId === undefined || paymentId === byIntent.id ? { match: 'found', payment: byIntent } : { match: 'foreign' };
  if (!paymentId || !isUuid(paymentId)) return { match: 'foreign' };
  const named = await findPayment(tx, paymentId);
  if (named && named.kind !== 'refund' && named.gatewayPaymentId === null && named.status === 'pending') {
    return { match: 'not_recorded_yet', paymentId };
  }
  return { match: 'foreign' };
}

/**
 * Records what the gateway reports as refunded in total on a charge (a refund made in the
 * Stripe dashboard, say). Refunds only grow, so an older report never lowers the amount.
 */
export async function recordGatewayRefundTotal(db: Database | Transaction, paymentId: string, refundedTotal: number): Promise<void> {
  await setRefundedAmount(
    db,
    sql`greatest(${payments.refundedAmount}, ${refundedTotal})`,
    and(eq(payments.id, paymentId), sql`${payments.status} in ('succeeded', 'refunded')`),
  );
}

/**
 * A refund the gateway refused gives back what its claim reserved on the charge; a charge that
 * the reservation had made `refunded` is a (partly refunded) success again.
 */
export async function releaseRefundReservation(tx: Transaction, paymentId: string, amount: number): Promise<void> {
  const total = sql`greatest(${payments.refundedAmount} - ${amount}, 0)`;
  await tx
    .update(payments)
    .set({
      refundedAmount: total,
      status: sql`case when ${payments.status} = 'refunded' and ${total} < ${CARD_CHARGED} then 'succeeded' else ${payments.status} end`,
      updatedAt: new Date(),
    })
    .where(eq(payments.id, paymentId));
}

/** Adds a refund (claimed, or accepted by the gateway) to what has been refunded of the charge. */
export async function addRefundedAmount(tx: Transaction, paymentId: string, amount: number): Promise<void> {
  await setRefundedAmount(tx, sql`${payments.refundedAmount} + ${amount}`, eq(payments.id, paymentId));
}

// A charge whose card part is refunded in full becomes `refunded`; in part, it keeps its status.
// (What its credit paid goes back to the balance, which the row does not count.)
async function setRefundedAmount(db: Database | Transaction, total: SQL, where: SQL | undefined): Promise<void> {
  await db
    .update(payments)
    .set({
      refundedAmount: total,
      status: sql`case when ${total} > 0 and ${total} >= ${CARD_CHARGED} then 'refunded' else ${payments.status} end`,
      updatedAt: new Date(),
    })
    .where(where);
}

/** A charge's row as the workflows see its outcome. */
export function chargeResultOf(row: PaymentRow): ChargeResult {
  // A charge refunded or disputed later still succeeded as a charge.
  const status = row.status === 'refunded' || row.status === 'disputed' ? 'succeeded' : row.status;
  return {
    paymentId: row.id,
    status,
    gatewayPaymentId: row.gatewayPaymentId,
    failureCode: row.failureCode,
    decline: status === 'failed' ? classifyDecline(row.failureCode) : null,
    creditApplied: row.creditApplied,
    ...(status === 'pending' ? { nextAction: row.nextAction } : {}),
  };
}

/** A refund's row as the workflows see its outcome. */
export function refundStatusOf(row: PaymentRow): RefundResult['status'] {
  return row.status === 'refunded' || row.status === 'disputed' ? 'succeeded' : row.status;
}

function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}
