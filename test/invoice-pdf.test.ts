/**
 * GET /api/v1/invoices/{id}/pdf on the real stack (PostgreSQL, the sandbox gateway): a paid
 * invoice and a credit note come back as PDFs whose text (read back with unpdf) shows the number,
 * the customer and the total as money; the route answers who may read an invoice exactly as
 * GET /api/v1/invoices/{id} does.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { extractText, getDocumentProxy } from 'unpdf';
import { createPaymentActivities } from '../activities/payment';
import { invoiceOfPayment } from '../db/invoices';
import type { InvoiceLineInput } from '../domain/invoice';
import { formatMoney } from '../domain/money';
import type { ChargeInput } from '../domain/payment';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { startTestStack, type TestStack } from './support/stack';

let stack: TestStack;
let customer: TestUser;

before(async () => {
  stack = await startTestStack({ serves: ['billing'] });
  customer = await createTestUser(stack.deps, { name: 'Grace Hopper' });
});

after(() => stack?.close());

const api = (path: string) => `${stack.url}/api/v1${path}`;

// A plan line with a discount, tax and a period, and a plain one: (3000 - 300) + 19.5 % = 3226, + 1250.
const LINES: InvoiceLineInput[] = [
  {
    kind: 'plan',
    description: 'Pro, 3 seats',
    quantity: 3,
    unitAmount: 1000,
    discount: 300,
    taxRate: 1950,
    periodStart: '2026-01-01T00:00:00.000Z',
    periodEnd: '2026-02-01T00:00:00.000Z',
  },
  { kind: 'one_time', description: 'Setup', quantity: 1, unitAmount: 1250 },
];
const LINES_TOTAL = 4476;

async function charge(userId: string, amount: number, invoiceLines?: InvoiceLineInput[]) {
  const activities = createPaymentActivities({ db: stack.deps.db, gateway: stack.deps.gateway, logger: stack.deps.logger });
  const input: ChargeInput = {
    kind: 'one_time',
    userId,
    amount,
    currency: 'usd',
    paymentMethod: 'pm_card_visa',
    idempotencyKey: `test-invoice-pdf-${randomUUID()}`,
    attempt: 1,
    description: 'invoice pdf test',
    ...(invoiceLines ? { invoiceLines } : {}),
  };
  const result = await activities.chargePayment(input);
  assert.equal(result.status, 'succeeded');
  return { activities, paymentId: result.paymentId, invoice: (await invoiceOfPayment(stack.deps.db, result.paymentId))! };
}

async function fetchPdf(invoiceId: string, user: TestUser) {
  const response = await fetch(api(`/invoices/${invoiceId}/pdf`), { headers: user.headers });
  return { status: response.status, headers: response.headers, bytes: new Uint8Array(await response.arrayBuffer()) };
}

/** The text of every page, and the document's title. */
async function readPdf(bytes: Uint8Array): Promise<{ text: string; title: unknown }> {
  // pdf.js takes the buffer over; the caller's bytes stay readable.
  const document = await getDocumentProxy(bytes.slice());
  const { text } = await extractText(document, { mergePages: true });
  const { info } = await document.getMetadata();
  return { text, title: (info as Record<string, unknown>).Title };
}

function assertPdfAnswer(answer: Awaited<ReturnType<typeof fetchPdf>>, number: string): void {
  assert.equal(answer.status, 200, Buffer.from(answer.bytes).toString('utf8').slice(0, 300));
  assert.equal(answer.headers.get('content-type'), 'application/pdf');
  assert.equal(answer.headers.get('content-disposition'), `inline; filename="${number}.pdf"`);
  assert.equal(Buffer.from(answer.bytes.subarray(0, 5)).toString('latin1'), '%PDF-');
}

describe('GET /api/v1/invoices/{id}/pdf', () => {
  test('a paid invoice: its number, customer, lines and totals as money', async () => {
    const { invoice } = await charge(customer.user.id, LINES_TOTAL, LINES);
    const answer = await fetchPdf(invoice.id, customer);
    assertPdfAnswer(answer, invoice.number);

    const { text, title } = await readPdf(answer.bytes);
    assert.equal(title, invoice.number);
    assert.match(text, new RegExp(`Invoice ${invoice.number}`));
    for (const expected of [
      'Grace Hopper',
      customer.user.email,
      'Paid',
      'Pro, 3 seats',
      'Period: 2026-01-01 – 2026-02-01',
      '19.5%',
      formatMoney(LINES_TOTAL, 'usd'),
      formatMoney(3226, 'usd'),
      formatMoney(526, 'usd'),
      'USD',
    ]) {
      assert.ok(text.includes(expected), `"${expected}" is not in the PDF's text:\n${text}`);
    }
    assert.doesNotMatch(text, /Credits invoice/);
  });

  test('a credit note names the invoice it credits', async () => {
    const { activities, paymentId, invoice } = await charge(customer.user.id, 4000);
    const refund = await activities.refundPayment({ paymentId, amount: 1500, idempotencyKey: `test-refund-${randomUUID()}`, reason: 'Too loud' });
    assert.equal(refund.status, 'succeeded');
    const note = (await invoiceOfPayment(stack.deps.db, refund.refundPaymentId))!;

    const answer = await fetchPdf(note.id, customer);
    assertPdfAnswer(answer, note.number);
    const { text, title } = await readPdf(answer.bytes);
    assert.equal(title, note.number);
    assert.match(text, new RegExp(`Credit note ${note.number}`));
    assert.match(text, new RegExp(`Credits invoice ${invoice.number}`));
    assert.ok(text.includes(formatMoney(1500, 'usd')), text);
    assert.ok(text.includes('Grace Hopper'), text);
  });

  test('another customer gets the 404 the JSON route gives; staff get the PDF', async () => {
    const { invoice } = await charge(customer.user.id, 900);
    const stranger = await createTestUser(stack.deps);

    const pdf = await requestJson(api(`/invoices/${invoice.id}/pdf`), { headers: stranger.headers });
    const json = await requestJson(api(`/invoices/${invoice.id}`), { headers: stranger.headers });
    assert.equal(pdf.status, 404);
    assert.match(pdf.headers.get('content-type') ?? '', /^application\/problem\+json/);
    // The same problem, but for the request's own id.
    const problemOf = ({ type, title, status, detail }: Record<string, unknown>) => ({ type, title, status, detail });
    assert.deepEqual(problemOf(pdf.body), problemOf(json.body));

    const unknown = await requestJson(api(`/invoices/${randomUUID()}/pdf`), { headers: customer.headers });
    assert.deepEqual(problemOf(unknown.body), problemOf(json.body));

    assertPdfAnswer(await fetchPdf(invoice.id, stack.staff), invoice.number);
  });

  test('a bad id is a 400 naming it; no token is a 401', async () => {
    const bad = await requestJson(api('/invoices/not-a-uuid/pdf'), { headers: customer.headers });
    assert.equal(bad.status, 400);
    assert.match(bad.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.deepEqual(
      bad.body.invalidParams.map((p: { name: string }) => p.name),
      ['id'],
    );
    assert.equal((await requestJson(api(`/invoices/${randomUUID()}/pdf`))).status, 401);
  });
});
