import { and, eq, gte, inArray, lt, sql, type SQL } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import {
  reconcile,
  type CreditRecord,
  type GatewayRecord,
  type PaymentRecord,
  type Reconciliation,
  type RefundRecord,
} from '../domain/reconciliation';
import type { Database, Transaction } from './client';
import { creditBalances, creditEntries, invoices, payments } from './schema';

export interface ReconciliationQuery {
  /** Payments created in [from, to). */
  from: Date;
  to: Date;
  /** These customers only; everyone when absent. */
  userIds?: readonly string[];
}

/**
 * Reads payments (with their invoices), charges' refunds and credit balances in one read-only
 * REPEATABLE READ transaction, so every figure comes from the same snapshot however much is
 * being charged meanwhile, and compares them (domain/reconciliation.ts). Credit balances are
 * all-time (a balance has no window).
 *
 * `gateway`, when given, is the gateway's own record of the same customers and period, compared
 * too; PostgreSQL holds only what we recorded of the gateway's answers, never its own record, so
 * the caller brings it (the drills and the bench: bench/recording-gateway.ts).
 */
export async function reconcileBooks(db: Database, query: ReconciliationQuery, gateway?: GatewayRecord): Promise<Reconciliation> {
  return db.transaction(
    async (tx) => {
      const window: SQL[] = [gte(payments.createdAt, query.from), lt(payments.createdAt, query.to)];
      if (query.userIds) window.push(query.userIds.length > 0 ? inArray(payments.userId, [...query.userIds]) : sql`false`);
      const paymentRows = await tx
        .select({
          paymentId: payments.id,
          userId: payments.userId,
          currency: payments.currency,
          kind: payments.kind,
          status: payments.status,
          amount: payments.amount,
          creditApplied: payments.creditApplied,
          idempotencyKey: payments.idempotencyKey,
          invoiceId: invoices.id,
          invoiceKind: invoices.kind,
          invoiceStatus: invoices.status,
          invoiceTotal: invoices.total,
        })
        .from(payments)
        .leftJoin(invoices, eq(invoices.paymentId, payments.id))
        .where(and(...window));
      const refundRows = await refundRecords(tx, window);
      const credits = await creditRecords(tx, query.userIds);
      return reconcile({
        payments: paymentRows.map((row): PaymentRecord => ({
          paymentId: row.paymentId,
          userId: row.userId,
          currency: row.currency,
          kind: row.kind,
          status: row.status,
          amount: row.amount,
          creditApplied: row.creditApplied,
          idempotencyKey: row.idempotencyKey,
          invoice: row.invoiceId ? { id: row.invoiceId, kind: row.invoiceKind!, status: row.invoiceStatus!, total: row.invoiceTotal! } : null,
        })),
        refunds: refundRows,
        credits,
        gateway,
      });
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

// A charge's refunded_amount counts its refunds that succeeded and those pending (reserved).
async function refundRecords(tx: Transaction, window: SQL[]): Promise<RefundRecord[]> {
  const refund = alias(payments, 'refund');
  const rows = await tx
    .select({
      paymentId: payments.id,
      userId: payments.userId,
      currency: payments.currency,
      refundedAmount: payments.refundedAmount,
      refundsTotal: sql<string>`coalesce(sum(${refund.amount}) filter (where ${refund.status} in ('succeeded', 'pending')), 0)`,
    })
    .from(payments)
    .leftJoin(refund, eq(refund.refundOf, payments.id))
    .where(and(...window, sql`${payments.kind} <> 'refund'`))
    .groupBy(payments.id);
  return rows.map((row) => ({ ...row, refundsTotal: Number(row.refundsTotal) }));
}

async function creditRecords(tx: Transaction, userIds: readonly string[] | undefined): Promise<CreditRecord[]> {
  const rows = await tx
    .select({
      userId: creditBalances.userId,
      currency: creditBalances.currency,
      balance: creditBalances.amount,
      ledger: sql<string>`coalesce(sum(${creditEntries.amount}), 0)`,
    })
    .from(creditBalances)
    .leftJoin(creditEntries, and(eq(creditEntries.userId, creditBalances.userId), eq(creditEntries.currency, creditBalances.currency)))
    .where(userIds ? (userIds.length > 0 ? inArray(creditBalances.userId, [...userIds]) : sql`false`) : undefined)
    .groupBy(creditBalances.userId, creditBalances.currency);
  return rows.map((row) => ({ ...row, ledger: Number(row.ledger) }));
}
