/**
 * /api/v1/subscriptions/{id}/…: what an owner changes on a running subscription. Each route is a
 * workflow update (workflows/subscription/changes.ts), whose validator decides what the state
 * allows; this file only reads the request, looks up a new plan's terms, and turns the
 * workflow's answer or refusal into HTTP. The preview runs the same pure proration the workflow
 * charges with (domain/proration.ts) on the workflow's own snapshot, and changes nothing.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { and, eq } from 'drizzle-orm';
import type { Router } from 'express';
import { z } from 'zod';
import type { Database } from '../db/client';
import { chargedPayment } from '../db/payments';
import { plans } from '../db/schema';
import { prorate } from '../domain/proration';
import { planChangeRefusal, type PlanTerms, type SubscriptionSnapshot } from '../domain/subscription';
import {
  cancelScheduledChangeUpdate,
  changeSubscriptionUpdate,
  pauseSubscriptionUpdate,
  reactivateSubscriptionUpdate,
  resumeSubscriptionUpdate,
  SUBSCRIPTION_FAILURES,
} from '../workflows/subscription';
import { currentUser } from './auth';
import { isoDateTime, json, problems, type ApiOperation } from './contract';
import { idempotencyScope, idFromIdempotencyKey } from './derived-ids';
import type { AppDeps } from './deps';
import { paymentJsonSchema, toPaymentJson } from './payment';
import { planTermsOf } from './plan';
import { HttpProblem } from './problem';
import { paymentRateLimit } from './rate-limit';
import { logWorkflow } from './request-context';
import { apiRouter, type RouteHandler } from './route';
import { getSubscriptionState, subscriptionHandle } from './subscription-client';
import {
  changeableSubscription,
  seatQuantity,
  subscriptionAnswer,
  subscriptionIdParams,
  subscriptionJsonSchema,
  subscriptionRow,
  toSubscriptionJson,
  visibleSubscription,
} from './subscription';
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

const paymentOrNull = z.union([paymentJsonSchema, z.null()]);
const changeAnswer = z.strictObject({
  subscription: subscriptionJsonSchema,
  proration: z.union([prorationSchema, z.null()]),
  payment: paymentOrNull,
});
const resumeAnswer = z.strictObject({ subscription: subscriptionJsonSchema, payment: paymentOrNull });

export function subscriptionChangeRoutes(deps: AppDeps): Router {
  const { router, route } = apiRouter(deps);
  route(subscriptionChangeApi.change, paymentRateLimit(deps), changeHandler(deps));
  route(subscriptionChangeApi.preview, previewHandler(deps));
  route(
    subscriptionChangeApi.cancelScheduledChange,
    snapshotUpdateHandler(deps, (handle) => handle.executeUpdate(cancelScheduledChangeUpdate)),
  );
  route(
    subscriptionChangeApi.pause,
    snapshotUpdateHandler(deps, (handle, body) => {
      const { resumesAt } = parseBody(pauseSchema, body);
      return handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ resumesAt: resumesAt ?? null }] });
    }),
  );
  route(subscriptionChangeApi.resume, paymentRateLimit(deps), resumeHandler(deps));
  route(
    subscriptionChangeApi.reactivate,
    snapshotUpdateHandler(deps, (handle) => handle.executeUpdate(reactivateSubscriptionUpdate)),
  );
  return router;
}

type Handle = ReturnType<typeof subscriptionHandle>;

/** An update whose answer is the subscription: pause, reactivate, withdrawing a scheduled change. */
function snapshotUpdateHandler(deps: AppDeps, update: (handle: Handle, body: unknown) => Promise<SubscriptionSnapshot>): RouteHandler {
  const { db, temporal } = deps;
  const link = workflowLinker(deps.config);
  const withinAnswerTime = answerDeadline(temporal);
  return async (req, res) => {
    const row = await changeableSubscription(db, req, req.params.id);
    logWorkflow(req, res, row.workflowId);
    await askWorkflow(withinAnswerTime, () => update(subscriptionHandle(temporal, row.id), req.body));
    res.json({ subscription: toSubscriptionJson(await subscriptionRow(db, row.id), link) });
  };
}

/** Changes plan or seats; answers 200 with what was charged, 202 while the charge awaits the customer, 402 on decline. */
function changeHandler(deps: AppDeps): RouteHandler {
  const { db, temporal } = deps;
  const link = workflowLinker(deps.config);
  const withinAnswerTime = answerDeadline(temporal);
  return async (req, res) => {
    const row = await changeableSubscription(db, req, req.params.id);
    const body = parseBody(changeSchema, req.body);
    const plan = body.planId ? await planForChange(db, body.planId) : undefined;
    const quantity = body.quantity ?? row.quantity;
    logWorkflow(req, res, row.workflowId);
    // A retry with the same Idempotency-Key is the same update: Temporal answers it once.
    const updateId = updateIdOf(req, row.id, subscriptionChangeApi.change);
    const answer = await askWorkflow(withinAnswerTime, () =>
      subscriptionHandle(temporal, row.id).executeUpdate(changeSubscriptionUpdate, {
        args: [{ ...(plan ? { plan } : {}), quantity, when: body.when }],
        ...(updateId ? { updateId } : {}),
      }),
    );
    const payment = answer.payment && toPaymentJson(await chargedPayment(db, answer.payment.paymentId), link);
    res.status(answer.payment?.status === 'pending' ? 202 : 200).json({
      subscription: toSubscriptionJson(await subscriptionRow(db, row.id), link),
      proration: answer.proration,
      payment,
    });
  };
}

function resumeHandler(deps: AppDeps): RouteHandler {
  const { db, temporal } = deps;
  const link = workflowLinker(deps.config);
  const withinAnswerTime = answerDeadline(temporal);
  return async (req, res) => {
    const row = await changeableSubscription(db, req, req.params.id);
    logWorkflow(req, res, row.workflowId);
    const updateId = updateIdOf(req, row.id, subscriptionChangeApi.resume);
    const answer = await askWorkflow(withinAnswerTime, () =>
      subscriptionHandle(temporal, row.id).executeUpdate(resumeSubscriptionUpdate, updateId ? { updateId } : {}),
    );
    const payment = answer.payment && toPaymentJson(await chargedPayment(db, answer.payment.paymentId), link);
    res
      .status(answer.payment?.status === 'pending' ? 202 : 200)
      .json({ subscription: toSubscriptionJson(await subscriptionRow(db, row.id), link), payment });
  };
}

/** What a change would cost now, from the workflow's own state; nothing is changed. */
function previewHandler(deps: AppDeps): RouteHandler {
  const { db, temporal } = deps;
  return async (req, res) => {
    const row = await visibleSubscription(db, req, req.params.id);
    const query = parseQuery(previewQuery, req.query);
    const plan = query.planId ? await planForChange(db, query.planId) : undefined;
    const snapshot = await askWorkflow(answerDeadline(temporal), () => getSubscriptionState(temporal, row.id));
    const current = { plan: snapshot.plan, quantity: snapshot.quantity };
    const next = { plan: plan ?? current.plan, quantity: query.quantity ?? snapshot.quantity };
    const refusal = planChangeRefusal(current, next);
    if (refusal) throw new HttpProblem(409, 'Change not possible', refusal);
    if (snapshot.status !== 'active' && snapshot.status !== 'trialing') {
      throw new HttpProblem(409, 'Change not possible', `the subscription is ${snapshot.status}; its plan can change while it is active or trialing`);
    }
    const periodEnd = snapshot.currentPeriodEnd ?? snapshot.trialEnd!;
    // In a trial nothing was paid, so nothing is prorated: the new terms apply from the trial's end.
    const proration =
      snapshot.status === 'trialing' || !snapshot.currentPeriodStart
        ? { credit: 0, charge: 0, net: 0, currency: snapshot.plan.currency, periodEnd }
        : prorate({
            periodStart: new Date(snapshot.currentPeriodStart),
            periodEnd: new Date(periodEnd),
            at: new Date(),
            from: { amount: snapshot.plan.amount, quantity: snapshot.quantity },
            to: { amount: next.plan.amount, quantity: next.quantity },
            currency: snapshot.plan.currency,
          });
    res.json({ proration });
  };
}

/** A plan on sale to change to; an unknown one is a 400 naming the field (the body is wrong, not the state). */
async function planForChange(db: Database, planId: string): Promise<PlanTerms> {
  const [plan] = await db
    .select()
    .from(plans)
    .where(and(eq(plans.id, planId), eq(plans.active, true)))
    .limit(1);
  if (!plan) {
    throw new HttpProblem(400, 'Invalid request', 'planId: No plan on sale has this id', {
      invalidParams: [{ name: 'planId', reason: 'No plan on sale has this id' }],
    });
  }
  return planTermsOf(plan);
}

function updateIdOf(req: Parameters<RouteHandler>[0], subscriptionId: string, operation: ApiOperation): string | undefined {
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
    responses: { 200: json('The proration', z.strictObject({ proration: prorationSchema })), ...problems(400, 404, 409) },
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
