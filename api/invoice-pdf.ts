/**
 * An invoice or credit note as a PDF (GET /api/v1/invoices/{id}/pdf), drawn with pdfkit in its
 * built-in Helvetica, so no font file is needed. Pure apart from making the bytes: the caller
 * reads the invoice, and for a credit note the number of the invoice it credits.
 *
 * The built-in fonts draw WinAnsi (Latin-1 and a few more, € included) only: any other character
 * is drawn as `?`, and an amount whose symbol is not drawable (₹) is written with its code.
 */
import PDFDocument from 'pdfkit';
import type { InvoiceRow } from '../db/invoices';
import type { InvoiceLine, InvoiceStatus } from '../domain/invoice';
import { formatMoney } from '../domain/money';

/** What the document shows of an invoice row. */
export type PrintableInvoice = Pick<
  InvoiceRow,
  | 'number'
  | 'kind'
  | 'status'
  | 'currency'
  | 'lines'
  | 'subtotal'
  | 'discount'
  | 'tax'
  | 'total'
  | 'creditApplied'
  | 'amountPaid'
  | 'billingDetails'
  | 'issuedAt'
>;

export interface InvoicePdfOptions {
  /** A credit note's invoice's number (INV-2026-000123); absent for an invoice. */
  creditedNumber?: string;
}

const MARGIN = 50;
const FONT = 'Helvetica';
const BOLD = 'Helvetica-Bold';
const MUTED = '#555555';
const RULE = '#bbbbbb';

type Cell = PDFKit.Mixins.CellOptions;
const RIGHT: Cell = { align: { x: 'right' } };

const STATUS_LABELS: Record<InvoiceStatus, string> = { open: 'Open', paid: 'Paid', void: 'Void', uncollectible: 'Uncollectible' };
const LINE_HEADINGS = ['Description', 'Qty', 'Unit amount', 'Discount', 'Tax rate', 'Tax', 'Total'];

/** The invoice's PDF, A4, with its number as the document's title. */
export function renderInvoicePdf(invoice: PrintableInvoice, options: InvoicePdfOptions = {}): Promise<Buffer> {
  const title = invoice.kind === 'credit_note' ? 'Credit note' : 'Invoice';
  const doc = new PDFDocument({
    size: 'A4',
    margin: MARGIN,
    font: FONT,
    displayTitle: true,
    lang: 'en',
    // The issue date, not the time of drawing: the same invoice always makes the same bytes.
    info: { Title: invoice.number, Subject: title, CreationDate: invoice.issuedAt, ModDate: invoice.issuedAt },
  });
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('data', (chunk: Buffer) => chunks.push(chunk));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });
  drawHeading(doc, invoice, title, options);
  drawLines(doc, invoice);
  drawTotals(doc, invoice);
  doc.end();
  return done;
}

function drawHeading(doc: PDFKit.PDFDocument, invoice: PrintableInvoice, title: string, options: InvoicePdfOptions): void {
  doc.font(BOLD).fontSize(20).text(`${title} ${invoice.number}`);
  doc.font(FONT).fontSize(10);
  if (options.creditedNumber) doc.text(`Credits invoice ${options.creditedNumber}`);
  doc.moveDown();
  const facts: Array<[string, string]> = [
    ['Status', STATUS_LABELS[invoice.status]],
    ['Issued', isoDate(invoice.issuedAt)],
    ['Currency', invoice.currency.toUpperCase()],
  ];
  doc.table({
    columnStyles: [80, '*'],
    defaultStyle: { border: 0, padding: [1, 0] },
    data: facts.map(([label, value]) => [{ text: label, textColor: MUTED }, value]),
  });
  doc.moveDown();
  doc.font(BOLD).text('Billed to');
  doc.font(FONT).text(printable(invoice.billingDetails.name)).text(printable(invoice.billingDetails.email));
  doc.moveDown(1.5);
}

/** One row per line; pdfkit's table carries the rows over to a new page when they do not fit. */
function drawLines(doc: PDFKit.PDFDocument, invoice: PrintableInvoice): void {
  const money = (amount: number): Cell => ({ text: moneyText(amount, invoice.currency), ...RIGHT });
  const headings = LINE_HEADINGS.map((text, column): Cell => ({ text, type: 'TH', font: { src: BOLD }, ...(column > 0 ? RIGHT : {}) }));
  const rows = invoice.lines.map((line): Cell[] => [
    { text: describeLine(line) },
    { text: String(line.quantity), ...RIGHT },
    money(line.unitAmount),
    money(line.discount),
    { text: taxRateText(line.taxRate), ...RIGHT },
    money(line.tax),
    money(line.total),
  ]);
  doc.fontSize(9).table({
    columnStyles: ['*', 30, 70, 60, 50, 60, 70],
    defaultStyle: { border: { top: 0, right: 0, bottom: 0.5, left: 0 }, borderColor: RULE, padding: [4, 3] },
    data: [headings, ...rows],
  });
  doc.fontSize(10).moveDown();
}

function drawTotals(doc: PDFKit.PDFDocument, invoice: PrintableInvoice): void {
  const totals: Array<[string, number]> = [
    ['Subtotal', invoice.subtotal],
    ['Discount', invoice.discount],
    ['Tax', invoice.tax],
    ['Total', invoice.total],
    ['Credit applied', invoice.creditApplied],
    ['Amount paid', invoice.amountPaid],
  ];
  const width = 220;
  doc.table({
    position: { x: doc.page.width - MARGIN - width },
    maxWidth: width,
    columnStyles: ['*', 100],
    defaultStyle: { border: 0, padding: [2, 3] },
    data: totals.map(([label, amount]): Cell[] => {
      const font = { src: label === 'Total' ? BOLD : FONT };
      return [
        { text: label, font },
        { text: moneyText(amount, invoice.currency), font, ...RIGHT },
      ];
    }),
  });
}

function describeLine(line: InvoiceLine): string {
  const description = printable(line.description);
  if (!line.periodStart && !line.periodEnd) return description;
  return `${description}\nPeriod: ${line.periodStart ? isoDate(line.periodStart) : '…'} – ${line.periodEnd ? isoDate(line.periodEnd) : '…'}`;
}

/** The currency's symbol when Helvetica can draw it, else its code ("INR 1,500.00"). */
function moneyText(amount: number, currency: string): string {
  const text = formatMoney(amount, currency);
  return isDrawable(text) ? text : formatMoney(amount, currency, { symbol: false });
}

/** Basis points as a percentage: 2000 → "20%", 1950 → "19.5%", 5 → "0.05%". */
function taxRateText(bps: number): string {
  const hundredths = bps % 100;
  const fraction = hundredths === 0 ? '' : `.${String(hundredths).padStart(2, '0').replace(/0$/, '')}`;
  return `${Math.trunc(bps / 100)}${fraction}%`;
}

/** 2026-03-01, in UTC as every time the API writes. */
function isoDate(value: Date | string): string {
  return new Date(value).toISOString().slice(0, 10);
}

// The characters beyond Latin-1 that WinAnsi (the built-in fonts' encoding) has.
const WIN_ANSI_EXTRAS = new Set('€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ');

function isDrawableCharacter(character: string): boolean {
  const code = character.codePointAt(0)!;
  return character === '\n' || (code >= 0x20 && code < 0x7f) || (code >= 0xa0 && code <= 0xff) || WIN_ANSI_EXTRAS.has(character);
}

function isDrawable(text: string): boolean {
  return [...text].every(isDrawableCharacter);
}

/** Text a customer or a workflow wrote, with what Helvetica cannot draw shown as `?`. */
function printable(text: string): string {
  const spaced = text.replace(/\r\n?/g, '\n').replace(/\t/g, ' ');
  return [...spaced].map((character) => (isDrawableCharacter(character) ? character : '?')).join('');
}
