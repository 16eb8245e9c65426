import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import express, { type Request, type Router } from 'express';
import Stripe from 'stripe';
import { z } from 'zod';
import type { Transaction } from '../db/client';
import { chargeOfGatewayPayment, recordGatewayRefundTotal, type PaymentRow } from '../db/payments';
import { webhookEvents } from '../db/schema';
import { bookingWorkflowId } from '../domain/booking';
import { formatMoney } from '../domain/money';
import { oneTimePaymentWorkflowId, orphanedPaymentRefundWorkflowId, PAYMENT_ID_METADATA_KEY, type PaymentSettlement } from '../domain/payment';
import { subscriptionWorkflowId } from '../domain/subscription';
import { paymentSettledSignal, refundOrphanedPaymentWorkflow } from '../workflows/payment';
import { taskQueuesOf, type AppDeps } from './deps';
import { json, problems, type ApiOperation } from './contract';
import { HttpProblem } from './problem';
import { apiRouter } from './route';

const MAX_EVENT_BYTES = '1mb';
// Well inside Stripe's wait for an answer: an unreachable Temporal becomes a 503 it will retry.
const SIGNAL_DEADLINE_MS = 5_000;

/**
 * The workflow waiting for each kind of charge. The booking saga receives `paymentSettledSignal`
 * like the others once it charges through the payment activities; refunds have no waiting workflow.
 */
const OWNING_WORKFLOW: Record<PaymentRow['kind'], (payment: PaymentRow) => string | null> = {
  subscription: (p) => (p.subscriptionId ? subscriptionWorkflowId(p.subscriptionId) : null),
  one_time: (p) => oneTimePaymentWorkflowId(p.id),
  booking: (p) => (p.bookingId ? bookingWorkflowId(p.bookingId) : null),
  refund: () => null,
};

/**
 * POST /stripe. The signature is checked on the raw bytes; the event id is inserted in the same
 * transaction that acts on it, committed only once the owning workflow has been signalled, so a
 * duplicate is a no-op and a failure (Temporal unreachable: 503) leaves Stripe's retry to redo it.
 */
export function webhookRoutes(deps: AppDeps): Router {
  const { router, route } = apiRouter();

  route(webhookApi.stripe, express.raw({ type: '*/*', limit: MAX_EVENT_BYTES }), async (req, res) => {
    const event = verifiedEvent(req, deps.config.STRIPE_WEBHOOK_SECRET);
    const log = req.log.child({ stripeEventId: event.id, stripeEventType: event.type });
    const processed = await deps.db.transaction(async (tx) => {
      const recorded = await tx
        .insert(webhookEvents)
        .values({ id: event.id, type: event.type, payload: event })
        .onConflictDoNothing()
        .returning({ id: webhookEvents.id });
      if (recorded.length === 0) return false;
      await actOn(event, tx, deps, log);
      return true;
    });
    if (!processed) log.info('duplicate webhook event ignored');
    res.json({ received: true, duplicate: !processed });
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

async function actOn(event: Stripe.Event, tx: Transaction, deps: AppDeps, log: Request['log']): Promise<void> {
  switch (event.type) {
    case 'payment_intent.succeeded':
    case 'payment_intent.payment_failed': {
      const intent = event.data.object;
      const payment = await chargeOfGatewayPayment(tx, intent.id, intent.metadata?.[PAYMENT_ID_METADATA_KEY]);
      if (!payment) {
        log.info({ gatewayPaymentId: intent.id }, 'no payment for this PaymentIntent; nothing to do');
        return;
      }
      const settlement = settlementOf(event.type, intent, payment);
      const succeeded = settlement.status === 'succeeded';
      // Counted as failed already (its pending timeout won): no workflow will account for this money.
      if (succeeded && payment.status === 'failed') {
        await refundOrphanedPayment(payment, intent.id, deps, log);
        return;
      }
      const delivered = await signalOwner(payment, settlement, deps, log);
      // Still pending, but nothing waits for it any more (a subscription canceled meanwhile, say).
      if (!delivered && succeeded && payment.status === 'pending') await refundOrphanedPayment(payment, intent.id, deps, log);
      return;
    }
    case 'charge.refunded': {
      const charge = event.data.object;
      const intentId = typeof charge.payment_intent === 'string' ? charge.payment_intent : charge.payment_intent?.id;
      const payment = intentId ? await chargeOfGatewayPayment(tx, intentId, undefined) : undefined;
      if (!payment) {
        log.info({ gatewayPaymentId: intentId }, 'no payment for this refunded charge; nothing to do');
        return;
      }
      await recordGatewayRefundTotal(tx, payment.id, charge.amount_refunded);
      log.info({ paymentId: payment.id, refundedTotal: charge.amount_refunded }, 'refund recorded from webhook');
      return;
    }
    default:
      log.debug('webhook event type not handled; recorded only');
  }
}

function settlementOf(
  type: 'payment_intent.succeeded' | 'payment_intent.payment_failed',
  intent: Stripe.PaymentIntent,
  payment: PaymentRow,
): PaymentSettlement {
  if (type === 'payment_intent.succeeded') {
    return { paymentId: payment.id, gatewayPaymentId: intent.id, status: 'succeeded', failureCode: null };
  }
  const lastError = intent.last_payment_error;
  return {
    paymentId: payment.id,
    gatewayPaymentId: intent.id,
    status: 'failed',
    failureCode: lastError?.decline_code ?? lastError?.code ?? 'payment_failed',
  };
}

/** False when no running workflow owns the payment, so nothing received the settlement. */
async function signalOwner(payment: PaymentRow, settlement: PaymentSettlement, deps: AppDeps, log: Request['log']): Promise<boolean> {
  const workflowId = OWNING_WORKFLOW[payment.kind](payment);
  if (!workflowId) {
    log.warn({ paymentId: payment.id, kind: payment.kind }, 'no workflow owns this payment; settlement not delivered');
    return false;
  }
  try {
    await deps.temporal.connection.withDeadline(Date.now() + SIGNAL_DEADLINE_MS, () =>
      deps.temporal.workflow.getHandle(workflowId).signal(paymentSettledSignal, settlement),
    );
    log.info({ paymentId: payment.id, workflowId, status: settlement.status }, 'payment settlement signalled');
    return true;
  } catch (error) {
    // The workflow already ended (a pending charge that timed out, say): nothing waits for this.
    if (!(error instanceof WorkflowNotFoundError)) throw error;
    log.warn({ paymentId: payment.id, workflowId, status: settlement.status }, 'settlement for a workflow that has ended');
    return false;
  }
}

/**
 * The money was taken for something the customer did not get: a workflow refunds it and tells
 * them. One per charge (`refund-<paymentId>`, never started twice) however often Stripe repeats it.
 */
async function refundOrphanedPayment(payment: PaymentRow, gatewayPaymentId: string, deps: AppDeps, log: Request['log']): Promise<void> {
  const workflowId = orphanedPaymentRefundWorkflowId(payment.id);
  try {
    await deps.temporal.connection.withDeadline(Date.now() + SIGNAL_DEADLINE_MS, () =>
      deps.temporal.workflow.start(refundOrphanedPaymentWorkflow, {
        workflowId,
        taskQueue: taskQueuesOf(deps).billing,
        args: [{ paymentId: payment.id, gatewayPaymentId, paymentsTaskQueue: taskQueuesOf(deps).payments }],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        staticSummary: `Refund of ${formatMoney(payment.amount, payment.currency)}: payment ${payment.id} succeeded after it was given up`,
      }),
    );
    log.warn({ paymentId: payment.id, workflowId, paymentStatus: payment.status }, 'payment succeeded after it was given up; refunding it');
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    log.info({ paymentId: payment.id, workflowId }, 'refund of this payment already started');
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
      200: json('Recorded (and acted on unless it is a duplicate)', z.strictObject({ received: z.literal(true), duplicate: z.boolean() })),
      ...problems([400, 'No or a wrong signature, or not a Stripe event'], 413),
    },
  },
} satisfies Record<string, ApiOperation>;
