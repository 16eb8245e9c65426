/**
 * Staff refunds of subscription and one-time payments, under /api/v1/admin/payments (role
 * `staff`). Each refund is a short workflow (workflows/payment-refund.ts) that refunds at the
 * gateway, tells the customer and the subscription's workflow; the route answers with its
 * outcome and writes the action to the audit log. Booking payments are refunded through their
 * booking's workflow (POST /api/v1/admin/bookings/{id}/refund), which owns what is left of them.
 *
 * Where each money step is made once:
 * - the request: an `Idempotency-Key` replays the first answer (api/idempotency.ts), and the
 *   workflow id derives from it and the payment (staffRefundWorkflowId), so even a repeat that
 *   runs the handler again reaches the first request's workflow (a closed one answers its result);
 * - the refund: the activity's idempotency key is that workflow id, unique in `payments` and sent
 *   to the gateway, so a retried activity is one row and one refund;
 * - the amount: checked here against the row for a quick answer, and decided by the activity's
 *   claim under the charge's row lock, so concurrent refunds never exceed what is left.
 */
import { isGrpcDeadlineError, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import type { Router } from 'express';
import { z } from 'zod';
import type { Database } from '../db/client';
import { findPayment, refundableAmount, type PaymentRow } from '../db/payments';
import { payments, users } from '../db/schema';
import { formatMoney } from '../domain/money';
import { staffRefundWorkflowId } from '../domain/payment';
import { paymentRefundSummary } from '../domain/workflow-descriptions';
import { paymentRefundWorkflow, type PaymentRefundInput, type PaymentRefundResult } from '../workflows/payment-refund';
import { customerAttributes } from '../workflows/search-attributes';
import { taskQueuesOf, type AppDeps } from './deps';
import { auditEntryJsonSchema, recordStaffAction } from './audit';
import { currentUser } from './auth';
import { json, problems, type ApiOperation } from './contract';
import { idForRequest } from './derived-ids';
import { paymentJsonSchema, toPaymentJson } from './payment';
import { HttpProblem } from './problem';
import { logWorkflow } from './request-context';
import { apiRouter, type RouteHandler } from './route';
import { workflowLinker, type WorkflowLinker } from './temporal-ui';
import { chargeableAmount, nonBlankText, parseBody, parseParams } from './validation';
import { answerDeadline, type AnswerDeadline, type WorkflowRouteOptions } from './workflow-answer';

const idParamsSchema = z.strictObject({ id: z.uuid() });

const paymentRefundSchema = z.strictObject({
  amount: chargeableAmount.optional().meta({ description: 'Minor units; everything left to refund when absent.' }),
  reason: nonBlankText(1000).meta({ description: 'Why staff refund it; kept in the audit log and on the refund.' }),
});

type PaymentRefundBody = z.infer<typeof paymentRefundSchema>;

const refundedAnswer = z.strictObject({
  payment: paymentJsonSchema.meta({ description: 'The charge after the refund (with its refundedAmount).' }),
  refund: paymentJsonSchema.meta({ description: 'The refund: a payment of kind `refund`.' }),
  audit: auditEntryJsonSchema,
});

const underWayAnswer = z.strictObject({
  payment: paymentJsonSchema.meta({ description: 'The charge as it stands.' }),
  refund: paymentJsonSchema.nullable().meta({ description: 'The refund as it stands; null until the workflow has claimed it.' }),
  audit: auditEntryJsonSchema,
});

/** POST /api/v1/admin/payments/{id}/refund. */
export function adminPaymentRoutes(deps: AppDeps, options: WorkflowRouteOptions = {}): Router {
  const context: AdminPaymentContext = {
    deps,
    link: workflowLinker(deps.config),
    withinAnswerTime: answerDeadline(deps.temporal, options),
  };
  const { router, route } = apiRouter(deps);
  route(adminPaymentApi.refundPayment, refundPaymentHandler(context));
  return router;
}

interface AdminPaymentContext {
  deps: AppDeps;
  link: WorkflowLinker;
  /** Past it the refund is answered 202, still carried out by its workflow. */
  withinAnswerTime: AnswerDeadline;
}

/** A charge and its customer's email (for the workflow's search attributes). */
interface ChargeToRefund {
  charge: PaymentRow;
  email: string;
}

/**
 * Refunds some or all of a charge through a paymentRefundWorkflow: 200 once it is refunded, 202
 * when the workflow is still at it (a slow gateway) past the answer deadline. Refusals change
 * nothing and are not audited.
 */
function refundPaymentHandler(context: AdminPaymentContext): RouteHandler {
  const { deps, link } = context;
  const { db } = deps;
  return async (req, res) => {
    const { id } = parseParams(idParamsSchema, req.params);
    const body = parseBody(paymentRefundSchema, req.body);
    const { charge, email } = await refundableCharge(db, id);
    const workflowId = staffRefundWorkflowId(id, idForRequest(req, currentUser(req).id, adminPaymentApi.refundPayment));
    logWorkflow(req, res, workflowId);
    // A repeat of a request that has claimed its refund already reaches the same refund, whatever is left now.
    const repeated = await refundByKey(db, workflowId);
    const amount = repeated ? repeated.amount : amountToRefund(charge, body.amount);

    const input: PaymentRefundInput = {
      paymentId: charge.id,
      userId: charge.userId,
      subscriptionId: charge.subscriptionId,
      amount,
      currency: charge.currency,
      description: charge.description,
      reason: body.reason,
      paymentsTaskQueue: taskQueuesOf(deps).payments,
    };
    const handle = await startRefund(deps, input, workflowId, { charge, email });
    const result = await refundOutcome(context, handle, charge, amount);
    const audit = await recordStaffAction(db, {
      actorId: currentUser(req).id,
      action: 'payment.refund',
      target: { type: 'payment', id: charge.id },
      reason: body.reason,
      details: auditDetails(charge, body, workflowId, amount, result),
    });
    const refundRow = result ? await findPayment(db, result.refundPaymentId) : await refundByKey(db, workflowId);
    const chargeNow = (await findPayment(db, charge.id))!;
    res.status(result ? 200 : 202).json({
      payment: toPaymentJson(chargeNow, link),
      refund: refundRow ? toPaymentJson(refundRow, link) : null,
      audit,
    });
  };
}

/** The charge named, if staff may refund it here: 404 when unknown, 409 for what this route does not refund. */
async function refundableCharge(db: Database, id: string): Promise<ChargeToRefund> {
  const [found] = await db
    .select({ charge: payments, email: users.email })
    .from(payments)
    .innerJoin(users, eq(users.id, payments.userId))
    .where(eq(payments.id, id))
    .limit(1);
  if (!found) throw new HttpProblem(404, 'Payment not found', `There is no payment ${id}.`);
  const { charge } = found;
  if (charge.kind === 'booking') {
    const route = charge.bookingId ? `/api/v1/admin/bookings/${charge.bookingId}/refund` : '/api/v1/admin/bookings/{id}/refund';
    throw new HttpProblem(409, 'Booking payment', `Payment ${id} pays for a booking, whose workflow refunds it: use POST ${route}.`);
  }
  if (charge.kind === 'refund') {
    throw new HttpProblem(409, 'Payment is a refund', `Payment ${id} is a refund of payment ${charge.refundOf}; only a charge can be refunded.`);
  }
  // `refunded`: refunded in full already; what is left (nothing) is the answer.
  if (charge.status !== 'succeeded' && charge.status !== 'refunded') {
    throw new HttpProblem(409, 'Payment not refundable', `Payment ${id} is ${charge.status}; only a payment that succeeded can be refunded.`);
  }
  return found;
}

/** The amount asked for, or everything left when none is; refused when nothing is left or it is more. */
function amountToRefund(charge: PaymentRow, requested: number | undefined): number {
  const left = refundableAmount(charge);
  if (left === 0) throw nothingLeft(charge);
  if (requested !== undefined && requested > left) throw exceedsWhatIsLeft(charge, requested, left);
  return requested ?? left;
}

/** The refund a request made, found by its idempotency key (the workflow id). */
async function refundByKey(db: Database, workflowId: string): Promise<PaymentRow | undefined> {
  const [row] = await db.select().from(payments).where(eq(payments.idempotencyKey, workflowId)).limit(1);
  return row;
}

/**
 * Starts the refund's workflow, or reaches the one a repeated request started: a running one is
 * joined (USE_EXISTING), a closed one is not started again and its result answers.
 */
async function startRefund(
  deps: AppDeps,
  input: PaymentRefundInput,
  workflowId: string,
  { charge, email }: ChargeToRefund,
): Promise<WorkflowHandle<typeof paymentRefundWorkflow>> {
  const customer = { userId: charge.userId, email };
  try {
    return await deps.temporal.workflow.start(paymentRefundWorkflow, {
      workflowId,
      taskQueue: taskQueuesOf(deps).billing,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: customerAttributes(customer),
      staticSummary: paymentRefundSummary(
        { amount: input.amount, chargeAmount: charge.amount, currency: charge.currency, description: charge.description },
        customer,
      ),
    });
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return deps.temporal.workflow.getHandle<typeof paymentRefundWorkflow>(workflowId);
    throw error;
  }
}

/** The workflow's result within the answer deadline; null past it (still under way); a refusal as a problem. */
async function refundOutcome(
  { deps, withinAnswerTime }: AdminPaymentContext,
  handle: WorkflowHandle<typeof paymentRefundWorkflow>,
  charge: PaymentRow,
  amount: number,
): Promise<PaymentRefundResult | null> {
  try {
    return await withinAnswerTime(() => handle.result());
  } catch (error) {
    // Still at work (a slow gateway): the workflow carries the refund out durably.
    if (isGrpcDeadlineError(error)) return null;
    throw await refundRefused(deps.db, error, charge, amount);
  }
}

/** Why the refund's workflow refused, as a problem; anything else is thrown as it is (a 5xx). */
async function refundRefused(db: Database, error: unknown, charge: PaymentRow, amount: number): Promise<unknown> {
  if (!(error instanceof WorkflowFailedError) || !(error.cause instanceof ApplicationFailure)) return error;
  const { type, message } = error.cause;
  switch (type) {
    case 'RefundExceedsPayment': {
      // Others took what was left meanwhile: the row, as the claim left it, says how much is left now.
      const now = (await findPayment(db, charge.id)) ?? charge;
      const left = refundableAmount(now);
      return left === 0 ? nothingLeft(now) : exceedsWhatIsLeft(now, amount, left);
    }
    case 'PaymentNotRefundable':
      return new HttpProblem(409, 'Payment not refundable', message);
    case 'RefundFailed':
    case 'GatewayRequestRejectedError':
      return new HttpProblem(502, 'Refund failed', 'The gateway did not make the refund; nothing was refunded by this request.');
    default:
      return error;
  }
}

function nothingLeft(charge: PaymentRow): HttpProblem {
  return new HttpProblem(
    409,
    'Nothing left to refund',
    `Payment ${charge.id} has been refunded in full (${formatMoney(charge.refundedAmount, charge.currency)}).`,
    {
      refundable: 0,
    },
  );
}

function exceedsWhatIsLeft(charge: PaymentRow, amount: number, left: number): HttpProblem {
  return new HttpProblem(
    422,
    'Refund exceeds what is left',
    `amount: ${amount} is more than the ${left} (${formatMoney(left, charge.currency)}) left to refund of payment ${charge.id}.`,
    { refundable: left, invalidParams: [{ name: 'amount', reason: `Must be at most ${left}, what is left to refund` }] },
  );
}

function auditDetails(charge: PaymentRow, body: PaymentRefundBody, workflowId: string, amount: number, result: PaymentRefundResult | null) {
  return {
    workflowId,
    paymentId: charge.id,
    refundPaymentId: result?.refundPaymentId ?? null,
    customerId: charge.userId,
    ...(charge.subscriptionId ? { subscriptionId: charge.subscriptionId } : {}),
    requestedAmount: body.amount ?? null,
    amount,
    currency: charge.currency,
    refundedTotal: result?.refundedTotal ?? null,
    answered: result !== null,
  };
}

export const adminPaymentApi = {
  refundPayment: {
    method: 'post',
    path: '/api/v1/admin/payments/{id}/refund',
    summary: 'Staff: refund some or all of a subscription or one-time payment (a paymentRefundWorkflow)',
    description:
      'Refunds `amount` (everything left when absent) of a payment that succeeded, never more than is left of it however many ' +
      'refunds race. Booking payments are refunded with POST /api/v1/admin/bookings/{id}/refund.',
    auth: 'staff',
    idempotent: true,
    request: { params: idParamsSchema, body: paymentRefundSchema },
    responses: {
      200: json('Refunded: the charge after the refund, and the refund', refundedAnswer),
      202: json('The workflow is still carrying the refund out (a slow gateway)', underWayAnswer),
      ...problems(
        400,
        404,
        [409, 'Nothing is left to refund, or the payment is a booking payment, a refund, or did not succeed'],
        [422, 'More than is left to refund'],
        [502, 'The gateway did not make the refund'],
      ),
    },
  },
} satisfies Record<string, ApiOperation>;
