import type { Router } from 'express';
import { z } from 'zod';
import { SandboxGateway, SandboxIntentStateError } from '../activities/gateway/sandbox';
import { findPayment } from '../db/payments';
import type { AppDeps } from './deps';
import { currentUser } from './auth';
import { json, problems, type ApiOperation } from './contract';
import { paymentJsonSchema, toPaymentJson } from './payment';
import { HttpProblem } from './problem';
import { apiRouter, type RouteHandler } from './route';
import { workflowLinker } from './temporal-ui';
import { parseBody, parseParams } from './validation';
import { receiveGatewayEvent } from './webhook-events';

const authenticateSchema = z.strictObject({
  outcome: z.enum(['succeeded', 'failed']).meta({ description: 'How the customer finished the 3-D Secure challenge' }),
});
const paymentIdParams = z.strictObject({ id: z.uuid() });

/**
 * Routes that play the customer's part at the sandbox gateway, for development, tests and the
 * README's walk-through. Mounted only when the gateway is the sandbox: with Stripe the customer
 * authenticates in Stripe.js and Stripe's webhook reports it.
 */
export function sandboxRoutes(deps: AppDeps): Router {
  const { router, route } = apiRouter(deps);
  if (deps.config.PAYMENT_GATEWAY !== 'sandbox' || !(deps.gateway instanceof SandboxGateway)) return router;
  route(sandboxApi.authenticate, authenticateHandler(deps, deps.gateway));
  return router;
}

/**
 * The customer completes (or fails) the challenge of a payment that awaits them. The sandbox
 * records it and makes the event Stripe would send; the event goes through the webhook's own
 * handling, so the owning workflow learns of it exactly as it would from Stripe.
 */
function authenticateHandler(deps: AppDeps, sandbox: SandboxGateway): RouteHandler {
  const link = workflowLinker(deps.config);
  return async (req, res) => {
    const { id } = parseParams(paymentIdParams, req.params);
    const { outcome } = parseBody(authenticateSchema, req.body);
    const payment = await findPayment(deps.db, id);
    if (!payment || payment.userId !== currentUser(req).id) throw new HttpProblem(404, 'Not Found', 'No such payment.');
    if (payment.status !== 'pending' || payment.gatewayPaymentId === null || payment.nextAction === null) {
      throw new HttpProblem(409, 'Nothing to authenticate', `This payment is ${payment.status} and does not await the customer.`);
    }
    let event;
    try {
      event = await sandbox.completeAuthentication(payment.gatewayPaymentId, outcome);
    } catch (error) {
      if (error instanceof SandboxIntentStateError) throw new HttpProblem(409, 'Nothing to authenticate', error.message);
      throw error;
    }
    await receiveGatewayEvent(event, deps, req.log);
    res.json({ payment: toPaymentJson((await findPayment(deps.db, id))!, link) });
  };
}

export const sandboxApi = {
  authenticate: {
    method: 'post',
    path: '/api/v1/sandbox/payments/{id}/authenticate',
    summary: 'Sandbox gateway only: play the customer completing or failing 3-D Secure for a payment that awaits them',
    description:
      'Served only when PAYMENT_GATEWAY=sandbox. The sandbox then reports the outcome exactly as a Stripe webhook would, and the owning workflow settles the payment.',
    auth: 'user',
    request: { params: paymentIdParams, body: authenticateSchema },
    responses: {
      200: json('Reported; the payment as it stands (its workflow settles it within moments)', z.strictObject({ payment: paymentJsonSchema })),
      ...problems(400, 404, [409, 'The payment does not await the customer']),
    },
  },
} satisfies Record<string, ApiOperation>;
