/**
 * GET /api/v1/admin/reconciliation (staff): whether the books balance for payments made in a
 * window, read from one snapshot (db/reconciliation.ts, domain/reconciliation.ts). Read-only.
 *
 * It compares what PostgreSQL holds: payments, invoices and credit notes, refunded amounts and
 * credit ledgers. The gateway's own record of what it took and refunded is not read here (the
 * API keeps none; with Stripe it would mean listing every PaymentIntent and Refund of the
 * window), and the operation's description says so. The same comparison with the gateway's record
 * runs after every drill and benchmark, which keep one (bench/recording-gateway.ts).
 */
import type { Router } from 'express';
import { z } from 'zod';
import { reconcileBooks } from '../db/reconciliation';
import type { AppDeps } from './deps';
import { isoDateTime, json, type ApiOperation } from './contract';
import { HttpProblem } from './problem';
import { apiRouter, type RouteHandler } from './route';
import { parseQuery } from './validation';

const reconciliationQuery = z.strictObject({
  from: isoDateTime.optional().meta({ description: 'Payments created at or after this instant; the beginning of time when absent.' }),
  to: isoDateTime.optional().meta({ description: 'Payments created before this instant; now when absent.' }),
  userId: z.uuid().optional().meta({ description: 'One customer only.' }),
});

const objectRef = z.strictObject({ type: z.enum(['payment', 'invoice', 'credit_balance']), id: z.string() });

const differenceJsonSchema = z
  .strictObject({
    kind: z.enum([
      'payment_without_invoice',
      'invoice_without_payment_success',
      'invoice_kind_mismatch',
      'invoice_amount_mismatch',
      'invoice_status_mismatch',
      'totals_mismatch',
      'refunded_amount_mismatch',
      'credit_balance_mismatch',
    ]),
    userId: z.uuid(),
    currency: z.string(),
    expected: z.int(),
    actual: z.int(),
    objects: z.array(objectRef),
  })
  .meta({ id: 'ReconciliationDifference' });

const reconciliationAnswer = z.strictObject({
  from: isoDateTime,
  to: isoDateTime,
  checked: z.strictObject({ customers: z.int().min(0), payments: z.int().min(0), invoices: z.int().min(0) }),
  differences: z.array(differenceJsonSchema),
});

export function adminReconciliationRoutes(deps: AppDeps): Router {
  const { router, route } = apiRouter(deps);
  route(adminReconciliationApi.reconcile, reconcileHandler(deps));
  return router;
}

function reconcileHandler({ db }: AppDeps): RouteHandler {
  return async (req, res) => {
    const query = parseQuery(reconciliationQuery, req.query);
    const from = new Date(query.from ?? 0);
    const to = query.to ? new Date(query.to) : new Date();
    // An empty window (from = to) checks nothing and finds nothing; only a reversed one is wrong.
    if (from > to) {
      throw new HttpProblem(400, 'Invalid request', 'to: Must not be before from', {
        invalidParams: [{ name: 'to', reason: 'Must not be before from' }],
      });
    }
    const result = await reconcileBooks(db, { from, to, userIds: query.userId ? [query.userId] : undefined });
    res.json({ from: from.toISOString(), to: to.toISOString(), ...result });
  };
}

export const adminReconciliationApi = {
  reconcile: {
    method: 'get',
    path: '/api/v1/admin/reconciliation',
    summary: 'Staff: do the books balance? Payments against invoices and credit notes, refunds, credit ledgers',
    description:
      'Per customer and currency, to the minor unit: payments recorded (charges less refunds) equal invoices paid less credit notes, ' +
      'every charge that took money has one invoice and every refund that succeeded one credit note of its amount, a charge’s ' +
      'refunded amount equals its refunds, and a credit balance equals its ledger (granted less spent). Compared from PostgreSQL ' +
      'alone: the gateway’s own record of what it took and refunded is not read by this route (the drills and the benchmarks, ' +
      'which keep one, compare it too).',
    auth: 'staff',
    request: { query: reconciliationQuery },
    responses: { 200: json('What was checked and every difference found (none: the books balance)', reconciliationAnswer) },
  },
} satisfies Record<string, ApiOperation>;
