/**
 * Customers' credit balances: GET /api/v1/billing/balance (the caller's), and staff's goodwill
 * credit, POST /api/v1/admin/customers/{id}/credits, audited. Later charges (renewals, one-time
 * payments, bookings) use the balance first and charge the card only for the rest.
 */
import { eq } from 'drizzle-orm';
import type { Router } from 'express';
import { z } from 'zod';
import { balancesOf, grantCredit } from '../db/credits';
import { users } from '../db/schema';
import type { CreditBalance } from '../domain/credit';
import type { AppDeps } from './deps';
import { recordStaffAction } from './audit';
import { currentUser } from './auth';
import { json, problems, type ApiOperation } from './contract';
import { idForRequest } from './derived-ids';
import { HttpProblem } from './problem';
import { apiRouter, type RouteHandler } from './route';
import { chargeableAmount, currencyCode, nonBlankText, parseBody, parseParams } from './validation';

export const creditBalanceJsonSchema = z
  .strictObject({
    currency: z.string().meta({ description: 'Lower-case ISO 4217.' }),
    amount: z.int().min(0).meta({ description: 'Minor units.' }),
  })
  .meta({ id: 'CreditBalance', description: 'Credit that later charges in this currency use before the card.' });

const customerParamsSchema = z.strictObject({ id: z.uuid() });

const grantCreditSchema = z.strictObject({
  amount: chargeableAmount.meta({ description: 'Minor units to add to the balance.' }),
  currency: currencyCode,
  reason: nonBlankText(1000).meta({ description: 'Why staff grant it; kept in the audit log and the ledger.' }),
});

/** GET /api/v1/billing/balance and POST /api/v1/admin/customers/{id}/credits. */
export function creditRoutes(deps: AppDeps): Router {
  const { router, route } = apiRouter(deps);
  route(creditApi.balance, balanceHandler(deps));
  route(creditApi.grant, grantHandler(deps));
  return router;
}

/** The caller's balances that hold something, by currency (none: an empty list). */
function balanceHandler({ db }: AppDeps): RouteHandler {
  return async (req, res) => {
    res.json({ balances: await balancesOf(db, currentUser(req).id) });
  };
}

/**
 * Adds goodwill credit to a customer's balance, audited in the same transaction. Once per
 * Idempotency-Key: the route replays the first answer, and the ledger entry's key is derived from
 * (staff member, route, key, customer), so even a repeat that reaches the handler adds nothing.
 */
function grantHandler({ db }: AppDeps): RouteHandler {
  return async (req, res) => {
    const { id: customerId } = parseParams(customerParamsSchema, req.params);
    const body = parseBody(grantCreditSchema, req.body);
    const staff = currentUser(req);
    const [customer] = await db.select({ id: users.id }).from(users).where(eq(users.id, customerId)).limit(1);
    if (!customer) throw new HttpProblem(404, 'Customer not found', `There is no customer ${customerId}.`);
    // Derived from the Idempotency-Key when there is one, else random (a request of its own).
    const requestId = idForRequest(req, staff.id, creditApi.grant);
    const balance = await db.transaction(async (tx): Promise<CreditBalance> => {
      const granted = await grantCredit(tx, {
        userId: customerId,
        currency: body.currency,
        amount: body.amount,
        kind: 'goodwill',
        reason: body.reason,
        actorId: staff.id,
        idempotencyKey: `goodwill/${customerId}/${requestId}`,
      });
      // A repeat that added nothing was audited by the request that added it.
      if (granted.granted) {
        await recordStaffAction(tx, {
          actorId: staff.id,
          action: 'customer.credit',
          target: { type: 'customer', id: customerId },
          reason: body.reason,
          details: { amount: body.amount, currency: granted.currency, balanceAfter: granted.amount },
        });
      }
      return { currency: granted.currency, amount: granted.amount };
    });
    res.status(201).json({ balance });
  };
}

export const creditApi = {
  balance: {
    method: 'get',
    path: '/api/v1/billing/balance',
    summary: "The caller's credit balances (those above zero), which later charges use before the card",
    auth: 'user',
    responses: { 200: json('Balances by currency', z.strictObject({ balances: z.array(creditBalanceJsonSchema) })) },
  },
  grant: {
    method: 'post',
    path: '/api/v1/admin/customers/{id}/credits',
    summary: "Staff: add goodwill credit to a customer's balance in a currency (audited)",
    auth: 'staff',
    idempotent: true,
    request: { params: customerParamsSchema, body: grantCreditSchema },
    responses: {
      201: json("The customer's balance in that currency after the credit", z.strictObject({ balance: creditBalanceJsonSchema })),
      ...problems([404, 'There is no such customer']),
    },
  },
} satisfies Record<string, ApiOperation>;
