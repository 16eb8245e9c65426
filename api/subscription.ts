import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { and, asc, desc, eq } from 'drizzle-orm';
import type { Request, Router } from 'express';
import { z } from 'zod';
import type { Database } from '../db/client';
import { chargedPayment } from '../db/payments';
import { notifications, payments, plans, subscriptions } from '../db/schema';
import { referralOf } from '../db/referrals';
import { MAX_QUANTITY } from '../domain/proration';
import { isFinalStatus, subscriptionWorkflowId } from '../domain/subscription';
import type { SubscriptionWorkflowInput } from '../workflows/subscription';
import { cancelSubscription, changePaymentMethod, startSubscription } from './subscription-client';
import { taskQueuesOf, type AppDeps } from './deps';
import { currentUser } from './auth';
import { couponCode } from './coupon';
import { activationAsItStands, type ActivationOutcome } from './closed-workflow-answers';
import { json, problems, type ApiOperation } from './contract';
import { idempotencyScope, idForRequest, idFromIdempotencyKey } from './derived-ids';
import { paymentJsonSchema, toPaymentJson } from './payment';
import { chargeablePaymentMethod } from './payment-method-choice';
import { planTermsOf } from './plan';
import { HttpProblem } from './problem';
import { paymentRateLimit } from './rate-limit';
import { logWorkflow } from './request-context';
import { apiRouter, type RouteHandler } from './route';
import { subscriptionCoupons } from './subscription-coupon';
import {
  notificationJsonSchema,
  subscriptionJsonSchema,
  toNotificationJson,
  toSubscriptionJson,
  type SubscriptionJson,
  type SubscriptionRow,
} from './subscription-json';
import { workflowLinker, type WorkflowLinker } from './temporal-ui';
import { parseBody, paymentMethodToken } from './validation';
import { ANSWER_WITHIN_MS, answerDeadline, type AnswerDeadline, type WorkflowRouteOptions } from './workflow-answer';

const chosenPaymentMethod = paymentMethodToken
  .optional()
  .meta({ description: 'Absent: the default saved card. A pm_… token is saved to the customer first.' });

/** Seats: a whole number from 1 to MAX_QUANTITY. */
export const seatQuantity = z.int().min(1).max(MAX_QUANTITY).meta({ description: 'Seats; each period costs the plan amount × quantity.' });

export const subscribeSchema = z.strictObject({
  planId: z.uuid(),
  quantity: seatQuantity.default(1),
  paymentMethod: chosenPaymentMethod,
  couponCode: couponCode
    .optional()
    .meta({ description: 'A coupon to apply from the first charge (check it first with GET /api/v1/coupons/validate).' }),
});

export const cancelSchema = z.strictObject({
  subscriptionId: z.uuid(),
  atPeriodEnd: z.boolean().default(true),
});

export const changePaymentMethodSchema = z.strictObject({
  paymentMethod: chosenPaymentMethod,
});

// After the subscribe call ran out of time: a short look at whether its workflow started at all.
const DESCRIBE_DEADLINE_MS = 5_000;

/**
 * /api/v1/subscriptions: subscribe, list, read, cancel and change the payment method.
 * Lifecycle changes go to the subscription's workflow; reads come from its projection row.
 * Past `answerWithinMs` a subscribe is answered 202 (the first charge is still durably under
 * way); a change is a 503 to retry.
 */
export function subscriptionRoutes(deps: AppDeps, options: WorkflowRouteOptions = {}): Router {
  const link = workflowLinker(deps.config);
  const context: SubscriptionHandlerContext = {
    deps,
    options,
    withinAnswerTime: answerDeadline(deps.temporal, options),
    taskQueue: taskQueuesOf(deps).billing,
    link,
    toJson: (row) => toSubscriptionJson(row, link),
  };
  const { router, route } = apiRouter(deps);
  route(subscriptionApi.subscribe, paymentRateLimit(deps), subscribeHandler(context));
  route(subscriptionApi.list, listSubscriptionsHandler(context));
  route(subscriptionApi.cancel, cancelSubscriptionHandler(context));
  route(subscriptionApi.read, readSubscriptionHandler(context));
  // While past due a change charges the new method at once: limited like the other charges.
  route(subscriptionApi.changePaymentMethod, paymentRateLimit(deps), changePaymentMethodHandler(context));
  return router;
}

/** What the subscription handlers share; `subscriptionRoutes` makes it once per router. */
export interface SubscriptionHandlerContext {
  deps: AppDeps;
  options: WorkflowRouteOptions;
  /** Past it a subscribe is answered 202 and a change 503. */
  withinAnswerTime: AnswerDeadline;
  /** Where subscription workflows are started. */
  taskQueue: string;
  link: WorkflowLinker;
  /** A subscription as the API shows it. */
  toJson: (row: SubscriptionRow) => SubscriptionJson;
}

/** Subscribes the caller to a plan on sale, answering once the subscription's workflow has answered the first payment. */
function subscribeHandler(context: SubscriptionHandlerContext): RouteHandler {
  const { deps, withinAnswerTime, taskQueue, link, toJson } = context;
  const { db, temporal, config } = deps;
  const coupons = subscriptionCoupons(deps);
  return async (req, res) => {
    const body = parseBody(subscribeSchema, req.body);
    const userId = currentUser(req).id;
    const plan = planTermsOf(await planOnSale(db, body.planId));
    // Derived from an Idempotency-Key: a retry reaches the first attempt's workflow, charge and coupon redemption.
    const subscriptionId = idForRequest(req, userId, subscriptionApi.subscribe);
    // The coupon first: a refused code saves no card. A card refused after it gives the place back.
    const coupon =
      body.couponCode === undefined
        ? undefined
        : await coupons.redeem({
            code: body.couponCode,
            userId,
            subscriptionId,
            plan: { id: plan.planId, currency: plan.currency },
          });
    const paymentMethod = await chargeablePaymentMethod(deps, userId, body.paymentMethod).catch(async (error: unknown) => {
      if (coupon?.fresh) await coupons.release(coupon.redemptionId);
      throw error;
    });
    const input: Omit<SubscriptionWorkflowInput, 'carried'> = {
      subscriptionId,
      userId,
      plan,
      ...(body.quantity === 1 ? {} : { quantity: body.quantity }),
      paymentMethod,
      pendingPaymentTimeout: config.PENDING_PAYMENT_TIMEOUT,
      paymentActionUrl: config.PAYMENT_ACTION_URL,
      paymentsTaskQueue: taskQueuesOf(deps).payments,
      renewalsTaskQueue: taskQueuesOf(deps).renewals,
      ...(coupon ? { coupon: { discount: coupon.discount, redemptionId: coupon.redemptionId } } : {}),
      ...((await awaitsReferralReward(db, userId)) ? { referralCredit: config.REFERRAL_CREDIT } : {}),
    };
    logWorkflow(req, res, subscriptionWorkflowId(input.subscriptionId));

    let activation: ActivationOutcome;
    try {
      activation = await withinAnswerTime(() => startSubscription(temporal, taskQueue, input, { customerEmail: currentUser(req).email }));
    } catch (error) {
      // Nothing started (Temporal refused or was down), or a retry found the workflow started by
      // the first attempt (which owns its own redemption): the place this request took goes back.
      // After a timeout the workflow may have started with it, so it stays.
      if (coupon?.fresh && !(error instanceof WorkflowUpdateRPCTimeoutOrCancelledError)) {
        await coupons.release(coupon.redemptionId).catch(() => undefined);
      }
      // A retry with the key after the workflow has closed (declined, say): nothing starts again.
      if (error instanceof WorkflowExecutionAlreadyStartedError) {
        activation = await activationAsItStands(db, input.subscriptionId);
      } else {
        if (!(error instanceof WorkflowUpdateRPCTimeoutOrCancelledError)) throw error;
        res.status(202).json({ subscription: await subscriptionStillStarting(context, input), payment: null });
        return;
      }
    }

    const subscription = toJson(await subscriptionRow(db, input.subscriptionId));
    const payment = activation.payment && toPaymentJson(await chargedPayment(db, activation.payment.paymentId), link);
    switch (activation.outcome) {
      case 'active':
      case 'trialing':
        res.status(201).json({ subscription, payment });
        return;
      case 'pending':
        // The customer must confirm the charge; the payment webhook completes the subscription.
        res.status(202).json({ subscription, payment });
        return;
      case 'declined': {
        const failureCode = activation.payment?.failureCode ?? null;
        throw new HttpProblem(402, 'Payment declined', `The first payment was declined (${failureCode}).`, {
          failureCode,
          decline: activation.payment?.decline ?? null,
          subscription,
          payment,
        });
      }
    }
  };
}

/** A referred customer whose referrer has not been rewarded yet: their subscription's first paid period rewards it. */
async function awaitsReferralReward(db: Database, userId: string): Promise<boolean> {
  const referral = await referralOf(db, userId);
  return referral !== undefined && referral.rewardedAt === null;
}

/** The caller's subscriptions, newest first. */
function listSubscriptionsHandler({ deps, toJson }: SubscriptionHandlerContext): RouteHandler {
  const { db } = deps;
  return async (req, res) => {
    const rows = await db
      .select()
      .from(subscriptions)
      .where(eq(subscriptions.userId, currentUser(req).id))
      .orderBy(desc(subscriptions.createdAt), desc(subscriptions.id));
    res.json({ subscriptions: rows.map(toJson) });
  };
}

/** Cancels the owner's subscription through its workflow, at the period end or at once. */
function cancelSubscriptionHandler(context: SubscriptionHandlerContext): RouteHandler {
  const { deps, toJson } = context;
  const { db, temporal } = deps;
  return async (req, res) => {
    const { subscriptionId, atPeriodEnd } = parseBody(cancelSchema, req.body);
    logWorkflow(req, res, (await changeableSubscription(db, req, subscriptionId)).workflowId);
    await changeWorkflow(context, () => cancelSubscription(temporal, subscriptionId, atPeriodEnd));
    res.json({ subscription: toJson(await subscriptionRow(db, subscriptionId)) });
  };
}

/** A subscription with its payments and notifications, for its owner or staff. */
function readSubscriptionHandler({ deps, link, toJson }: SubscriptionHandlerContext): RouteHandler {
  const { db } = deps;
  return async (req, res) => {
    const row = await visibleSubscription(db, req, req.params.id);
    const [paymentRows, notificationRows] = await Promise.all([
      db.select().from(payments).where(eq(payments.subscriptionId, row.id)).orderBy(asc(payments.createdAt), asc(payments.id)),
      db.select().from(notifications).where(eq(notifications.subscriptionId, row.id)).orderBy(asc(notifications.createdAt), asc(notifications.id)),
    ]);
    res.json({
      subscription: toJson(row),
      payments: paymentRows.map((payment) => toPaymentJson(payment, link)),
      notifications: notificationRows.map(toNotificationJson),
    });
  };
}

/** Changes the owner's payment method through the subscription's workflow. */
function changePaymentMethodHandler(context: SubscriptionHandlerContext): RouteHandler {
  const { deps, toJson } = context;
  const { db, temporal } = deps;
  return async (req, res) => {
    const row = await changeableSubscription(db, req, req.params.id);
    const body = parseBody(changePaymentMethodSchema, req.body);
    const paymentMethod = await chargeablePaymentMethod(deps, row.userId, body.paymentMethod);
    logWorkflow(req, res, row.workflowId);
    // While past due the workflow charges the new method at once and answers after that attempt.
    // With an Idempotency-Key the update's id derives from it, so a retry reaches the same update
    // (Temporal answers a known update id with its first outcome) and never charges again.
    const key = req.get('idempotency-key');
    const scope = `${idempotencyScope(subscriptionApi.changePaymentMethod)} ${row.id}`;
    const updateId = key ? idFromIdempotencyKey(currentUser(req).id, scope, key) : undefined;
    await changeWorkflow(context, () => changePaymentMethod(temporal, row.id, paymentMethod, { updateId }));
    res.json({ subscription: toJson(await subscriptionRow(db, row.id)) });
  };
}

/**
 * The plan on sale with this id. Naming none is a 422 at subscribe (well-formed but naming nothing
 * on sale, like units not of an offering) and a 400 where a change's body names it (`status`).
 */
export async function planOnSale(db: Database, planId: string, { status = 422 }: { status?: 400 | 422 } = {}) {
  const [plan] = await db
    .select()
    .from(plans)
    .where(and(eq(plans.id, planId), eq(plans.active, true)))
    .limit(1);
  if (!plan) {
    throw new HttpProblem(status, status === 400 ? 'Invalid request' : 'Unknown plan', 'planId: No plan on sale has this id', {
      invalidParams: [{ name: 'planId', reason: 'No plan on sale has this id' }],
    });
  }
  return plan;
}

/** The owner and staff may read a subscription; to anyone else it does not exist. */
export async function visibleSubscription(db: Database, req: Request, id: string): Promise<SubscriptionRow> {
  const user = currentUser(req);
  const row = await findSubscription(db, id);
  if (!row || (row.userId !== user.id && user.role !== 'staff')) throw subscriptionNotFound();
  return row;
}

/** Only the owner changes a subscription, and only while it has not ended. */
export async function changeableSubscription(db: Database, req: Request, id: string): Promise<SubscriptionRow> {
  const row = await findSubscription(db, id);
  if (!row || row.userId !== currentUser(req).id) throw subscriptionNotFound();
  if (isFinalStatus(row.status)) throw subscriptionEnded(row.status);
  return row;
}

async function findSubscription(db: Database, id: string): Promise<SubscriptionRow | undefined> {
  // A malformed id names no subscription: 404, like an unknown one, not a database error.
  if (!z.uuid().safeParse(id).success) return undefined;
  const [row] = await db.select().from(subscriptions).where(eq(subscriptions.id, id)).limit(1);
  return row;
}

export async function subscriptionRow(db: Database, id: string): Promise<SubscriptionRow> {
  const row = await findSubscription(db, id);
  if (!row) throw new Error(`subscription ${id} has no projection row`);
  return row;
}

/**
 * An update the workflow refuses (its validator: the subscription has ended) or a workflow
 * that has closed is a 409; no answer in time is a 503 (the deadline's gRPC error).
 */
async function changeWorkflow({ withinAnswerTime }: SubscriptionHandlerContext, call: () => Promise<unknown>): Promise<void> {
  try {
    await withinAnswerTime(call);
  } catch (error) {
    if (error instanceof WorkflowUpdateFailedError || error instanceof WorkflowNotFoundError) {
      throw new HttpProblem(409, 'Subscription has ended', 'This subscription can no longer be changed.');
    }
    throw error;
  }
}

// The update-with-start call timed out, which does not say whether the workflow started.
async function subscriptionStillStarting(
  { deps, options, link, toJson }: SubscriptionHandlerContext,
  input: Omit<SubscriptionWorkflowInput, 'carried'>,
): Promise<SubscriptionJson> {
  const { db, temporal } = deps;
  const workflowId = subscriptionWorkflowId(input.subscriptionId);
  try {
    const deadline = Date.now() + Math.min(options.answerWithinMs ?? ANSWER_WITHIN_MS, DESCRIBE_DEADLINE_MS);
    await temporal.connection.withDeadline(deadline, () => temporal.workflow.getHandle(workflowId).describe());
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) {
      throw new HttpProblem(
        503,
        'Service Unavailable',
        'The subscription could not be started; retry shortly.',
        {},
        {
          'Retry-After': '5',
        },
      );
    }
    throw error;
  }
  const row = await findSubscription(db, input.subscriptionId);
  if (row) return toJson(row);
  return {
    id: input.subscriptionId,
    userId: input.userId,
    planId: input.plan.planId,
    status: 'incomplete',
    currentPeriodStart: null,
    currentPeriodEnd: null,
    nextBillingDate: null,
    cancelAtPeriodEnd: false,
    canceledAt: null,
    trialEnd: null,
    graceEndsAt: null,
    attemptCount: 0,
    quantity: input.quantity ?? 1,
    scheduledChange: null,
    pauseAt: null,
    pausedAt: null,
    resumesAt: null,
    discount: null,
    ...link(workflowId),
    createdAt: new Date().toISOString(),
  };
}

function subscriptionNotFound(): HttpProblem {
  return new HttpProblem(404, 'Not Found', 'No such subscription.');
}

function subscriptionEnded(status: SubscriptionRow['status']): HttpProblem {
  return new HttpProblem(409, 'Subscription has ended', `This subscription is ${status} and can no longer be changed.`);
}

export const subscriptionAnswer = z.strictObject({ subscription: subscriptionJsonSchema });
// A union rather than .nullable(): the OpenAPI generator drops the null from a nullable $ref.
const subscribeAnswer = z.strictObject({ subscription: subscriptionJsonSchema, payment: z.union([paymentJsonSchema, z.null()]) });
export const subscriptionIdParams = z.strictObject({ id: z.uuid() });

export const subscriptionApi = {
  subscribe: {
    method: 'post',
    path: '/api/v1/subscriptions/subscribe',
    summary: 'Subscribe to a plan; answers once the first payment has been answered',
    auth: 'user',
    idempotent: 'converges',
    request: { body: subscribeSchema },
    responses: {
      201: json('Active (or trialing): the first payment succeeded or there is a trial', subscribeAnswer),
      202: json('The first payment awaits the customer (or is still under way); a webhook completes it', subscribeAnswer),
      ...problems(
        400,
        [402, 'The first payment was declined; the problem carries the subscription and payment'],
        [409, 'The coupon cannot be redeemed (`reason`: expired, exhausted, not_applicable, already_redeemed)'],
        [422, 'No plan on sale has this id, no coupon this couponCode (or the Idempotency-Key was used with another body)'],
      ),
    },
  },
  list: {
    method: 'get',
    path: '/api/v1/subscriptions/status',
    summary: "The caller's subscriptions, newest first",
    auth: 'user',
    responses: { 200: json('Subscriptions', z.strictObject({ subscriptions: z.array(subscriptionJsonSchema) })) },
  },
  cancel: {
    method: 'post',
    path: '/api/v1/subscriptions/cancel',
    summary: 'Cancel a subscription, at the period end (default) or at once',
    auth: 'user',
    request: { body: cancelSchema },
    responses: { 200: json('The subscription after the cancel', subscriptionAnswer), ...problems(400, 404, [409, 'The subscription has ended']) },
  },
  read: {
    method: 'get',
    path: '/api/v1/subscriptions/{id}',
    summary: 'A subscription with its payments and notifications (owner or staff)',
    auth: 'user',
    request: { params: subscriptionIdParams },
    responses: {
      200: json(
        'The subscription',
        z.strictObject({
          subscription: subscriptionJsonSchema,
          payments: z.array(paymentJsonSchema),
          notifications: z.array(notificationJsonSchema),
        }),
      ),
      ...problems(404),
    },
  },
  changePaymentMethod: {
    method: 'post',
    path: '/api/v1/subscriptions/{id}/payment-method',
    summary: 'Change the payment method; while past due the new one is charged at once',
    auth: 'user',
    idempotent: 'converges',
    request: { params: subscriptionIdParams, body: changePaymentMethodSchema },
    responses: {
      200: json('The subscription after the change', subscriptionAnswer),
      ...problems(
        400,
        404,
        [409, 'The subscription has ended'],
        [422, 'A payment method that cannot be used, or an Idempotency-Key used with another request'],
      ),
    },
  },
} satisfies Record<string, ApiOperation>;
