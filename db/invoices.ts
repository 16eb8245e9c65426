import { and, desc, eq, sql, type SQL } from 'drizzle-orm';
import {
  buildInvoice,
  creditNoteLines,
  formatInvoiceNumber,
  invoiceYearOf,
  type InvoiceKind,
  type InvoiceLineInput,
  type InvoiceStatus,
  type UnpaidInvoiceStatus,
  type InvoiceLineKind,
} from '../domain/invoice';
import type { Database, Transaction } from './client';
import type { PaymentRow } from './payments';
import { invoiceSequences, invoices, payments, users, type BillingDetails } from './schema';

/**
 * Invoices and credit notes. One is written by the transaction that records a payment's success
 * (activities/payment.ts), never on its own: its number is taken in that transaction, so a charge
 * rolled back takes none (numbers are gap-free) and a number once committed is never given again.
 *
 * Idempotency: `invoices.payment_id` is unique and issueInvoiceFor first looks for the payment's
 * invoice, so a retried activity, a repeated settlement or two attempts racing write one invoice.
 * (Callers only call it from the update that moved the row to succeeded, which one transaction
 * alone can do; the unique column is the guarantee if that ever changes: the second insert fails
 * and its whole transaction, number included, rolls back.)
 */
export type InvoiceRow = typeof invoices.$inferSelect;

const LINE_KIND_OF_PAYMENT: Record<PaymentRow['kind'], InvoiceLineKind> = {
  subscription: 'plan',
  one_time: 'one_time',
  booking: 'booking',
  refund: 'refund',
};

/**
 * The next number of a kind in a year: the counter row is created at 1 or incremented, and stays
 * locked until the caller's transaction ends, so concurrent invoices are numbered one after the
 * other and a rollback hands its number to the next transaction.
 */
export async function takeInvoiceNumber(tx: Transaction, kind: InvoiceKind, year: number): Promise<number> {
  const [row] = await tx
    .insert(invoiceSequences)
    .values({ kind, year, lastNumber: 1 })
    .onConflictDoUpdate({
      target: [invoiceSequences.kind, invoiceSequences.year],
      set: { lastNumber: sql`${invoiceSequences.lastNumber} + 1` },
    })
    .returning({ lastNumber: invoiceSequences.lastNumber });
  return row.lastNumber;
}

export interface IssueOptions {
  /**
   * `paid` (default): the charge succeeded. For a failed renewal: `open` while dunning retries the
   * period, `void` once another attempt paid it (or the subscription was canceled), `uncollectible`
   * when it expired with nothing more to try.
   */
  status?: InvoiceStatus;
  issuedAt?: Date;
}

/**
 * Writes the invoice of a charge that has just succeeded, or the credit note of a refund that
 * has, inside the caller's transaction (status `paid`: both are settled when they are written),
 * or the `uncollectible` invoice of a charge given up (nothing paid). Returns the one already
 * written for the payment, if any. Called with no network call open.
 */
export async function issueInvoiceFor(tx: Transaction, payment: PaymentRow, options: IssueOptions = {}): Promise<InvoiceRow> {
  const { status = 'paid', issuedAt = new Date() } = options;
  const existing = await invoiceOfPayment(tx, payment.id);
  if (existing && existing.status !== 'paid' && status === 'paid') {
    // Given up, then it succeeded after all (a late success): the same invoice, paid now.
    const [paid] = await tx.update(invoices).set({ status: 'paid', amountPaid: existing.total }).where(eq(invoices.id, existing.id)).returning();
    return paid;
  }
  if (existing) return existing;
  const kind: InvoiceKind = payment.kind === 'refund' ? 'credit_note' : 'invoice';
  // A refund credits its charge's invoice: its lines (and tax) go back in proportion.
  const credited = payment.refundOf ? await invoiceOfPayment(tx, payment.refundOf) : undefined;
  const lines = payment.invoiceLines ?? (credited ? creditNoteLines(credited, payment.amount) : [defaultLineOf(payment)]);
  // A charge given up gave its credit back (restoreCredit): nothing was applied.
  const totals = buildInvoice({ lines, creditApplied: kind === 'invoice' && status === 'paid' ? payment.creditApplied : 0 });
  if (totals.total !== payment.amount) {
    throw new Error(`payment ${payment.id}'s invoice lines total ${totals.total}, not its amount ${payment.amount}`);
  }
  const creditNoteOf = credited?.id ?? null;
  const billingDetails = await billingDetailsOf(tx, payment.userId);
  const year = invoiceYearOf(issuedAt);
  // The number is the last thing taken: its counter row stays locked for the shortest time.
  const sequence = await takeInvoiceNumber(tx, kind, year);
  const [invoice] = await tx
    .insert(invoices)
    .values({
      number: formatInvoiceNumber(kind, year, sequence),
      kind,
      year,
      sequence,
      userId: payment.userId,
      subscriptionId: payment.subscriptionId,
      bookingId: payment.bookingId,
      currency: payment.currency,
      status,
      lines: totals.lines,
      subtotal: totals.subtotal,
      discount: totals.discount,
      tax: totals.tax,
      total: totals.total,
      creditApplied: totals.creditApplied,
      amountPaid: status === 'paid' ? totals.total : 0,
      paymentId: payment.id,
      creditNoteOf,
      billingDetails,
      issuedAt,
    })
    .returning();
  await tx.update(payments).set({ invoiceId: invoice.id }).where(eq(payments.id, payment.id));
  return invoice;
}

const UNPAID_MOVES: Record<UnpaidInvoiceStatus, readonly InvoiceStatus[]> = { open: [], void: ['open'], uncollectible: ['open'] };

/**
 * The invoice of a failed charge, in `status`: numbered now (amount paid 0) when it has none, or
 * moved from `open`. Idempotent: an invoice already in `status` is answered as it is, and one
 * that a late success made `paid` stays paid (answered, never overwritten). The charge is locked
 * so a late success (recordLatePaymentSuccess) and this cannot both write it.
 */
export async function recordUnpaidInvoice(
  db: Database,
  paymentId: string,
  status: UnpaidInvoiceStatus,
  issuedAt: Date = new Date(),
): Promise<InvoiceRow> {
  return db.transaction(async (tx) => {
    const [payment] = await tx.select().from(payments).where(eq(payments.id, paymentId)).for('update');
    if (!payment || payment.kind === 'refund') throw new InvoiceRefusedError(`no charge ${paymentId}`);
    const existing = await invoiceOfPayment(tx, paymentId);
    if (existing?.status === status || existing?.status === 'paid') return existing;
    if (existing) {
      if (!UNPAID_MOVES[status].includes(existing.status))
        throw new InvoiceRefusedError(`invoice ${existing.number} is ${existing.status}, it cannot become ${status}`);
      const [moved] = await tx.update(invoices).set({ status }).where(eq(invoices.id, existing.id)).returning();
      return moved;
    }
    if (payment.status !== 'failed') throw new InvoiceRefusedError(`charge ${paymentId} is ${payment.status}, not failed`);
    return issueInvoiceFor(tx, payment, { status, issuedAt });
  });
}

/** The last invoice of a subscription that expired unpaid (see recordUnpaidInvoice). */
export function issueUncollectibleInvoice(db: Database, paymentId: string, issuedAt: Date = new Date()): Promise<InvoiceRow> {
  return recordUnpaidInvoice(db, paymentId, 'uncollectible', issuedAt);
}

export class InvoiceRefusedError extends Error {
  override readonly name = 'InvoiceRefusedError';
}

/** The invoice or credit note of a payment, if it has one. */
export async function invoiceOfPayment(db: Database | Transaction, paymentId: string): Promise<InvoiceRow | undefined> {
  const [row] = await db.select().from(invoices).where(eq(invoices.paymentId, paymentId));
  return row;
}

export async function findInvoice(db: Database | Transaction, id: string): Promise<InvoiceRow | undefined> {
  const [row] = await db.select().from(invoices).where(eq(invoices.id, id));
  return row;
}

export interface InvoicePageQuery {
  /** Only this customer's; every customer's when absent (staff). */
  userId?: string;
  /** The id of the last invoice of the previous page. */
  cursor?: string;
  limit: number;
}

/**
 * Invoices and credit notes, newest first, a page at a time (keyset on issued_at, id: a page
 * never repeats or skips a row however many are issued meanwhile). `nextCursor` is null on the
 * last page.
 */
export async function listInvoices(db: Database, query: InvoicePageQuery): Promise<{ invoices: InvoiceRow[]; nextCursor: string | null }> {
  const conditions: SQL[] = [];
  if (query.userId) conditions.push(eq(invoices.userId, query.userId));
  if (query.cursor) {
    conditions.push(sql`(${invoices.issuedAt}, ${invoices.id}) < (select i.issued_at, i.id from invoices i where i.id = ${query.cursor})`);
  }
  const rows = await db
    .select()
    .from(invoices)
    .where(and(...conditions))
    .orderBy(desc(invoices.issuedAt), desc(invoices.id))
    .limit(query.limit + 1);
  const page = rows.slice(0, query.limit);
  return { invoices: page, nextCursor: rows.length > query.limit ? page[page.length - 1].id : null };
}

// A charge (or refund) that carries no lines of its own is invoiced as one line for its amount.
function defaultLineOf(payment: PaymentRow): InvoiceLineInput {
  return {
    kind: LINE_KIND_OF_PAYMENT[payment.kind],
    description: payment.description?.trim() || payment.kind.replace('_', ' '),
    quantity: 1,
    unitAmount: payment.amount,
  };
}

async function billingDetailsOf(tx: Transaction, userId: string): Promise<BillingDetails> {
  const [user] = await tx.select({ name: users.name, email: users.email }).from(users).where(eq(users.id, userId));
  if (!user) throw new Error(`no user ${userId} to invoice`);
  return user;
}
