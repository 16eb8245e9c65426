import { ApplicationFailure } from '@temporalio/common';
import type { Database } from '../db/client';
import { InvoiceRefusedError, recordUnpaidInvoice } from '../db/invoices';
import type { UnpaidInvoiceStatus } from '../domain/invoice';
import type { Logger } from '../platform/logger';

export interface InvoiceActivityDeps {
  db: Database;
  logger: Logger;
}

export type InvoiceActivities = ReturnType<typeof createInvoiceActivities>;

/**
 * Invoices that no payment's record writes (those are written by the payment activities, in the
 * transaction that records the payment's success): a failed renewal's invoice, `open` while
 * dunning retries it, then `void` or `uncollectible` (the last invoice of a subscription that
 * expired unpaid). Idempotent: one invoice per charge (unique payment_id), so a
 * retried activity answers the invoice written the first time and takes no second number.
 */
export function createInvoiceActivities({ db, logger }: InvoiceActivityDeps) {
  async function recordChargeInvoice({
    paymentId,
    status,
  }: {
    paymentId: string;
    status: UnpaidInvoiceStatus;
  }): Promise<{ invoiceId: string; number: string; status: string }> {
    try {
      const invoice = await recordUnpaidInvoice(db, paymentId, status);
      logger.info({ paymentId, invoiceId: invoice.id, number: invoice.number, status: invoice.status }, 'unpaid invoice recorded');
      return { invoiceId: invoice.id, number: invoice.number, status: invoice.status };
    } catch (error) {
      if (error instanceof InvoiceRefusedError) throw ApplicationFailure.nonRetryable(error.message, 'InvoiceRefused');
      throw error;
    }
  }
  return {
    recordChargeInvoice,
    /** The `uncollectible` last invoice of a subscription that expired unpaid. */
    recordUncollectibleInvoice: ({ paymentId }: { paymentId: string }) => recordChargeInvoice({ paymentId, status: 'uncollectible' }),
  };
}
