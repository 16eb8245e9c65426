import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  buildInvoice,
  creditNoteLines,
  netBeforeTax,
  formatInvoiceNumber,
  InvalidInvoiceError,
  invoiceYearOf,
  parseInvoiceNumber,
  priceLine,
  roundHalfEven,
  taxOf,
  type InvoiceLineInput,
} from './invoice';

const plan = (over: Partial<InvoiceLineInput> = {}): InvoiceLineInput => ({
  kind: 'plan',
  description: 'Pro, monthly',
  quantity: 1,
  unitAmount: 1000,
  ...over,
});

describe('roundHalfEven', () => {
  test('exact quotients are unchanged', () => {
    assert.equal(roundHalfEven(10n, 2n), 5n);
    assert.equal(roundHalfEven(0n, 7n), 0n);
    assert.equal(roundHalfEven(-12n, 4n), -3n);
  });
  test('below a half rounds down, above rounds up', () => {
    assert.equal(roundHalfEven(14n, 10n), 1n);
    assert.equal(roundHalfEven(16n, 10n), 2n);
    assert.equal(roundHalfEven(1n, 3n), 0n);
    assert.equal(roundHalfEven(2n, 3n), 1n);
  });
  test('a tie goes to the even neighbour', () => {
    assert.equal(roundHalfEven(5n, 2n), 2n);
    assert.equal(roundHalfEven(7n, 2n), 4n);
    assert.equal(roundHalfEven(1n, 2n), 0n);
    assert.equal(roundHalfEven(3n, 2n), 2n);
    assert.equal(roundHalfEven(25n, 10n), 2n);
    assert.equal(roundHalfEven(35n, 10n), 4n);
  });
  test('negative values mirror positive ones', () => {
    assert.equal(roundHalfEven(-5n, 2n), -2n);
    assert.equal(roundHalfEven(-7n, 2n), -4n);
    assert.equal(roundHalfEven(-16n, 10n), -2n);
    assert.equal(roundHalfEven(-14n, 10n), -1n);
  });
  test('beyond 2^53 stays exact', () => {
    const big = 2n ** 70n + 1n;
    assert.equal(roundHalfEven(big * 2n, 2n), big);
    assert.equal(roundHalfEven(big * 10n + 5n, 10n), big + 1n); // big is odd: the tie goes up to even
  });
  test('a non-positive denominator is refused', () => {
    assert.throws(() => roundHalfEven(1n, 0n), InvalidInvoiceError);
    assert.throws(() => roundHalfEven(1n, -2n), InvalidInvoiceError);
  });
});

describe('taxOf', () => {
  test('exclusive tax in basis points', () => {
    assert.equal(taxOf(1000, 2000), 200);
    assert.equal(taxOf(1999, 0), 0);
    assert.equal(taxOf(0, 2000), 0);
    assert.equal(taxOf(1000, 10_000), 1000);
  });
  test('rounds half-even on the minor unit', () => {
    // 250 × 10 % = 25 exactly; 125 × 10 % = 12.5 → 12; 135 × 10 % = 13.5 → 14
    assert.equal(taxOf(250, 1000), 25);
    assert.equal(taxOf(125, 1000), 12);
    assert.equal(taxOf(135, 1000), 14);
    // 1999 × 8.25 % = 164.9175 → 165; 1 × 50 % = 0.5 → 0; 3 × 50 % = 1.5 → 2
    assert.equal(taxOf(1999, 825), 165);
    assert.equal(taxOf(1, 5000), 0);
    assert.equal(taxOf(3, 5000), 2);
  });
  test('refuses a bad rate or amount', () => {
    for (const rate of [-1, 10_001, 1.5, Number.NaN]) assert.throws(() => taxOf(100, rate), InvalidInvoiceError);
    for (const amount of [-1, 0.5, Number.MAX_SAFE_INTEGER + 1]) assert.throws(() => taxOf(amount, 100), InvalidInvoiceError);
  });
  test('a large amount taxes exactly (no float)', () => {
    assert.equal(taxOf(Number.MAX_SAFE_INTEGER - 1, 5000), (Number.MAX_SAFE_INTEGER - 1) / 2);
  });
});

describe('priceLine', () => {
  test('quantity × unit, less discount, plus tax on what is left', () => {
    assert.deepEqual(priceLine(plan({ quantity: 3, unitAmount: 1000, discount: 500, taxRate: 2000 })), {
      ...plan({ quantity: 3, unitAmount: 1000 }),
      amount: 3000,
      discount: 500,
      taxRate: 2000,
      tax: 500,
      total: 3000,
    });
  });
  test('a line needs a known kind and a description', () => {
    assert.throws(() => priceLine(plan({ kind: 'gift' as InvoiceLineInput['kind'] })), InvalidInvoiceError);
    assert.throws(() => priceLine(plan({ description: '  ' })), InvalidInvoiceError);
  });
  test('keeps only the known fields', () => {
    const line = priceLine({ ...plan(), extra: 'x' } as InvoiceLineInput);
    assert.equal('extra' in line, false);
  });
  test('defaults: no discount, no tax', () => {
    const line = priceLine(plan());
    assert.equal(line.discount, 0);
    assert.equal(line.taxRate, 0);
    assert.equal(line.tax, 0);
    assert.equal(line.total, 1000);
  });
  test('a 100 % discount leaves nothing to tax', () => {
    const line = priceLine(plan({ discount: 1000, taxRate: 2000 }));
    assert.equal(line.tax, 0);
    assert.equal(line.total, 0);
  });
  test('a discount larger than the line is refused', () => {
    assert.throws(() => priceLine(plan({ discount: 1001 })), InvalidInvoiceError);
  });
  test('quantity must be a positive integer', () => {
    for (const quantity of [0, -1, 1.5]) assert.throws(() => priceLine(plan({ quantity })), InvalidInvoiceError);
  });
  test('a negative unit amount is refused', () => {
    assert.throws(() => priceLine(plan({ unitAmount: -1 })), InvalidInvoiceError);
  });
  test('an amount past 2^53 is refused', () => {
    assert.throws(() => priceLine(plan({ quantity: 3, unitAmount: Number.MAX_SAFE_INTEGER })), InvalidInvoiceError);
  });
});

describe('buildInvoice', () => {
  test('one line without tax', () => {
    const invoice = buildInvoice({ lines: [plan()] });
    assert.equal(invoice.subtotal, 1000);
    assert.equal(invoice.discount, 0);
    assert.equal(invoice.tax, 0);
    assert.equal(invoice.total, 1000);
    assert.equal(invoice.creditApplied, 0);
    assert.equal(invoice.amountDue, 1000);
  });
  test('tax rounds per line, not on the sum', () => {
    // Each 125 × 10 % = 12.5 → 12 (half-even): 24 in all, where the sum (250 × 10 %) would be 25.
    const invoice = buildInvoice({ lines: [plan({ unitAmount: 125, taxRate: 1000 }), plan({ unitAmount: 125, taxRate: 1000 })] });
    assert.equal(invoice.tax, 24);
    assert.equal(invoice.total, 274);
    assert.equal(
      invoice.lines.reduce((sum, line) => sum + line.total, 0),
      invoice.total,
    );
  });
  test('plan, proration and discount together', () => {
    const invoice = buildInvoice({
      lines: [
        plan({
          quantity: 2,
          unitAmount: 1500,
          discount: 300,
          taxRate: 1900,
          periodStart: '2026-01-01T00:00:00.000Z',
          periodEnd: '2026-02-01T00:00:00.000Z',
        }),
        { kind: 'proration', description: 'Upgrade to Pro', quantity: 1, unitAmount: 733, taxRate: 1900 },
      ],
    });
    // line 1: 3000 - 300 = 2700, tax 513; line 2: 733, tax 139.27 → 139
    assert.equal(invoice.subtotal, 3733);
    assert.equal(invoice.discount, 300);
    assert.equal(invoice.tax, 652);
    assert.equal(invoice.total, 3733 - 300 + 652);
  });
  test('credit applied reduces what is due, never the total', () => {
    const invoice = buildInvoice({ lines: [plan({ taxRate: 1000 })], creditApplied: 400 });
    assert.equal(invoice.total, 1100);
    assert.equal(invoice.creditApplied, 400);
    assert.equal(invoice.amountDue, 700);
  });
  test('credit covering the whole total leaves nothing due', () => {
    assert.equal(buildInvoice({ lines: [plan()], creditApplied: 1000 }).amountDue, 0);
  });
  test('credit past the total is refused', () => {
    assert.throws(() => buildInvoice({ lines: [plan()], creditApplied: 1001 }), InvalidInvoiceError);
    assert.throws(() => buildInvoice({ lines: [plan()], creditApplied: -1 }), InvalidInvoiceError);
  });
  test('a 100 % discount makes a zero invoice', () => {
    const invoice = buildInvoice({ lines: [plan({ discount: 1000, taxRate: 2000 })] });
    assert.equal(invoice.total, 0);
    assert.equal(invoice.amountDue, 0);
  });
  test('no lines is refused', () => {
    assert.throws(() => buildInvoice({ lines: [] }), InvalidInvoiceError);
  });
  test('a total past 2^53 is refused', () => {
    const huge = plan({ unitAmount: Number.MAX_SAFE_INTEGER - 10 });
    assert.throws(() => buildInvoice({ lines: [huge, huge] }), InvalidInvoiceError);
  });
});

describe('invoice numbers', () => {
  test('formatted with the kind, year and six digits', () => {
    assert.equal(formatInvoiceNumber('invoice', 2026, 123), 'INV-2026-000123');
    assert.equal(formatInvoiceNumber('credit_note', 2026, 7), 'CN-2026-000007');
    assert.equal(formatInvoiceNumber('invoice', 2027, 1), 'INV-2027-000001');
    assert.equal(formatInvoiceNumber('invoice', 2026, 999_999), 'INV-2026-999999');
    assert.equal(formatInvoiceNumber('invoice', 2026, 1_000_000), 'INV-2026-1000000');
  });
  test('a non-positive sequence or odd year is refused', () => {
    assert.throws(() => formatInvoiceNumber('invoice', 2026, 0), InvalidInvoiceError);
    assert.throws(() => formatInvoiceNumber('invoice', 2026, -1), InvalidInvoiceError);
    assert.throws(() => formatInvoiceNumber('invoice', 2026, 1.5), InvalidInvoiceError);
    assert.throws(() => formatInvoiceNumber('invoice', 999, 1), InvalidInvoiceError);
    assert.throws(() => formatInvoiceNumber('invoice', 10_000, 1), InvalidInvoiceError);
  });
  test('parse is the inverse of format', () => {
    for (const [kind, year, sequence] of [
      ['invoice', 2026, 1],
      ['credit_note', 2026, 7],
      ['invoice', 2030, 1_234_567],
    ] as const) {
      assert.deepEqual(parseInvoiceNumber(formatInvoiceNumber(kind, year, sequence)), { kind, year, sequence });
    }
  });
  test('parse refuses what format never writes', () => {
    for (const text of ['INV-2026-123', 'INV-2026-000000', 'XX-2026-000001', 'inv-2026-000001', 'INV-26-000001', 'INV-2026-0000001', '']) {
      assert.equal(parseInvoiceNumber(text), undefined, text);
    }
  });
  test('the year is the UTC year of issue', () => {
    assert.equal(invoiceYearOf(new Date('2026-12-31T23:59:59.999Z')), 2026);
    assert.equal(invoiceYearOf(new Date('2027-01-01T00:00:00.000Z')), 2027);
  });
});

describe('netBeforeTax', () => {
  test('finds the net whose tax brings it to the gross', () => {
    assert.equal(netBeforeTax(1200, 2000), 1000);
    assert.equal(netBeforeTax(0, 2000), 0);
    assert.equal(netBeforeTax(500, 0), 500);
    for (let gross = 0; gross < 3000; gross += 1) {
      const net = netBeforeTax(gross, 1950);
      if (net !== undefined) assert.equal(net + taxOf(net, 1950), gross);
    }
  });
  test('some grosses have no such net (rounding skips them)', () => {
    // At 50 %: 1 → 1 (tax 0.5 → 0), 2 → 3 (tax 1): no net gives 2.
    assert.equal(netBeforeTax(2, 5000), undefined);
  });
});

describe('creditNoteLines', () => {
  const invoice = buildInvoice({
    lines: [
      plan({ quantity: 2, unitAmount: 1500, discount: 300, taxRate: 2000, planId: 'p' }),
      { kind: 'proration', description: 'Upgrade', quantity: 1, unitAmount: 500, taxRate: 2000 },
    ],
  });
  const numbered = { number: 'INV-2026-000001', total: invoice.total, lines: invoice.lines };

  test('a full refund mirrors the lines, tax included', () => {
    const note = buildInvoice({ lines: creditNoteLines(numbered, invoice.total) });
    assert.deepEqual([note.subtotal, note.discount, note.tax, note.total], [invoice.subtotal, invoice.discount, invoice.tax, invoice.total]);
    assert.ok(note.lines.every((line) => line.kind === 'refund' && line.description.startsWith('Refund of INV-2026-000001: ')));
    assert.equal(note.lines[0].planId, 'p');
  });
  test('a partial refund of a one-rate invoice gives its tax back in proportion', () => {
    const note = buildInvoice({ lines: creditNoteLines(numbered, 1200) });
    assert.deepEqual([note.subtotal, note.tax, note.total], [1000, 200, 1200]);
  });
  test('a partial refund with no exact net, or several rates, is one untaxed line', () => {
    const oneRate = { number: 'INV-2026-000002', ...buildInvoice({ lines: [plan({ unitAmount: 10, taxRate: 5000 })] }) };
    assert.deepEqual(creditNoteLines(oneRate, 2), [{ kind: 'refund', description: 'Refund of INV-2026-000002', quantity: 1, unitAmount: 2 }]);
    const twoRates = { number: 'INV-2026-000003', ...buildInvoice({ lines: [plan({ taxRate: 1000 }), plan({ taxRate: 2000 })] }) };
    assert.equal(buildInvoice({ lines: creditNoteLines(twoRates, 700) }).tax, 0);
  });
  test('an untaxed invoice credits one line for the refund', () => {
    const untaxed = { number: 'INV-2026-000004', ...buildInvoice({ lines: [plan()] }) };
    assert.deepEqual(buildInvoice({ lines: creditNoteLines(untaxed, 400) }).total, 400);
  });
  test('more than the invoice is refused', () => {
    assert.throws(() => creditNoteLines(numbered, invoice.total + 1), InvalidInvoiceError);
  });
});
