/**
 * /api/v1/subscriptions/{id}/…: what an owner changes on a running subscription. Each route is a
 * workflow update (workflows/subscription/changes.ts), whose validator decides what the state
 * allows; this file only reads the request, looks up a new plan's terms, and turns the
 * workflow's answer or refusal into HTTP. The preview runs the same pure proration the workflow
 * charges with (domain/proration.ts) on the workflow's own snapshot, and changes nothing.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import type { Request, Router } from 'express';
import { z } from 'zod';
import type { Database } from '../db/client';
import { plans } from '../db/schema';
import { chargedPayment } from '../db/payments';
import type { PlanTerms, SubscriptionSnapshot } from '../domain/subscription';
import {
  applyCouponUpdate,
  cancelScheduledChangeUpdate,
  changeQuoteQuery,
  changeSubscriptionUpdate,
  pauseSubscriptionUpdate,
  reactivateSubscriptionUpdate,
  resumeSubscriptionUpdate,
  SUBSCRIPTION_FAILURES,
} from '../workflows/subscription';
import { currentUser } from './auth';
import { couponCode } from './coupon';
import { isoDateTime, json, problems, type ApiOperation } from './contract';
import { idempotencyScope, idFromIdempotencyKey } from './derived-ids';
import type { AppDeps } from './deps';
import { paymentJsonSchema, toPaymentJson } from './payment';
import { planTermsOf } from './plan';
import { HttpProblem } from './problem';
import { paymentRateLimit } from './rate-limit';
import { logWorkflow } from './request-context';
import { apiRouter, type RouteHandler } from './route';
import { subscriptionHandle } from './subscription-client';
import { subscriptionCoupons } from './subscription-coupon';
import {
  changeableSubscription,
  planOnSale,
  seatQuantity,
  subscriptionAnswer,
  subscriptionIdParams,
  subscriptionRow,
  visibleSubscription,
} from './subscription';
import { subscriptionJsonSchema, toSubscriptionJson, type SubscriptionRow } from './subscription-json';
import { workflowLinker } from './temporal-ui';
import { parseBody, parseQuery, queryInteger } from './validation';
import { answerDeadline } from './workflow-answer';

const changeSchema = z
  .strictObject({
    planId: z.uuid().optional().meta({ description: 'The plan to move to; absent: the current plan (a change of seats).' }),
    quantity: seatQuantity.optional().meta({ description: 'Seats after the change; absent: as now.' }),
    when: z.enum(['now', 'period_end']).default('now').meta({ description: '`now`: prorated at once; `period_end`: at the next renewal.' }),
  })
  .refine((body) => body.planId !== undefined || body.quantity !== undefined, { path: ['planId'], message: 'Name a planId, a quantity, or both' });

const previewQuery = z
  .strictObject({ planId: z.uuid().optional(), quantity: queryInteger(1, 10_000).optional() })
  .refine((query) => query.planId !== undefined || query.quantity !== undefined, { path: ['planId'], message: 'Name a planId, a quantity, or both' });

const pauseSchema = z.strictObject({
  resumesAt: isoDateTime
    .optional()
    .refine((at) => at === undefined || Date.parse(at) > Date.now(), 'Must be in the future')
    .meta({ description: 'When the pause ends by itself (after the paid period); absent: until resumed.' }),
});

const prorationSchema = z
  .strictObject({
    credit: z.int().min(0).meta({ description: 'Minor units credited for the rest of the period on the current terms.' }),
    charge: z.int().min(0).meta({ description: 'Minor units for the rest of the period on the new terms.' }),
    net: z.int().meta({ description: 'charge − credit: charged now when positive, added to the credit balance when negative.' }),
    currency: z.string(),
    periodEnd: isoDateTime,
  })
  .meta({ id: 'Proration' });

const applyCouponSchema = z.strictObject({ couponCode });

const paymentOrNull = z.union([paymentJsonSchema, z.null()]);
const changeAnswer = z.strictObject({
  subscription: subscriptionJsonSchema,
  proration: z.union([prorationSchema, z.null()]),
  payment: paymentOrNull,
});
const resumeAnswer = z.strictObject({ subscription: subscriptionJsonSchema, payment: paymentOrNull });

export function subscriptionChangeRoutes(deps: AppDeps): Router {
  const { db } = deps;
  const { router, route } = apiRouter(deps);
  route(
    subscriptionChangeApi.change,
    paymentRateLimit(deps),
    updateHandler(deps, subscriptionChangeApi.change, async ({ req, row, handle, updateId }) => {
      const body = parseBody(changeSchema, req.body);
      const plan = body.planId ? await planForChange(db, body.planId) : undefined;
      const change = { ...(plan ? { plan } : {}), quantity: body.quantity ?? row.quantity, when: body.when };
      return handle.executeUpdate(changeSubscriptionUpdate, { args: [change], ...(updateId ? { updateId } : {}) });
    }),
  );
  route(subscriptionChangeApi.preview, previewHandler(deps));
  route(
    subscriptionChangeApi.cancelScheduledChange,
    updateHandler(deps, subscriptionChangeApi.cancelScheduledChange, ({ handle }) => handle.executeUpdate(cancelScheduledChangeUpdate)),
  );
  route(
    subscriptionChangeApi.pause,
    updateHandler(deps, subscriptionChangeApi.pause, ({ req, handle }) => {
      const { resumesAt } = parseBody(pauseSchema, req.body);
      return handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ resumesAt: resumesAt ?? null }] });
    }),
  );
  route(
    subscriptionChangeApi.resume,
    paymentRateLimit(deps),
    updateHandler(deps, subscriptionChangeApi.resume, ({ handle, updateId }) =>
      handle.executeUpdate(resumeSubscriptionUpdate, updateId ? { updateId } : {}),
    ),
  );
  route(subscriptionChangeApi.applyCoupon, applyCouponHandler(deps));
  route(
    subscriptionChangeApi.reactivate,
    updateHandler(deps, subscriptionChangeApi.reactivate, ({ handle }) => handle.executeUpdate(reactivateSubscriptionUpdate)),
  );
  return router;
}

interface UpdateRequest {
  req: Request;
  row: SubscriptionRow;
  handle: ReturnType<typeof subscriptionHandle>;
  /** From the Idempotency-Key: a retry with the same key is the same update, answered once by Temporal. */
  updateId: string | undefined;
}

/** What an update may answer besides the subscription: a charge it made, and what it prorated. */
type UpdateAnswer = SubscriptionSnapshot | { proration?: unknown; payment: { paymentId: string; status: string } | null };

/**
 * The owner's update to the subscription's workflow, answered with the subscription as projected
 * after it, and the charge it made (202 while that charge awaits the customer).
 */
function updateHandler(deps: AppDeps, operation: ApiOperation, update: (request: UpdateRequest) => Promise<UpdateAnswer>): RouteHandler {
  const { db, temporal } = deps;
  const link = workflowLinker(deps.config);
  const withinAnswerTime = answerDeadline(temporal);
  return async (req, res) => {
    const row = await changeableSubscription(db, req, req.params.id);
    logWorkflow(req, res, row.workflowId);
    const handle = subscriptionHandle(temporal, row.id);
    const answer = await askWorkflow(withinAnswerTime, () => update({ req, row, handle, updateId: updateIdOf(req, row.id, operation) }));
    const subscription = toSubscriptionJson(await subscriptionRow(db, row.id), link);
    if (!('payment' in answer)) {
      res.json({ subscription });
      return;
    }
    const payment = answer.payment && toPaymentJson(await chargedPayment(db, answer.payment.paymentId), link);
    const proration = 'proration' in answer ? { proration: answer.proration } : {};
    res.status(answer.payment?.status === 'pending' ? 202 : 200).json({ subscription, ...proration, payment });
  };
}

/**
 * A coupon on a live subscription, from its next charge: redeemed first (its place taken), then
 * handed to the workflow; a workflow that refuses it (the subscription ended meanwhile) gives
 * the place back. A retry finds the redemption made for this subscription and takes no other.
 */
function applyCouponHandler(deps: AppDeps): RouteHandler {
  const coupons = subscriptionCoupons(deps);
  return updateHandler(deps, subscriptionChangeApi.applyCoupon, async ({ req, row, handle, updateId }) => {
    const { couponCode } = parseBody(applyCouponSchema, req.body);
    const [plan] = await deps.db.select({ id: plans.id, currency: plans.currency }).from(plans).where(eq(plans.id, row.planId));
    const coupon = await coupons.redeem({ code: couponCode, userId: row.userId, subscriptionId: row.id, plan });
    try {
      return await handle.executeUpdate(applyCouponUpdate, { args: [{ discount: coupon.discount }], ...(updateId ? { updateId } : {}) });
    } catch (error) {
      if (coupon.fresh && (error instanceof WorkflowUpdateFailedError || error instanceof WorkflowNotFoundError))
        await coupons.release(coupon.redemptionId);
      throw error;
    }
  });
}

/**
 * What a change would cost now, priced by the workflow itself (the changeQuote query runs the
 * same pure functions its change charges with: proration, the period's coupon, tax); nothing is
 * changed and nothing is written to the history.
 */
function previewHandler(deps: AppDeps): RouteHandler {
  const { db, temporal } = deps;
  return async (req, res) => {
    const row = await visibleSubscription(db, req, req.params.id);
    const query = parseQuery(previewQuery, req.query);
    const plan = query.planId ? await planForChange(db, query.planId) : undefined;
    const request = { ...(plan ? { plan } : {}), ...(query.quantity ? { quantity: query.quantity } : {}), at: new Date().toISOString() };
    const quote = await askWorkflow(answerDeadline(temporal), () => subscriptionHandle(temporal, row.id).query(changeQuoteQuery, request));
    if (quote.refusal !== null || !quote.proration) throw new HttpProblem(409, 'Change not possible', quote.refusal ?? 'not possible now');
    res.json({ proration: quote.proration, amountDue: quote.amountDue, credit: quote.credit });
  };
}

/** A plan on sale to change to; an unknown one is a 400 naming the field (the body is wrong, not the state). */
async function planForChange(db: Database, planId: string): Promise<PlanTerms> {
  return planTermsOf(await planOnSale(db, planId, { status: 400 }));
}

function updateIdOf(req: Request, subscriptionId: string, operation: ApiOperation): string | undefined {
  const key = req.get('idempotency-key');
  return key ? idFromIdempotencyKey(currentUser(req).id, `${idempotencyScope(operation)} ${subscriptionId}`, key) : undefined;
}

/**
 * The workflow's refusal as HTTP: its validator's reasons (a bad field: 400; the state: 409), a
 * declined charge (402, nothing changed), a closed workflow (409); no answer in time is a 503.
 */
async function askWorkflow<T>(withinAnswerTime: ReturnType<typeof answerDeadline>, call: () => Promise<T>): Promise<T> {
  try {
    return await withinAnswerTime(call);
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new HttpProblem(409, 'Subscription has ended', 'This subscription can no longer be changed.');
    if (error instanceof WorkflowUpdateRPCTimeoutOrCancelledError) throw error;
    if (!(error instanceof WorkflowUpdateFailedError)) throw error;
    throw problemOf(error.cause);
  }
}

function problemOf(cause: unknown): HttpProblem {
  const failure = cause instanceof ApplicationFailure ? cause : null;
  const message = cause instanceof Error ? cause.message : 'refused';
  switch (failure?.type) {
    case SUBSCRIPTION_FAILURES.invalidRequest: {
      const field = (failure.details?.[0] as { field?: string } | undefined)?.field ?? 'body';
      const reason = message.replace(`${field}: `, '');
      return new HttpProblem(400, 'Invalid request', message, { invalidParams: [{ name: field, reason }] });
    }
    case SUBSCRIPTION_FAILURES.declined: {
      const details = (failure.details?.[0] ?? {}) as { paymentId?: string; failureCode?: string; decline?: string };
      return new HttpProblem(402, 'Payment declined', `${message}; nothing was changed.`, {
        paymentId: details.paymentId ?? null,
        failureCode: details.failureCode ?? null,
        decline: details.decline ?? null,
      });
    }
    default:
      // The validator's reason names the state (`the subscription is past_due`, `…already paused`).
      return new HttpProblem(409, 'Change not possible', message);
  }
}

export const subscriptionChangeApi = {
  applyCoupon: {
    method: 'post',
    path: '/api/v1/subscriptions/{id}/coupon',
    summary: "Apply a coupon to the owner's subscription from its next charge (it replaces one applied before)",
    auth: 'user',
    idempotent: 'converges',
    request: { params: subscriptionIdParams, body: applyCouponSchema },
    responses: {
      200: json('Applied: `subscription.discount` shows it', z.strictObject({ subscription: subscriptionJsonSchema })),
      ...problems(400, 404, [409, 'The coupon cannot be redeemed (`reason`), or the subscription has ended'], [422, 'No coupon has this code']),
    },
  },
  change: {
    method: 'post',
    path: '/api/v1/subscriptions/{id}/change',
    summary: 'Change plan or seats, now (prorated: the net is charged, or credited to the balance) or at the period end',
    auth: 'user',
    idempotent: 'converges',
    request: { params: subscriptionIdParams, body: changeSchema },
    responses: {
      200: json('Changed (or scheduled), with what it charged', changeAnswer),
      202: json('The prorated charge awaits the customer (3-D Secure); the change applies when it settles', changeAnswer),
      ...problems(400, [402, 'The prorated charge was declined; nothing changed'], 404, [
        409,
        'The state does not allow it (past due, paused, another change under way, another currency or interval)',
      ]),
    },
  },
  preview: {
    method: 'get',
    path: '/api/v1/subscriptions/{id}/change-preview',
    summary: 'What a change of plan or seats would credit and charge now; changes nothing',
    auth: 'user',
    request: { params: subscriptionIdParams, query: previewQuery },
    responses: {
      200: json(
        'The proration, and what it would charge (discount and tax in) or credit',
        z.strictObject({
          proration: prorationSchema,
          amountDue: z.int().min(0).meta({ description: "Charged at once: the positive net, less the period's percentage coupon, plus tax." }),
          credit: z.int().min(0).meta({ description: 'Added to the credit balance: a negative net, as much as the customer paid for it.' }),
        }),
      ),
      ...problems(400, 404, 409),
    },
  },
  cancelScheduledChange: {
    method: 'delete',
    path: '/api/v1/subscriptions/{id}/scheduled-change',
    summary: 'Withdraw a plan change scheduled for the period end',
    auth: 'user',
    request: { params: subscriptionIdParams },
    responses: { 200: json('The subscription', subscriptionAnswer), ...problems(404, [409, 'No change is scheduled']) },
  },
  pause: {
    method: 'post',
    path: '/api/v1/subscriptions/{id}/pause',
    summary: 'Pause when the paid period ends (nothing is charged while paused), optionally until resumesAt',
    auth: 'user',
    idempotent: true,
    request: { params: subscriptionIdParams, body: pauseSchema },
    responses: { 200: json('The subscription', subscriptionAnswer), ...problems(400, 404, [409, 'Past due, already paused, or ending']) },
  },
  resume: {
    method: 'post',
    path: '/api/v1/subscriptions/{id}/resume',
    summary: 'Resume: withdraws a pause not yet in effect, or charges a new period from now',
    auth: 'user',
    idempotent: 'converges',
    request: { params: subscriptionIdParams },
    responses: {
      200: json('Resumed', resumeAnswer),
      202: json('The new period’s charge awaits the customer', resumeAnswer),
      ...problems(404, [402, 'The charge was declined; the subscription stays paused'], [409, 'Not paused']),
    },
  },
  reactivate: {
    method: 'post',
    path: '/api/v1/subscriptions/{id}/reactivate',
    summary: 'Withdraw a cancel-at-period-end before the period ends',
    auth: 'user',
    idempotent: true,
    request: { params: subscriptionIdParams },
    responses: { 200: json('The subscription', subscriptionAnswer), ...problems(404, [409, 'Not set to cancel']) },
  },
} satisfies Record<string, ApiOperation>;
