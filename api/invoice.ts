/**
 * Invoices and credit notes, read-only: GET /api/v1/invoices (the caller's, or for staff any
 * customer's, newest first in keyset pages), GET /api/v1/invoices/{id} and its PDF,
 * GET /api/v1/invoices/{id}/pdf (api/invoice-pdf.ts draws it). They are written by
 * the payment activities in the transaction that records a payment's success (db/invoices.ts).
 */
import type { Request, Router } from 'express';
import { z } from 'zod';
import type { Database } from '../db/client';
import { findInvoice, listInvoices, type InvoiceRow } from '../db/invoices';
import { INVOICE_KINDS, INVOICE_LINE_KINDS, INVOICE_STATUSES } from '../domain/invoice';
import type { AppDeps } from './deps';
import { currentUser } from './auth';
import { isoDateTime, json, problems, type ApiOperation } from './contract';
import { renderInvoicePdf } from './invoice-pdf';
import { HttpProblem } from './problem';
import { apiRouter, type RouteHandler } from './route';
import { cursorOf, pageCursor, parseParams, parseQuery, queryInteger, unknownCursor } from './validation';

const minor = z.int().min(0);

const invoiceLineJsonSchema = z
  .strictObject({
    kind: z.enum(INVOICE_LINE_KINDS),
    description: z.string(),
    quantity: z.int().min(1),
    unitAmount: minor,
    amount: minor.meta({ description: 'quantity × unitAmount.' }),
    discount: minor,
    taxRate: z.int().min(0).meta({ description: 'Basis points, exclusive (2000 = 20 %).' }),
    tax: minor.meta({ description: 'On amount - discount, rounded half-even to the minor unit.' }),
    total: minor.meta({ description: 'amount - discount + tax.' }),
    planId: z.uuid().optional(),
    periodStart: isoDateTime.optional(),
    periodEnd: isoDateTime.optional(),
  })
  .meta({ id: 'InvoiceLine' });

export const invoiceJsonSchema = z
  .strictObject({
    id: z.uuid(),
    number: z.string().meta({ description: 'INV-2026-000123 or CN-2026-000007: gap-free per kind and year.' }),
    kind: z.enum(INVOICE_KINDS),
    status: z.enum(INVOICE_STATUSES),
    userId: z.uuid(),
    currency: z.string(),
    lines: z.array(invoiceLineJsonSchema),
    subtotal: minor,
    discount: minor,
    tax: minor,
    total: minor.meta({ description: 'subtotal - discount + tax.' }),
    creditApplied: minor.meta({ description: "Paid from the customer's credit balance." }),
    amountPaid: minor,
    paymentId: z.uuid().meta({ description: 'The charge invoiced, or the refund a credit note is for.' }),
    creditNoteOf: z.uuid().nullable().meta({ description: "A credit note's invoice; null for an invoice." }),
    subscriptionId: z.uuid().nullable(),
    bookingId: z.uuid().nullable(),
    billingDetails: z.strictObject({ name: z.string(), email: z.string() }),
    issuedAt: isoDateTime,
  })
  .meta({ id: 'Invoice' });

export type InvoiceJson = z.infer<typeof invoiceJsonSchema>;

const listInvoicesQuery = z.strictObject({
  userId: z.uuid().optional().meta({ description: "Staff: that customer's invoices (all customers' when absent). Customers: their own id only." }),
  limit: queryInteger(1, 200).default(50),
  cursor: pageCursor.optional(),
});

const idParamsSchema = z.strictObject({ id: z.uuid() });

const PDF_CONTENT_TYPE = 'application/pdf';

export function toInvoiceJson(row: InvoiceRow): InvoiceJson {
  return {
    id: row.id,
    number: row.number,
    kind: row.kind,
    status: row.status,
    userId: row.userId,
    currency: row.currency,
    lines: row.lines,
    subtotal: row.subtotal,
    discount: row.discount,
    tax: row.tax,
    total: row.total,
    creditApplied: row.creditApplied,
    amountPaid: row.amountPaid,
    paymentId: row.paymentId,
    creditNoteOf: row.creditNoteOf,
    subscriptionId: row.subscriptionId,
    bookingId: row.bookingId,
    billingDetails: row.billingDetails,
    issuedAt: row.issuedAt.toISOString(),
  };
}

/** GET /api/v1/invoices, GET /api/v1/invoices/{id} and GET /api/v1/invoices/{id}/pdf. */
export function invoiceRoutes(deps: AppDeps): Router {
  const { router, route } = apiRouter(deps);
  route(invoiceApi.list, listHandler(deps));
  route(invoiceApi.read, readHandler(deps));
  route(invoiceApi.pdf, pdfHandler(deps));
  return router;
}

/** Newest first, keyset on (issued_at, id): customers see their own, staff anyone's. */
function listHandler({ db }: AppDeps): RouteHandler {
  return async (req, res) => {
    const query = parseQuery(listInvoicesQuery, req.query);
    const user = currentUser(req);
    if (user.role !== 'staff' && query.userId !== undefined && query.userId !== user.id) {
      throw new HttpProblem(403, 'Forbidden', "Only staff may list another customer's invoices.");
    }
    if (query.cursor && !(await findInvoice(db, query.cursor))) throw unknownCursor();
    const userId = user.role === 'staff' ? query.userId : user.id;
    const page = await listInvoices(db, { userId, cursor: query.cursor, limit: query.limit });
    res.json({
      invoices: page.invoices.map(toInvoiceJson),
      nextCursor: page.nextCursor ? cursorOf(page.nextCursor) : null,
    });
  };
}

/** The invoice, to its customer or staff; anyone else gets the 404 a missing one gets. */
function readHandler({ db }: AppDeps): RouteHandler {
  return async (req, res) => {
    const row = await readableInvoice(db, req);
    res.json({ invoice: toInvoiceJson(row) });
  };
}

/** The same invoice as a PDF, under the same rule; a credit note names the invoice it credits. */
function pdfHandler({ db }: AppDeps): RouteHandler {
  return async (req, res) => {
    const row = await readableInvoice(db, req);
    const credited = row.creditNoteOf ? await findInvoice(db, row.creditNoteOf) : undefined;
    const pdf = await renderInvoicePdf(row, { creditedNumber: credited?.number });
    // The number is letters, digits and dashes (formatInvoiceNumber): safe in a quoted filename.
    res.type(PDF_CONTENT_TYPE).set('Content-Disposition', `inline; filename="${row.number}.pdf"`).send(pdf);
  };
}

/** The invoice `{id}` names if the caller may read it: its customer's or, for staff, anyone's. */
async function readableInvoice(db: Database, req: Request): Promise<InvoiceRow> {
  const { id } = parseParams(idParamsSchema, req.params);
  const user = currentUser(req);
  const row = await findInvoice(db, id);
  if (!row || (row.userId !== user.id && user.role !== 'staff')) throw new HttpProblem(404, 'Not Found', 'No such invoice.');
  return row;
}

export const invoiceApi = {
  list: {
    method: 'get',
    path: '/api/v1/invoices',
    summary: 'Invoices and credit notes, newest first, a page at a time (customers: their own; staff: anyone’s)',
    auth: 'user',
    request: { query: listInvoicesQuery },
    responses: {
      200: json('A page of invoices', z.strictObject({ invoices: z.array(invoiceJsonSchema), nextCursor: z.string().nullable() })),
      ...problems([403, "A customer asked for another customer's invoices"]),
    },
  },
  read: {
    method: 'get',
    path: '/api/v1/invoices/{id}',
    summary: 'One invoice or credit note',
    auth: 'user',
    request: { params: idParamsSchema },
    responses: {
      200: json('The invoice', z.strictObject({ invoice: invoiceJsonSchema })),
      ...problems([404, 'No such invoice (or not the caller’s)']),
    },
  },
  pdf: {
    method: 'get',
    path: '/api/v1/invoices/{id}/pdf',
    summary: 'One invoice or credit note as a PDF',
    auth: 'user',
    request: { params: idParamsSchema },
    responses: {
      200: {
        description: 'The invoice as a PDF',
        contentType: PDF_CONTENT_TYPE,
        headers: {
          'Content-Disposition': {
            description: 'Shown inline, saved as its number: `inline; filename="INV-2026-000123.pdf"`',
            required: true,
            schema: { type: 'string' },
          },
        },
      },
      ...problems([404, 'No such invoice (or not the caller’s)']),
    },
  },
} satisfies Record<string, ApiOperation>;
