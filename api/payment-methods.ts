import { randomUUID } from 'node:crypto';
import type { Router } from 'express';
import { z } from 'zod';
import { ensureGatewayCustomer } from '../activities/customers';
import { attachedCard, attachedCards, defaultCard, makeDefaultCard, markCardDetached, type PaymentMethodRow } from '../db/payment-methods';
import { liveSubscriptionsOf } from '../db/subscriptions';
import type { AppDeps } from './deps';
import { currentUser } from './auth';
import { isoDateTime, json, problems, type ApiOperation } from './contract';
import { moveLiveSubscriptionsTo, saveToCustomer } from './payment-method-choice';
import { HttpProblem } from './problem';
import { paymentRateLimit } from './rate-limit';
import { apiRouter, type RouteHandler } from './route';
import { parseBody, parseParams, paymentMethodToken } from './validation';

/** A saved card as the API shows it: never its number. */
export const paymentMethodJsonSchema = z
  .strictObject({
    id: z.string(),
    brand: z.string(),
    last4: z.string(),
    expMonth: z.int().min(1).max(12),
    expYear: z.int(),
    isDefault: z.boolean(),
    createdAt: isoDateTime,
  })
  .meta({ id: 'PaymentMethod' });

export type PaymentMethodJson = z.infer<typeof paymentMethodJsonSchema>;

export function toPaymentMethodJson(row: PaymentMethodRow): PaymentMethodJson {
  return {
    id: row.id,
    brand: row.brand,
    last4: row.last4,
    expMonth: row.expMonth,
    expYear: row.expYear,
    isDefault: row.isDefault,
    createdAt: row.createdAt.toISOString(),
  };
}

const attachSchema = z.strictObject({ paymentMethod: paymentMethodToken });
const paymentMethodIdParams = z.strictObject({ id: z.string().min(1).max(255) });

/**
 * /api/v1/payment-methods: the caller's cards saved to their gateway customer. A card is saved
 * by a SetupIntent the client app confirms with Stripe.js (its webhook records the card) or by
 * attaching a payment method id; the default card is what charges use when none is named.
 */
export function paymentMethodRoutes(deps: AppDeps): Router {
  const { router, route } = apiRouter(deps);
  route(paymentMethodApi.createSetupIntent, paymentRateLimit(deps), createSetupIntentHandler(deps));
  // Attaching validates a card at the gateway: rate-limited like a charge (card testing).
  route(paymentMethodApi.attach, paymentRateLimit(deps), attachHandler(deps));
  route(paymentMethodApi.list, listHandler(deps));
  route(paymentMethodApi.makeDefault, makeDefaultHandler(deps));
  route(paymentMethodApi.detach, detachHandler(deps));
  return router;
}

function createSetupIntentHandler(deps: AppDeps): RouteHandler {
  return async (req, res) => {
    const user = currentUser(req);
    const customerId = await ensureGatewayCustomer(deps, user.id);
    // A new intent per request; an Idempotency-Key on the request replays the first answer.
    const intent = await deps.gateway.createSetupIntent({ customerId, idempotencyKey: `setup-intent/${user.id}/${randomUUID()}` });
    res.status(201).json({ setupIntent: { id: intent.id, clientSecret: intent.clientSecret, status: intent.status } });
  };
}

function attachHandler(deps: AppDeps): RouteHandler {
  return async (req, res) => {
    const { paymentMethod } = parseBody(attachSchema, req.body);
    const { row, created } = await saveToCustomer(deps, currentUser(req).id, paymentMethod);
    res.status(created ? 201 : 200).json({ paymentMethod: toPaymentMethodJson(row) });
  };
}

function listHandler(deps: AppDeps): RouteHandler {
  return async (req, res) => {
    const rows = await attachedCards(deps.db, currentUser(req).id);
    res.json({ paymentMethods: rows.map(toPaymentMethodJson) });
  };
}

function makeDefaultHandler(deps: AppDeps): RouteHandler {
  return async (req, res) => {
    const { id } = parseParams(paymentMethodIdParams, req.params);
    const userId = currentUser(req).id;
    const row = await makeDefaultCard(deps.db, userId, id);
    if (!row) throw paymentMethodNotFound();
    await moveLiveSubscriptionsTo(deps, userId, row.id);
    res.json({ paymentMethod: toPaymentMethodJson(row) });
  };
}

function detachHandler(deps: AppDeps): RouteHandler {
  return async (req, res) => {
    const { id } = parseParams(paymentMethodIdParams, req.params);
    const userId = currentUser(req).id;
    if (!(await attachedCard(deps.db, userId, id))) throw paymentMethodNotFound();
    const cards = await attachedCards(deps.db, userId);
    if (cards.length === 1 && (await liveSubscriptionsOf(deps.db, userId)).length > 0) {
      throw new HttpProblem(409, 'Payment method in use', 'This is your only payment method and a subscription is live: add another first.');
    }
    // The gateway first: a card it still holds must not vanish from our list. Detaching is
    // idempotent there, so a retry after a fault here detaches nothing twice.
    await deps.gateway.detachPaymentMethod({ paymentMethod: id });
    const detached = await markCardDetached(deps.db, id);
    // Subscriptions that charged it move to the default card (the new one, if it was the default).
    const replacement = detached?.newDefault ?? (await defaultCard(deps.db, userId));
    if (replacement) await moveLiveSubscriptionsTo(deps, userId, replacement.id, id);
    res.status(204).end();
  };
}

function paymentMethodNotFound(): HttpProblem {
  return new HttpProblem(404, 'Not Found', 'No such payment method.');
}

const paymentMethodAnswer = z.strictObject({ paymentMethod: paymentMethodJsonSchema });

export const paymentMethodApi = {
  createSetupIntent: {
    method: 'post',
    path: '/api/v1/payment-methods/setup-intents',
    summary: 'Start saving a card: the client app confirms the SetupIntent with Stripe.js; its webhook saves the card',
    auth: 'user',
    idempotent: true,
    responses: {
      201: json('The SetupIntent', z.strictObject({ setupIntent: z.strictObject({ id: z.string(), clientSecret: z.string(), status: z.string() }) })),
      ...problems([400, 'A malformed Idempotency-Key']),
    },
  },
  attach: {
    method: 'post',
    path: '/api/v1/payment-methods',
    summary: "Save a payment method (pm_…) to the caller's customer; the first saved becomes the default",
    auth: 'user',
    request: { body: attachSchema },
    responses: {
      201: json('Saved', paymentMethodAnswer),
      200: json('Already saved: the same card', paymentMethodAnswer),
      ...problems(400, [422, 'Not a payment method the gateway will attach, or another customer’s']),
    },
  },
  list: {
    method: 'get',
    path: '/api/v1/payment-methods',
    summary: "The caller's saved cards, the default first",
    auth: 'user',
    responses: { 200: json('Saved cards', z.strictObject({ paymentMethods: z.array(paymentMethodJsonSchema) })) },
  },
  makeDefault: {
    method: 'post',
    path: '/api/v1/payment-methods/{id}/default',
    summary: 'Make a saved card the default; live subscriptions charge it from their next attempt',
    auth: 'user',
    request: { params: paymentMethodIdParams },
    responses: { 200: json('The new default', paymentMethodAnswer), ...problems(400, 404) },
  },
  detach: {
    method: 'delete',
    path: '/api/v1/payment-methods/{id}',
    summary: 'Remove a saved card (detached at the gateway); the newest card left becomes the default',
    auth: 'user',
    request: { params: paymentMethodIdParams },
    responses: {
      204: { description: 'Removed' },
      ...problems(400, 404, [409, 'The only card left while a subscription is live']),
    },
  },
} satisfies Record<string, ApiOperation>;
