/**
 * Invoices and credit notes, as pure arithmetic: lines, their discount and tax, the totals, and
 * the numbers (`INV-2026-000123`, `CN-2026-000007`). Money is integer minor units throughout; a
 * tax is computed per line (exclusive: added on top of what the line costs after its discount)
 * and rounded half-even (banker's rounding) in BigInt, so no float ever touches an amount.
 */

export const INVOICE_KINDS = ['invoice', 'credit_note'] as const;
export type InvoiceKind = (typeof INVOICE_KINDS)[number];

export const INVOICE_STATUSES = ['open', 'paid', 'void', 'uncollectible'] as const;
export type InvoiceStatus = (typeof INVOICE_STATUSES)[number];
/** The states of a failed charge's invoice: open while it is retried, then void or uncollectible. */
export type UnpaidInvoiceStatus = Exclude<InvoiceStatus, 'paid'>;

/** What a line bills: a plan's period, a proration of a change, a one-time payment, a booking, a refund. */
export const INVOICE_LINE_KINDS = ['plan', 'proration', 'one_time', 'booking', 'refund'] as const;
export type InvoiceLineKind = (typeof INVOICE_LINE_KINDS)[number];

/** A tax rate is basis points (1/100 of a percent): 2000 is 20 %. At most 100 %. */
export const MAX_TAX_RATE_BPS = 10_000;
const BPS = 10_000n;

/** A line as its caller knows it: what is sold, how many, at what unit price, less what discount. */
export interface InvoiceLineInput {
  kind: InvoiceLineKind;
  description: string;
  /** A positive whole number (seats, tickets). */
  quantity: number;
  /** Minor units per item, before discount and tax (>= 0). */
  unitAmount: number;
  /** Minor units off the line (quantity × unitAmount) before tax; 0 when absent. */
  discount?: number;
  /** Basis points, exclusive; 0 when absent. */
  taxRate?: number;
  planId?: string;
  /** The period billed (ISO 8601 instants), for a plan or proration line. */
  periodStart?: string;
  periodEnd?: string;
}

/** A line with its amounts worked out. */
export interface InvoiceLine extends InvoiceLineInput {
  /** quantity × unitAmount. */
  amount: number;
  discount: number;
  taxRate: number;
  /** roundHalfEven((amount - discount) × taxRate / 10 000). */
  tax: number;
  /** amount - discount + tax. */
  total: number;
}

export interface InvoiceTotals {
  lines: InvoiceLine[];
  /** Sum of the lines' amounts (before discount and tax). */
  subtotal: number;
  discount: number;
  tax: number;
  /** subtotal - discount + tax: what the customer owes for the lines. */
  total: number;
  /** What the customer's credit balance paid of the total. */
  creditApplied: number;
  /** total - creditApplied: what is left for the card. */
  amountDue: number;
}

export class InvalidInvoiceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidInvoiceError';
  }
}

/**
 * numerator / denominator rounded to the nearest integer, a tie to the even one (banker's
 * rounding): 5/2 → 2, 7/2 → 4, -5/2 → -2. The denominator must be positive.
 */
export function roundHalfEven(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new InvalidInvoiceError('the denominator must be positive');
  const negative = numerator < 0n;
  const magnitude = negative ? -numerator : numerator;
  const quotient = magnitude / denominator;
  const twiceRemainder = (magnitude % denominator) * 2n;
  let rounded = quotient;
  if (twiceRemainder > denominator || (twiceRemainder === denominator && quotient % 2n === 1n)) rounded = quotient + 1n;
  return negative ? -rounded : rounded;
}

/** The exclusive tax on a (non-negative) amount at a rate in basis points, rounded half-even. */
export function taxOf(amount: number, taxRateBps: number): number {
  assertMinorUnits(amount, 'amount');
  assertTaxRate(taxRateBps);
  return toSafeNumber(roundHalfEven(BigInt(amount) * BigInt(taxRateBps), BPS));
}

/** One line's amounts: its discount is capped by nothing, but checked to lie within the line. */
export function priceLine(input: InvoiceLineInput): InvoiceLine {
  if (!(INVOICE_LINE_KINDS as readonly string[]).includes(input.kind)) throw new InvalidInvoiceError(`unknown line kind ${String(input.kind)}`);
  if (typeof input.description !== 'string' || input.description.trim() === '') throw new InvalidInvoiceError('a line needs a description');
  if (!Number.isSafeInteger(input.quantity) || input.quantity <= 0) {
    throw new InvalidInvoiceError(`a line's quantity must be a positive integer, got ${input.quantity}`);
  }
  assertMinorUnits(input.unitAmount, 'unitAmount');
  const discount = input.discount ?? 0;
  const taxRate = input.taxRate ?? 0;
  assertMinorUnits(discount, 'discount');
  assertTaxRate(taxRate);
  const amount = toSafeNumber(BigInt(input.quantity) * BigInt(input.unitAmount));
  if (discount > amount) throw new InvalidInvoiceError(`a line's discount (${discount}) exceeds its amount (${amount})`);
  const tax = taxOf(amount - discount, taxRate);
  // Only the known fields: the line is stored and shown as it is (an unknown key would be kept for ever).
  const { kind, description, quantity, unitAmount, planId, periodStart, periodEnd } = input;
  return {
    kind,
    description,
    quantity,
    unitAmount,
    ...(planId !== undefined ? { planId } : {}),
    ...(periodStart !== undefined ? { periodStart } : {}),
    ...(periodEnd !== undefined ? { periodEnd } : {}),
    amount,
    discount,
    taxRate,
    tax,
    total: amount - discount + tax,
  };
}

/**
 * An invoice's (or credit note's) totals from its lines: each line is taxed and rounded on its
 * own, the totals are the sums of the rounded lines (so the lines always add up to the total).
 * `creditApplied` is what the credit balance paid of the total; it cannot exceed it.
 */
export function buildInvoice({ lines, creditApplied = 0 }: { lines: readonly InvoiceLineInput[]; creditApplied?: number }): InvoiceTotals {
  if (lines.length === 0) throw new InvalidInvoiceError('an invoice needs at least one line');
  assertMinorUnits(creditApplied, 'creditApplied');
  const priced = lines.map(priceLine);
  const sum = (pick: (line: InvoiceLine) => number) => toSafeNumber(priced.reduce((acc, line) => acc + BigInt(pick(line)), 0n));
  const subtotal = sum((line) => line.amount);
  const discount = sum((line) => line.discount);
  const tax = sum((line) => line.tax);
  const total = subtotal - discount + tax;
  if (creditApplied > total) throw new InvalidInvoiceError(`credit applied (${creditApplied}) exceeds the total (${total})`);
  return { lines: priced, subtotal, discount, tax, total, creditApplied, amountDue: total - creditApplied };
}

/**
 * The lines of a credit note for `refund` minor units of an invoice, so its tax goes back with
 * it: a full refund mirrors the invoice's lines (same amounts, discount and tax); a partial one is
 * one line at the invoice's tax rate whose net plus (half-even rounded) tax is exactly the refund,
 * when the invoice has one rate and such a net exists, else one untaxed line. Either way the
 * credit note's total is the refund.
 */
export function creditNoteLines(invoice: { number: string; total: number; lines: readonly InvoiceLine[] }, refund: number): InvoiceLineInput[] {
  assertMinorUnits(refund, 'refund');
  if (refund > invoice.total) throw new InvalidInvoiceError(`a refund of ${refund} exceeds the invoice's total ${invoice.total}`);
  const label = (description: string) => `Refund of ${invoice.number}: ${description}`;
  if (refund === invoice.total) {
    return invoice.lines.map((line) => ({
      kind: 'refund',
      description: label(line.description),
      quantity: line.quantity,
      unitAmount: line.unitAmount,
      discount: line.discount,
      taxRate: line.taxRate,
      ...(line.planId ? { planId: line.planId } : {}),
      ...(line.periodStart ? { periodStart: line.periodStart } : {}),
      ...(line.periodEnd ? { periodEnd: line.periodEnd } : {}),
    }));
  }
  const rates = new Set(invoice.lines.filter((line) => line.total > 0).map((line) => line.taxRate));
  const [rate] = rates;
  const net = rates.size === 1 && rate !== undefined && rate > 0 ? netBeforeTax(refund, rate) : undefined;
  const description = `Refund of ${invoice.number}`;
  return net === undefined
    ? [{ kind: 'refund', description, quantity: 1, unitAmount: refund }]
    : [{ kind: 'refund', description, quantity: 1, unitAmount: net, taxRate: rate }];
}

/** The net amount whose exclusive tax at `taxRateBps` brings it to exactly `gross`, if there is one. */
export function netBeforeTax(gross: number, taxRateBps: number): number | undefined {
  assertMinorUnits(gross, 'gross');
  assertTaxRate(taxRateBps);
  const estimate = Number(roundHalfEven(BigInt(gross) * BPS, BPS + BigInt(taxRateBps)));
  for (const net of [estimate, estimate - 1, estimate + 1]) {
    if (net >= 0 && net <= gross && net + taxOf(net, taxRateBps) === gross) return net;
  }
  return undefined;
}

const PREFIX: Record<InvoiceKind, string> = { invoice: 'INV', credit_note: 'CN' };
const NUMBER_DIGITS = 6;
const NUMBER_PATTERN = /^(INV|CN)-(\d{4})-(\d{6,})$/;

/** `INV-2026-000123` for the 123rd invoice of 2026, `CN-2026-000007` for the 7th credit note. */
export function formatInvoiceNumber(kind: InvoiceKind, year: number, sequence: number): string {
  if (!Number.isSafeInteger(year) || year < 1000 || year > 9999) throw new InvalidInvoiceError(`year ${year} is not four digits`);
  if (!Number.isSafeInteger(sequence) || sequence <= 0) throw new InvalidInvoiceError(`sequence ${sequence} must be a positive integer`);
  return `${PREFIX[kind]}-${year}-${String(sequence).padStart(NUMBER_DIGITS, '0')}`;
}

/** The parts of an invoice number, or undefined for anything formatInvoiceNumber would not write. */
export function parseInvoiceNumber(number: string): { kind: InvoiceKind; year: number; sequence: number } | undefined {
  const match = NUMBER_PATTERN.exec(number);
  if (!match) return undefined;
  const sequence = Number(match[3]);
  if (sequence <= 0 || (match[3].length > NUMBER_DIGITS && match[3].startsWith('0'))) return undefined;
  return { kind: match[1] === 'INV' ? 'invoice' : 'credit_note', year: Number(match[2]), sequence };
}

/** The year an invoice is numbered in: the UTC calendar year of its issue. */
export function invoiceYearOf(issuedAt: Date): number {
  return issuedAt.getUTCFullYear();
}

function assertMinorUnits(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new InvalidInvoiceError(`${field} must be a non-negative integer of minor units, got ${value}`);
}

function assertTaxRate(rate: number): void {
  if (!Number.isSafeInteger(rate) || rate < 0 || rate > MAX_TAX_RATE_BPS) {
    throw new InvalidInvoiceError(`a tax rate must be whole basis points within 0–${MAX_TAX_RATE_BPS}, got ${rate}`);
  }
}

function toSafeNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new InvalidInvoiceError(`${value} minor units exceed what an amount can hold`);
  }
  return Number(value);
}
