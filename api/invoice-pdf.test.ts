import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { extractText, getDocumentProxy } from 'unpdf';
import { buildInvoice, type InvoiceLineInput } from '../domain/invoice';
import { renderInvoicePdf, type PrintableInvoice } from './invoice-pdf';

function invoiceOf(lines: InvoiceLineInput[], fields: Partial<PrintableInvoice> = {}): PrintableInvoice {
  const totals = buildInvoice({ lines });
  return {
    number: 'INV-2026-000042',
    kind: 'invoice',
    status: 'paid',
    currency: 'usd',
    lines: totals.lines,
    subtotal: totals.subtotal,
    discount: totals.discount,
    tax: totals.tax,
    total: totals.total,
    creditApplied: 0,
    amountPaid: totals.total,
    billingDetails: { name: 'Ada Lovelace', email: 'ada@example.test' },
    issuedAt: new Date('2026-03-05T10:00:00Z'),
    ...fields,
  };
}

async function textOf(pdf: Buffer): Promise<{ text: string; pages: number }> {
  const { text, totalPages } = await extractText(await getDocumentProxy(new Uint8Array(pdf)), { mergePages: true });
  return { text, pages: totalPages };
}

describe('renderInvoicePdf', () => {
  test('the same invoice makes the same bytes (dated by its issue, not the clock)', async () => {
    const invoice = invoiceOf([{ kind: 'one_time', description: 'Ticket', quantity: 2, unitAmount: 1250 }]);
    const first = await renderInvoicePdf(invoice);
    assert.ok(first.equals(await renderInvoicePdf(invoice)));
    assert.equal(first.subarray(0, 5).toString('latin1'), '%PDF-');
  });

  test('what Helvetica cannot draw: a symbol becomes the currency code, other characters ?', async () => {
    const invoice = invoiceOf([{ kind: 'one_time', description: 'Concert – “front row”', quantity: 1, unitAmount: 150000 }], {
      currency: 'inr',
      billingDetails: { name: 'Łukasz 山田', email: 'l@example.test' },
    });
    const { text } = await textOf(await renderInvoicePdf(invoice));
    assert.ok(text.includes('INR 1,500.00'), text);
    assert.ok(!text.includes('₹'), text);
    assert.ok(text.includes('?ukasz ??'), text);
    assert.ok(text.includes('Concert – “front row”'), text);
  });

  test('lines that do not fit on a page go on to the next, the totals after the last', async () => {
    const lines = Array.from({ length: 60 }, (_, i): InvoiceLineInput => ({
      kind: 'booking',
      description: `Seat ${i + 1}`,
      quantity: 1,
      unitAmount: 100,
    }));
    const { text, pages } = await textOf(await renderInvoicePdf(invoiceOf(lines)));
    assert.ok(pages > 1, `${pages} page(s)`);
    assert.ok(text.indexOf('Seat 60') > text.indexOf('Seat 1\n') && text.indexOf('Amount paid') > text.indexOf('Seat 60'), text);
    assert.ok(text.includes('$60.00'), text);
  });
});
