import {
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { desc, eq } from 'drizzle-orm';
import type { Router } from 'express';
import { z } from 'zod';
import { chargedPayment, findPayment, type PaymentRow } from '../db/payments';
import { chargeablePaymentMethod } from './payment-method-choice';
import { payments } from '../db/schema';
import { oneTimePaymentWorkflowId, type ChargeResult } from '../domain/payment';
import { paymentSummary } from '../domain/workflow-descriptions';
import { chargeAttemptedUpdate, oneTimePaymentWorkflow, type OneTimePaymentInput } from '../workflows/payment';
import { customerAttributes } from '../workflows/search-attributes';
import { taskQueuesOf, type AppDeps } from './deps';
import { currentUser } from './auth';
import { chargeAsItStands } from './closed-workflow-answers';
import { isoDateTime, json, problems, type ApiOperation } from './contract';
import { idForRequest } from './derived-ids';
import { HttpProblem } from './problem';
import { paymentRateLimit } from './rate-limit';
import { logWorkflow } from './request-context';
import { apiRouter, type RouteHandler } from './route';
import { paymentWorkflowId, workflowLinkFields, workflowLinker, type WorkflowLinker } from './temporal-ui';
import { chargeableAmount, currencyCode, nonBlankText, parseBody, parseQuery, paymentMethodToken, queryInteger } from './validation';
import { answerDeadline, type AnswerDeadline, type WorkflowRouteOptions } from './workflow-answer';

/** What the customer's app does to complete a payment that awaits them: Stripe.js with the client secret, or a redirect. */
const nextActionSchema = z.strictObject({
  type: z.enum(['use_stripe_sdk', 'redirect_to_url']),
  clientSecret: z.string(),
  redirectUrl: z.url().optional(),
});

/** A payment as the API shows it; other routers (subscriptions, bookings) reuse it. */
export const paymentJsonSchema = z
  .strictObject({
    id: z.uuid(),
    kind: z.enum(payments.kind.enumValues),
    amount: z.int().min(0),
    currency: z.string(),
    status: z.enum(payments.status.enumValues),
    attempt: z.int().min(1),
    gatewayPaymentId: z.string().nullable(),
    failureCode: z.string().nullable(),
    refundedAmount: z.int().min(0).meta({ description: 'Refunded to the card so far.' }),
    creditApplied: z
      .int()
      .min(0)
      .meta({ description: "Paid from the customer's credit balance; the card was charged amount - creditApplied (nothing when equal)." }),
    subscriptionId: z.uuid().optional(),
    bookingId: z.uuid().optional(),
    refundOf: z.uuid().optional().meta({ description: 'For a refund: the payment it refunds.' }),
    invoiceId: z.uuid().nullable().meta({ description: 'The invoice of a charge that succeeded, or the credit note of a refund; null until then.' }),
    nextAction: nextActionSchema
      .nullable()
      .meta({ description: 'While pending on the customer (3-D Secure): what the client app must do; null otherwise.' }),
    createdAt: isoDateTime,
    ...workflowLinkFields,
  })
  .meta({ id: 'Payment' });

export type PaymentJson = z.infer<typeof paymentJsonSchema>;

/** `link` names the workflow the payment belongs to (see `paymentWorkflowId`). */
export function toPaymentJson(row: PaymentRow, link: WorkflowLinker): PaymentJson {
  return {
    id: row.id,
    kind: row.kind,
    amount: row.amount,
    currency: row.currency,
    status: row.status,
    attempt: row.attempt,
    gatewayPaymentId: row.gatewayPaymentId,
    failureCode: row.failureCode,
    refundedAmount: row.refundedAmount,
    creditApplied: row.creditApplied,
    ...(row.subscriptionId ? { subscriptionId: row.subscriptionId } : {}),
    ...(row.bookingId ? { bookingId: row.bookingId } : {}),
    ...(row.refundOf ? { refundOf: row.refundOf } : {}),
    invoiceId: row.invoiceId,
    nextAction: row.status === 'pending' ? row.nextAction : null,
    createdAt: row.createdAt.toISOString(),
    ...link(paymentWorkflowId(row)),
  };
}

const processPaymentSchema = z.strictObject({
  amount: chargeableAmount,
  currency: currencyCode,
  paymentMethod: paymentMethodToken.optional().meta({ description: 'Absent: the default saved card. A pm_… token is saved to the customer first.' }),
  description: nonBlankText(500),
});

const historyQuerySchema = z.strictObject({
  limit: queryInteger(1, 200).default(50),
});

/**
 * POST /process (a one-time charge, answered once the gateway has answered; past
 * `answerWithinMs` a 202 with the payment as it stands, still durably under way), GET /history.
 */
export function paymentRoutes(deps: AppDeps, options: WorkflowRouteOptions = {}): Router {
  const context: PaymentHandlerContext = {
    deps,
    withinAnswerTime: answerDeadline(deps.temporal, options),
    taskQueue: taskQueuesOf(deps).billing,
    link: workflowLinker(deps.config),
  };
  const { router, route } = apiRouter(deps);
  route(paymentApi.process, paymentRateLimit(deps), processPaymentHandler(context));
  route(paymentApi.history, paymentHistoryHandler(context));
  route(paymentApi.read, readPaymentHandler(context));
  return router;
}

/** What the payment handlers share; `paymentRoutes` makes it once per router. */
interface PaymentHandlerContext {
  deps: AppDeps;
  /** Past it a charge is answered 202 with the payment as it stands. */
  withinAnswerTime: AnswerDeadline;
  /** Where one-time payment workflows are started. */
  taskQueue: string;
  link: WorkflowLinker;
}

/** Charges a one-time payment through its own workflow (update-with-start), answering once the gateway has answered. */
function processPaymentHandler(context: PaymentHandlerContext): RouteHandler {
  const { deps, withinAnswerTime, taskQueue, link } = context;
  const { db, temporal, config } = deps;
  return async (req, res) => {
    const body = parseBody(processPaymentSchema, req.body);
    const user = currentUser(req);
    const input: OneTimePaymentInput = {
      ...body,
      paymentMethod: await chargeablePaymentMethod(deps, user.id, body.paymentMethod),
      session: 'on_session',
      // Derived from an Idempotency-Key: a retry reaches the first attempt's workflow and charge.
      paymentId: idForRequest(req, user.id, paymentApi.process),
      userId: user.id,
      pendingTimeout: config.PENDING_PAYMENT_TIMEOUT,
      paymentsTaskQueue: taskQueuesOf(deps).payments,
    };
    const workflowId = oneTimePaymentWorkflowId(input.paymentId);
    logWorkflow(req, res, workflowId);
    const start = new WithStartWorkflowOperation(oneTimePaymentWorkflow, {
      workflowId,
      taskQueue,
      args: [input],
      // A second start with the same (derived) id attaches to the running workflow; one that has
      // closed is refused, and its row answers.
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: customerAttributes({ userId: user.id, email: user.email }),
      staticSummary: paymentSummary(input.amount, input.currency, input.description, { userId: user.id, email: user.email }),
    });

    let charged: ChargeResult;
    try {
      charged = await withinAnswerTime(() => temporal.workflow.executeUpdateWithStart(chargeAttemptedUpdate, { startWorkflowOperation: start }));
    } catch (error) {
      if (error instanceof WorkflowExecutionAlreadyStartedError) {
        charged = await chargeAsItStands(db, input.paymentId);
      } else {
        if (!(error instanceof WorkflowUpdateRPCTimeoutOrCancelledError)) throw error;
        res.status(202).json({ payment: await paymentStillUnderWay(context, input, workflowId) });
        return;
      }
    }

    const payment = toPaymentJson(await chargedPayment(db, charged.paymentId), link);
    if (charged.status === 'failed') {
      throw new HttpProblem(402, 'Payment declined', `The payment was declined (${charged.failureCode}).`, {
        failureCode: charged.failureCode,
        decline: charged.decline,
        payment,
      });
    }
    // Pending: the customer must act (payment.nextAction says how) or the bank is still working.
    res.status(charged.status === 'pending' ? 202 : 201).json({ payment });
  };
}

/** One payment, for its owner or staff; while it awaits the customer it carries `nextAction`. */
function readPaymentHandler({ deps, link }: PaymentHandlerContext): RouteHandler {
  return async (req, res) => {
    const { id } = req.params;
    const user = currentUser(req);
    const row = z.uuid().safeParse(id).success ? await findPayment(deps.db, id) : undefined;
    if (!row || (row.userId !== user.id && user.role !== 'staff')) throw new HttpProblem(404, 'Not Found', 'No such payment.');
    res.json({ payment: toPaymentJson(row, link) });
  };
}

/** The caller's payments, newest first. */
function paymentHistoryHandler({ deps, link }: PaymentHandlerContext): RouteHandler {
  const { db } = deps;
  return async (req, res) => {
    const { limit } = parseQuery(historyQuerySchema, req.query);
    const rows = await db
      .select()
      .from(payments)
      .where(eq(payments.userId, currentUser(req).id))
      .orderBy(desc(payments.createdAt), desc(payments.id))
      .limit(limit);
    res.json({ payments: rows.map((row) => toPaymentJson(row, link)) });
  };
}

// The update-with-start call timed out, which does not say whether the workflow started.
async function paymentStillUnderWay({ deps, link }: PaymentHandlerContext, input: OneTimePaymentInput, workflowId: string): Promise<PaymentJson> {
  const { db, temporal } = deps;
  try {
    await temporal.workflow.getHandle(workflowId).describe();
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) {
      throw new HttpProblem(503, 'Service Unavailable', 'The payment could not be started; retry shortly.');
    }
    throw error;
  }
  const row = await findPayment(db, input.paymentId);
  if (row) return toPaymentJson(row, link);
  return {
    id: input.paymentId,
    kind: 'one_time',
    amount: input.amount,
    currency: input.currency,
    status: 'pending',
    attempt: 1,
    gatewayPaymentId: null,
    failureCode: null,
    refundedAmount: 0,
    creditApplied: 0,
    invoiceId: null,
    nextAction: null,
    createdAt: new Date().toISOString(),
    ...link(workflowId),
  };
}

const paymentAnswer = z.strictObject({ payment: paymentJsonSchema });

export const paymentApi = {
  process: {
    method: 'post',
    path: '/api/v1/payments/process',
    summary: 'Charge a one-time payment; answers once the gateway has answered',
    auth: 'user',
    idempotent: 'converges',
    request: { body: processPaymentSchema },
    responses: {
      201: json('The payment succeeded', paymentAnswer),
      202: json('The payment awaits the customer (payment.nextAction) or is still under way; a webhook settles it', paymentAnswer),
      ...problems(400, [402, 'The payment was declined; the problem carries the payment'], [422, 'A payment method that cannot be used']),
    },
  },
  history: {
    method: 'get',
    path: '/api/v1/payments/history',
    summary: "The caller's payments, newest first",
    auth: 'user',
    request: { query: historyQuerySchema },
    responses: { 200: json('Payments', z.strictObject({ payments: z.array(paymentJsonSchema) })), ...problems(400) },
  },
  read: {
    method: 'get',
    path: '/api/v1/payments/{id}',
    summary: 'One payment (owner or staff); while it awaits the customer, with its nextAction',
    auth: 'user',
    request: { params: z.strictObject({ id: z.uuid() }) },
    responses: { 200: json('The payment', paymentAnswer), ...problems(404) },
  },
} satisfies Record<string, ApiOperation>;
