import { ApplicationFailure } from '@temporalio/common';
import type { Database } from '../db/client';
import { InvoiceRefusedError, issueUncollectibleInvoice } from '../db/invoices';
import type { Logger } from '../platform/logger';

export interface InvoiceActivityDeps {
  db: Database;
  logger: Logger;
}

export type InvoiceActivities = ReturnType<typeof createInvoiceActivities>;

/**
 * Invoices that no payment's record writes (those are written by the payment activities, in the
 * transaction that records the payment's success): the `uncollectible` last invoice of a
 * subscription that expired unpaid. Idempotent: one invoice per charge (unique payment_id), so a
 * retried activity answers the invoice written the first time and takes no second number.
 */
export function createInvoiceActivities({ db, logger }: InvoiceActivityDeps) {
  return {
    async recordUncollectibleInvoice({ paymentId }: { paymentId: string }): Promise<{ invoiceId: string; number: string }> {
      try {
        const invoice = await issueUncollectibleInvoice(db, paymentId);
        logger.info({ paymentId, invoiceId: invoice.id, number: invoice.number, status: invoice.status }, 'uncollectible invoice recorded');
        return { invoiceId: invoice.id, number: invoice.number };
      } catch (error) {
        if (error instanceof InvoiceRefusedError) throw ApplicationFailure.nonRetryable(error.message, 'InvoiceRefused');
        throw error;
      }
    },
  };
}
