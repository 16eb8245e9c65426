import express, { type Request, type Router } from 'express';
import Stripe from 'stripe';
import { z } from 'zod';
import type { AppDeps } from './deps';
import { json, problems, type ApiOperation } from './contract';
import { HttpProblem } from './problem';
import { apiRouter } from './route';
import { receiveGatewayEvent } from './webhook-events';

const MAX_EVENT_BYTES = '1mb';

/**
 * POST /stripe. The signature (and its timestamp, within Stripe's five-minute tolerance) is
 * checked on the raw bytes; api/webhook-events.ts acts on the event once. A failure (Temporal
 * unreachable: 503) leaves the event `received`, and Stripe's retry acts on it again.
 */
export function webhookRoutes(deps: AppDeps): Router {
  const { router, route } = apiRouter();

  route(webhookApi.stripe, express.raw({ type: '*/*', limit: MAX_EVENT_BYTES }), async (req, res) => {
    const event = verifiedEvent(req, deps.config.STRIPE_WEBHOOK_SECRET);
    const log = req.log.child({ stripeEventId: event.id, stripeEventType: event.type });
    const { duplicate } = await receiveGatewayEvent(event, deps, log);
    res.json({ received: true, duplicate });
  });

  return router;
}

function verifiedEvent(req: Request, secret: string): Stripe.Event {
  const signature = req.get('stripe-signature');
  if (!signature || !Buffer.isBuffer(req.body)) {
    throw new HttpProblem(400, 'Invalid webhook', 'A Stripe-Signature header and a body are required.');
  }
  try {
    return Stripe.webhooks.constructEvent(req.body, signature, secret);
  } catch (error) {
    if (error instanceof Stripe.errors.StripeSignatureVerificationError) {
      throw new HttpProblem(400, 'Invalid webhook signature', 'The Stripe-Signature header does not match the body.');
    }
    // The signature matched but the body is not JSON.
    throw new HttpProblem(400, 'Invalid webhook', 'The body is not a Stripe event.');
  }
}

export const webhookApi = {
  stripe: {
    method: 'post',
    path: '/api/v1/webhooks/stripe',
    summary: 'Stripe events, verified against Stripe-Signature on the raw body; a repeated event is a no-op',
    auth: 'public',
    unlimited: true,
    request: {
      headers: z.object({ 'stripe-signature': z.string().meta({ description: "Stripe's signature of the raw body" }) }),
      body: z.looseObject({ id: z.string(), type: z.string() }).meta({ description: 'A Stripe event' }),
    },
    responses: {
      200: json(
        'Recorded, and acted on unless it is a duplicate or does not match what it names (then ignored)',
        z.strictObject({ received: z.literal(true), duplicate: z.boolean() }),
      ),
      ...problems([400, 'No or a wrong signature, a stale timestamp, or not a Stripe event'], 413, [503, 'Not acted on yet; retry']),
    },
  },
} satisfies Record<string, ApiOperation>;
