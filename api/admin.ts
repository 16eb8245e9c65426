/**
 * The staff API, under /api/v1/admin/subscriptions and /api/v1/admin/bookings (role
 * `staff`). Every action is a signal or an update to the workflow that owns the thing, never a
 * row edit, and each one the workflow accepts is written to the audit log with who, what and why.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { and, asc, desc, eq, sql, type SQL } from 'drizzle-orm';
import type { Request, Router } from 'express';
import { z } from 'zod';
import type { Database } from '../db/client';
import { bookings, payments, subscriptions, users } from '../db/schema';
import { isDurationWithin } from '../domain/period';
import { LONGEST_GRACE_EXTENSION } from '../workflows/subscription';
import { isFinalStatus } from '../domain/subscription';
import { normalizeEmail } from '../domain/user';
import { staffRefundUpdate, type StaffRefundResult } from '../workflows/booking';
import { cancelSubscription, extendGrace, retryPaymentNow } from './subscription-client';
import type { AppDeps } from './deps';
import { auditEntryJsonSchema, recordStaffAction, type StaffAction } from './audit';
import { currentUser } from './auth';
import { bookingJsonSchema, toBookingJson } from './booking';
import { json, problems, type ApiOperation } from './contract';
import { paymentJsonSchema, toPaymentJson } from './payment';
import { HttpProblem } from './problem';
import { logWorkflow } from './request-context';
import { apiRouter, type RouteHandler } from './route';
import { subscriptionJsonSchema, toSubscriptionJson, type SubscriptionRow } from './subscription-json';
import { workflowLinker, type WorkflowLinker } from './temporal-ui';
import {
  chargeableAmount,
  cursorOf,
  nonBlankText,
  pageCursor,
  parseBody,
  parseParams,
  parseQuery,
  queryInteger,
  unknownCursor,
  WITHOUT_NUL,
} from './validation';
import { answerDeadline, type AnswerDeadline } from './workflow-answer';

type BookingRow = typeof bookings.$inferSelect;

const reason = nonBlankText(1000).meta({ description: 'Why staff take the action; kept in the audit log.' });
const idParamsSchema = z.strictObject({ id: z.uuid() });

const listSubscriptionsQuery = z.strictObject({
  status: z.enum(subscriptions.status.enumValues).optional(),
  email: z
    .string()
    .max(254)
    .regex(WITHOUT_NUL, 'must not contain a NUL character')
    .transform(normalizeEmail)
    .optional()
    .meta({ description: "The customer's email (any case)." }),
  limit: queryInteger(1, 200).default(50),
  cursor: pageCursor.optional(),
});

const retryPaymentSchema = z.strictObject({ reason });
const extendGraceSchema = z.strictObject({
  period: z
    .string()
    .max(50)
    .refine(
      (period) => isDurationWithin(period, LONGEST_GRACE_EXTENSION),
      `Must be a positive ISO-8601 duration such as P3D or PT12H, at most ${LONGEST_GRACE_EXTENSION}`,
    ),
  reason,
});
const staffCancelSchema = z.strictObject({
  atPeriodEnd: z.boolean().default(true).meta({ description: 'true (default): end at the paid period’s end; false: end now.' }),
  reason,
});
const staffRefundSchema = z.strictObject({
  amount: chargeableAmount.optional().meta({ description: 'Minor units; everything left to refund when absent.' }),
  reason,
});

/** Subscriptions for staff, newest first; `nextCursor` fetches the next page (keyset on created_at, id). */
export const adminSubscriptionListSchema = z.strictObject({
  items: z.array(
    z.strictObject({
      subscription: subscriptionJsonSchema,
      customer: z.strictObject({ id: z.uuid(), email: z.email() }),
    }),
  ),
  nextCursor: z.string().nullable(),
});

const subscriptionActionAnswer = z.strictObject({ subscription: subscriptionJsonSchema, audit: auditEntryJsonSchema });
const refundAnswer = z.strictObject({
  booking: bookingJsonSchema,
  refund: z.strictObject({ amount: z.int().min(1), totalRefunded: z.int().min(0) }).nullable(),
  payments: z.array(paymentJsonSchema),
  audit: auditEntryJsonSchema,
});

/** GET / (search, paginated), POST /:id/retry-payment, /:id/extend-grace, /:id/cancel. */
export function adminSubscriptionRoutes(deps: AppDeps): Router {
  const context: AdminSubscriptionContext = {
    deps,
    link: workflowLinker(deps.config),
    withinAnswerTime: answerDeadline(deps.temporal),
  };
  const { router, route } = apiRouter(deps);
  route(adminApi.listSubscriptions, listSubscriptionsHandler(context));
  route(adminApi.retryPayment, retryPaymentHandler(context));
  route(adminApi.extendGrace, extendGraceHandler(context));
  route(adminApi.cancelSubscription, staffCancelHandler(context));
  return router;
}

/** What the staff's subscription handlers share; `adminSubscriptionRoutes` makes it once per router. */
interface AdminSubscriptionContext {
  deps: AppDeps;
  link: WorkflowLinker;
  withinAnswerTime: AnswerDeadline;
}

/** Subscriptions by status and customer email, newest first, a page at a time (keyset on created_at, id). */
function listSubscriptionsHandler({ deps, link }: AdminSubscriptionContext): RouteHandler {
  const { db } = deps;
  return async (req, res) => {
    const query = parseQuery(listSubscriptionsQuery, req.query);
    if (query.cursor && !(await findSubscription(db, query.cursor))) throw unknownCursor();
    const conditions: SQL[] = [];
    if (query.status) conditions.push(eq(subscriptions.status, query.status));
    if (query.email) conditions.push(eq(users.email, query.email));
    // Compared in the database, at its microsecond precision, against the last row shown.
    if (query.cursor) {
      conditions.push(
        sql`(${subscriptions.createdAt}, ${subscriptions.id}) < (select s.created_at, s.id from subscriptions s where s.id = ${query.cursor})`,
      );
    }
    const rows = await db
      .select({ subscription: subscriptions, email: users.email })
      .from(subscriptions)
      .innerJoin(users, eq(users.id, subscriptions.userId))
      .where(and(...conditions))
      .orderBy(desc(subscriptions.createdAt), desc(subscriptions.id))
      .limit(query.limit + 1);
    const page = rows.slice(0, query.limit);
    res.json({
      items: page.map((row) => ({
        subscription: toSubscriptionJson(row.subscription, link),
        customer: { id: row.subscription.userId, email: row.email },
      })),
      nextCursor: rows.length > query.limit ? cursorOf(page.at(-1)!.subscription.id) : null,
    });
  };
}

/** Asks a past-due subscription's workflow to charge now (the retryPaymentNow signal), and audits it. */
function retryPaymentHandler({ deps, link }: AdminSubscriptionContext): RouteHandler {
  const { db, temporal } = deps;
  return async (req, res) => {
    const { id } = parseParams(idParamsSchema, req.params);
    const body = parseBody(retryPaymentSchema, req.body);
    const row = await pastDueSubscription(db, id);
    logWorkflow(req, res, row.workflowId);
    await toRunningWorkflow(() => retryPaymentNow(temporal, row.id));
    const audit = await audited(db, req, row, 'subscription.retry_payment', body.reason);
    // The charge runs in the workflow; the subscription's page shows its outcome.
    res.status(202).json({ subscription: toSubscriptionJson(row, link), audit });
  };
}

/** Asks a past-due subscription's workflow to move its expiry (the extendGrace signal), and audits it. */
function extendGraceHandler({ deps, link }: AdminSubscriptionContext): RouteHandler {
  const { db, temporal } = deps;
  return async (req, res) => {
    const { id } = parseParams(idParamsSchema, req.params);
    const body = parseBody(extendGraceSchema, req.body);
    const row = await pastDueSubscription(db, id);
    logWorkflow(req, res, row.workflowId);
    await toRunningWorkflow(() => extendGrace(temporal, row.id, body.period));
    const audit = await audited(db, req, row, 'subscription.extend_grace', body.reason, { period: body.period, graceEndsAt: row.graceEndsAt });
    res.status(202).json({ subscription: toSubscriptionJson(row, link), audit });
  };
}

/** Cancels a subscription through its workflow's cancel update, at its period end or now, and audits it. */
function staffCancelHandler({ deps, link, withinAnswerTime }: AdminSubscriptionContext): RouteHandler {
  const { db, temporal } = deps;
  return async (req, res) => {
    const { id } = parseParams(idParamsSchema, req.params);
    const body = parseBody(staffCancelSchema, req.body);
    const row = await knownSubscription(db, id);
    if (isFinalStatus(row.status)) throw subscriptionEnded(row);
    logWorkflow(req, res, row.workflowId);
    try {
      await withinAnswerTime(() => cancelSubscription(temporal, row.id, body.atPeriodEnd));
    } catch (error) {
      if (error instanceof WorkflowUpdateFailedError || error instanceof WorkflowNotFoundError) throw subscriptionEnded(row);
      throw error;
    }
    const audit = await audited(db, req, row, 'subscription.cancel', body.reason, { atPeriodEnd: body.atPeriodEnd });
    res.json({ subscription: toSubscriptionJson(await knownSubscription(db, id), link), audit });
  };
}

async function findSubscription(db: Database, id: string): Promise<SubscriptionRow | undefined> {
  const [row] = await db.select().from(subscriptions).where(eq(subscriptions.id, id)).limit(1);
  return row;
}

async function knownSubscription(db: Database, id: string): Promise<SubscriptionRow> {
  const row = await findSubscription(db, id);
  if (!row) throw new HttpProblem(404, 'Not Found', `There is no subscription ${id}.`);
  return row;
}

/** Retries and grace only mean something while past due; the workflow would ignore them otherwise. */
async function pastDueSubscription(db: Database, id: string): Promise<SubscriptionRow> {
  const row = await knownSubscription(db, id);
  if (row.status !== 'past_due') {
    throw new HttpProblem(
      409,
      'Subscription not past due',
      `Subscription ${id} is ${row.status}; only a past-due subscription has a payment to retry or a grace period.`,
    );
  }
  return row;
}

/** A signal to a workflow that has ended meanwhile is a 409, like the projection saying so. */
async function toRunningWorkflow(signal: () => Promise<void>): Promise<void> {
  try {
    await signal();
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new HttpProblem(409, 'Subscription has ended', 'Its workflow is no longer running.');
    throw error;
  }
}

function audited(db: Database, req: Request, row: SubscriptionRow, action: string, why: string, details: Record<string, unknown> = {}) {
  return recordStaffAction(
    db,
    staffAction(req, { action, target: { type: 'subscription', id: row.id }, reason: why, details: { workflowId: row.workflowId, ...details } }),
  );
}

/** POST /:id/refund: money back on a confirmed booking through its workflow, within what was charged. */
export function adminBookingRoutes(deps: AppDeps): Router {
  const { db, temporal } = deps;
  const link = workflowLinker(deps.config);
  const withinAnswerTime = answerDeadline(temporal);
  const { router, route } = apiRouter(deps);

  route(adminApi.refundBooking, async (req, res) => {
    const { id } = parseParams(idParamsSchema, req.params);
    const body = parseBody(staffRefundSchema, req.body);
    const [booking] = await db.select().from(bookings).where(eq(bookings.id, id)).limit(1);
    if (!booking) throw new HttpProblem(404, 'Booking not found', `There is no booking ${id}.`);
    if (booking.status !== 'confirmed') throw new HttpProblem(409, 'Booking cannot be refunded', `Booking ${id} is ${booking.status}.`);
    logWorkflow(req, res, booking.workflowId);
    let refund: StaffRefundResult | null;
    try {
      refund = await withinAnswerTime(() =>
        temporal.workflow.getHandle(booking.workflowId).executeUpdate(staffRefundUpdate, { args: [{ amount: body.amount, reason: body.reason }] }),
      );
    } catch (error) {
      // Still at work (a slow gateway): the workflow carries the refund out durably.
      if (!(error instanceof WorkflowUpdateRPCTimeoutOrCancelledError)) throw refundRefused(error, booking);
      refund = null;
    }
    const audit = await recordStaffAction(
      db,
      staffAction(req, {
        action: 'booking.refund',
        target: { type: 'booking', id },
        reason: body.reason,
        details: {
          workflowId: booking.workflowId,
          requestedAmount: body.amount ?? null,
          refundedAmount: refund?.refundedAmount ?? null,
          answered: refund !== null,
        },
      }),
    );
    const paymentRows = await db.select().from(payments).where(eq(payments.bookingId, id)).orderBy(asc(payments.createdAt), asc(payments.id));
    res.status(refund ? 200 : 202).json({
      booking: toBookingJson(booking, link),
      refund: refund && { amount: refund.refundedAmount, totalRefunded: refund.totalRefunded },
      payments: paymentRows.map((row) => toPaymentJson(row, link)),
      audit,
    });
  });

  return router;
}

function staffAction(req: Request, action: Omit<StaffAction, 'actorId'>): StaffAction {
  return { actorId: currentUser(req).id, ...action };
}

/** Why the booking's workflow refused the refund, as a problem. */
function refundRefused(error: unknown, booking: BookingRow): unknown {
  if (error instanceof WorkflowNotFoundError) {
    return new HttpProblem(409, 'Booking closed', `Booking ${booking.id} can no longer be changed: its offering has ended.`);
  }
  if (!(error instanceof WorkflowUpdateFailedError)) return error;
  const cause = error.cause;
  const type = cause instanceof ApplicationFailure ? cause.type : undefined;
  if (type === 'InvalidRefund') return new HttpProblem(422, 'Refund not possible', (cause as ApplicationFailure).message);
  if (type === 'BookingNotConfirmed' || type === 'BookingBusy')
    return new HttpProblem(409, 'Booking cannot be refunded now', (cause as ApplicationFailure).message);
  return new HttpProblem(502, 'Refund failed', 'The gateway did not make the refund; nothing was refunded by this request.');
}

function subscriptionEnded(row: SubscriptionRow): HttpProblem {
  return new HttpProblem(409, 'Subscription has ended', `Subscription ${row.id} is ${row.status} and can no longer be changed.`);
}

export const adminApi = {
  listSubscriptions: {
    method: 'get',
    path: '/api/v1/admin/subscriptions',
    summary: 'Staff: find subscriptions by status and customer email, newest first, a page at a time',
    auth: 'staff',
    request: { query: listSubscriptionsQuery },
    responses: { 200: json('A page of subscriptions with their customers', adminSubscriptionListSchema), ...problems(400) },
  },
  retryPayment: {
    method: 'post',
    path: '/api/v1/admin/subscriptions/{id}/retry-payment',
    summary: 'Staff: charge a past-due subscription now (the retryPaymentNow signal), even after a hard decline',
    auth: 'staff',
    idempotent: true,
    request: { params: idParamsSchema, body: retryPaymentSchema },
    responses: {
      202: json('Asked; the workflow charges at once', subscriptionActionAnswer),
      ...problems(400, 404, [409, 'The subscription is not past due']),
    },
  },
  extendGrace: {
    method: 'post',
    path: '/api/v1/admin/subscriptions/{id}/extend-grace',
    summary: 'Staff: give a past-due customer more time before expiry (the extendGrace signal)',
    auth: 'staff',
    idempotent: true,
    request: { params: idParamsSchema, body: extendGraceSchema },
    responses: {
      202: json('Asked; the workflow moves the expiry', subscriptionActionAnswer),
      ...problems(400, 404, [409, 'The subscription is not past due']),
    },
  },
  cancelSubscription: {
    method: 'post',
    path: '/api/v1/admin/subscriptions/{id}/cancel',
    summary: "Staff: cancel a subscription at its period end (default) or now (the workflow's cancel update)",
    auth: 'staff',
    idempotent: true,
    request: { params: idParamsSchema, body: staffCancelSchema },
    responses: {
      200: json('The subscription after the cancel', subscriptionActionAnswer),
      ...problems(400, 404, [409, 'The subscription has ended']),
    },
  },
  refundBooking: {
    method: 'post',
    path: '/api/v1/admin/bookings/{id}/refund',
    summary: 'Staff: refund some or all of a confirmed booking through its workflow (the staffRefund update)',
    auth: 'staff',
    idempotent: true,
    request: { params: idParamsSchema, body: staffRefundSchema },
    responses: {
      200: json('Refunded', refundAnswer),
      202: json('The workflow is still carrying the refund out', refundAnswer),
      ...problems(
        400,
        404,
        [409, 'The booking is not confirmed, is busy with another change, or has closed'],
        [422, 'More than is left to refund'],
        [502, 'The gateway did not make the refund'],
      ),
    },
  },
} satisfies Record<string, ApiOperation>;
