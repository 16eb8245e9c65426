import { createHash, randomUUID } from 'node:crypto';
import {
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { and, desc, eq, inArray } from 'drizzle-orm';
import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import { admitHoldRequest, createUnitGate, holdGateOwner } from '../availability/unit-gate';
import { holdView } from '../db/holds';
import { bookings, holds, offerings, payments, units } from '../db/schema';
import { bookingWorkflowId, describeBookingFailure, type BookingFailureReason, type BookingView } from '../domain/booking';
import { duplicateIds, holdTtlMilliseconds, holdWorkflowId, type HoldView } from '../domain/hold';
import { bookingSummary } from '../domain/workflow-descriptions';
import { TASK_QUEUES } from '../platform/task-queues';
import {
  bookingDecisionUpdate,
  bookingWorkflow,
  cancelBookingUpdate,
  rescheduleBookingUpdate,
  type BookingWorkflowInput,
} from '../workflows/booking';
import { claimHoldUpdate, holdSettledSignal, holdWorkflow, releaseHoldUpdate } from '../workflows/hold';
import { customerAttributes, OfferingIdAttribute } from '../workflows/search-attributes';
import type { AppDeps } from './deps';
import { currentUser } from './auth';
import { isoDateTime, json, problems, type ApiOperation } from './contract';
import { paymentJsonSchema, toPaymentJson } from './payment';
import { HttpProblem } from './problem';
import { paymentRateLimit } from './rate-limit';
import { logWorkflow } from './request-context';
import { apiRouter } from './route';
import { workflowLinkFields, workflowLinker, type WorkflowLinker } from './temporal-ui';
import { parseBody, parseParams, parseQuery, paymentMethodToken, queryInteger } from './validation';
import { answerDeadline, type WorkflowRouteOptions } from './workflow-answer';

type BookingRow = typeof bookings.$inferSelect;
type HoldRow = typeof holds.$inferSelect;

const MAX_UNITS_PER_HOLD = 100;

const unitIdsSchema = z
  .array(z.uuid())
  .min(1, 'Name at least one unit')
  .max(MAX_UNITS_PER_HOLD)
  .superRefine((ids, ctx) => {
    const repeated = duplicateIds(ids);
    if (repeated.length > 0) ctx.addIssue({ code: 'custom', message: `Units named more than once: ${repeated.join(', ')}` });
  })
  .meta({ uniqueItems: true });

const holdSchema = z.strictObject({ offeringId: z.uuid(), unitIds: unitIdsSchema });
const createBookingSchema = z.strictObject({ holdId: z.uuid(), paymentMethod: paymentMethodToken });
const cancelSchema = z.strictObject({ bookingId: z.uuid() });
const rescheduleSchema = z.strictObject({ unitIds: unitIdsSchema, paymentMethod: paymentMethodToken.optional() });
const idParamsSchema = z.strictObject({ id: z.uuid() });
const listQuerySchema = z.strictObject({ limit: queryInteger(1, 200).default(50) });

const FAILURE_STATUS: Record<BookingFailureReason, { status: number; title: string }> = {
  payment_declined: { status: 402, title: 'Payment declined' },
  payment_timeout: { status: 402, title: 'Payment not completed' },
  subscription_required: { status: 403, title: 'Subscription required' },
  hold_unavailable: { status: 409, title: 'Hold unavailable' },
  confirm_failed: { status: 409, title: 'Booking could not be confirmed' },
};

/**
 * Holds and bookings, under /api/v1/bookings. Each route validates, authorises and talks
 * to the workflow that owns the thing: a hold's and a booking's workflow decide, the tables
 * are their projections. Routes that start a workflow use update-with-start, so the answer
 * (held or 409; confirmed, 402 or 403) comes back in the same request; past `answerWithinMs` a
 * booking is answered 202 and a hold 503.
 */
export function bookingRoutes(deps: AppDeps, options: WorkflowRouteOptions = {}): Router {
  const { db, temporal, config } = deps;
  const taskQueue = deps.taskQueues?.bookings ?? TASK_QUEUES.bookings;
  const withinDeadline = answerDeadline(temporal, options);
  const gate = createUnitGate(deps.redis, deps.logger);
  const link = workflowLinker(config);
  const toJson = (booking: BookingRow) => toBookingJson(booking, link);
  const { router, route } = apiRouter(deps);

  /**
   * Crash safety: the hold's workflow is started (durably) in the same call that asks it to
   * claim, and its claim runs inside it, so no claim row can exist without a live workflow that
   * will release it at the TTL — whatever process dies at whatever point. A request that gives
   * up waiting tells the workflow to let go at once.
   */
  route(bookingApi.hold, async (req, res) => {
    const input = parseBody(holdSchema, req.body);
    const user = currentUser(req);
    const [offering] = await db.select().from(offerings).where(eq(offerings.id, input.offeringId));
    if (!offering) throw new HttpProblem(404, 'Offering not found', `There is no offering ${input.offeringId}.`);
    if (offering.startsAt.getTime() <= Date.now()) {
      throw new HttpProblem(409, 'Offering has started', `Offering ${offering.id} started at ${offering.startsAt.toISOString()}.`);
    }
    await assertUnitsOfOffering(offering.id, input.unitIds);

    const holdId = randomUUID();
    const admission = await admitHoldRequest({ db, gate }, { holdId, offeringId: offering.id, unitIds: input.unitIds });
    if (admission.status === 'conflict') throw unitsNotAvailable(admission.unavailableUnitIds);

    const workflowId = holdWorkflowId(holdId);
    logWorkflow(req, res, workflowId);
    const start = new WithStartWorkflowOperation(holdWorkflow, {
      workflowId,
      taskQueue,
      args: [{ holdId, userId: user.id, offeringId: offering.id, unitIds: input.unitIds, ttlMs: holdTtlMilliseconds(offering.holdTtl) }],
      workflowIdConflictPolicy: 'FAIL',
      typedSearchAttributes: [...customerAttributes({ userId: user.id, email: user.email }), { key: OfferingIdAttribute, value: offering.id }],
      staticSummary: `Hold of ${bookingSummary(input.unitIds.length, offering.name, { userId: user.id, email: user.email })}`,
    });
    let outcome;
    try {
      outcome = await withinDeadline(() => temporal.workflow.executeUpdateWithStart(claimHoldUpdate, { startWorkflowOperation: start }));
    } catch (err) {
      if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) {
        await letGoOfHold(temporal, workflowId);
        throw new HttpProblem(503, 'Service Unavailable', 'The hold could not be placed in time; retry shortly.');
      }
      await gate.release(offering.id, input.unitIds, holdGateOwner(holdId));
      if (err instanceof WorkflowUpdateFailedError) {
        throw new HttpProblem(503, 'Service Unavailable', 'The hold could not be placed; retry shortly.');
      }
      throw err;
    }
    if (outcome.status === 'conflict') throw unitsNotAvailable(outcome.unavailableUnitIds);
    if (outcome.status === 'rejected') throw unknownUnitsProblem(outcome.unknownUnitIds);
    res.status(201).json({ hold: { ...outcome.hold, ...link(workflowId) } });
  });

  route(bookingApi.releaseHold, async (req, res) => {
    const hold = await ownHold(req, parseParams(idParamsSchema, req.params).id);
    if (hold.status !== 'active') throw holdNotActive(hold, link);
    logWorkflow(req, res, hold.workflowId);
    try {
      await temporal.workflow.getHandle(hold.workflowId).executeUpdate(releaseHoldUpdate);
    } catch (err) {
      // The workflow ended meanwhile (TTL, booking): answer with what it ended as.
      if (!(err instanceof WorkflowUpdateFailedError || err instanceof WorkflowNotFoundError)) throw err;
      throw holdNotActive(await ownHold(req, hold.id), link);
    }
    // A booking may have consumed it just before the release reached the workflow.
    const ended = await ownHold(req, hold.id);
    if (ended.status !== 'released') throw holdNotActive(ended, link);
    res.json({ hold: holdJson(ended, link) });
  });

  /**
   * A hold makes at most one booking: the booking id derives from the hold id, so a repeated
   * request (or a second tab) reaches the same workflow and gets the same answer.
   */
  route(bookingApi.create, paymentRateLimit(deps), async (req, res) => {
    const input = parseBody(createBookingSchema, req.body);
    const user = currentUser(req);
    const hold = await ownHold(req, input.holdId);
    const bookingId = bookingIdForHold(hold.id);
    const existing = await findBooking(bookingId);
    if (!existing) {
      if (hold.status !== 'active') throw holdNotActive(hold, link);
      if (hold.expiresAt.getTime() <= Date.now())
        throw new HttpProblem(409, 'Hold expired', `Hold ${hold.id} expired at ${hold.expiresAt.toISOString()}.`);
    }

    const workflowInput: BookingWorkflowInput = {
      bookingId,
      holdId: hold.id,
      userId: user.id,
      paymentMethod: input.paymentMethod,
      pendingPaymentTimeout: config.PENDING_PAYMENT_TIMEOUT,
      paymentsTaskQueue: deps.taskQueues?.payments ?? TASK_QUEUES.payments,
    };
    logWorkflow(req, res, bookingWorkflowId(bookingId));
    const start = new WithStartWorkflowOperation(bookingWorkflow, {
      workflowId: bookingWorkflowId(bookingId),
      taskQueue,
      args: [workflowInput],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: [...customerAttributes({ userId: user.id, email: user.email }), { key: OfferingIdAttribute, value: hold.offeringId }],
      staticSummary: bookingSummary(hold.unitIds.length, await offeringName(hold.offeringId), { userId: user.id, email: user.email }),
    });
    try {
      await withinDeadline(() => temporal.workflow.executeUpdateWithStart(bookingDecisionUpdate, { startWorkflowOperation: start }));
    } catch (err) {
      // Closed already (the same hold booked before) or still deciding: the projection answers.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError || err instanceof WorkflowUpdateRPCTimeoutOrCancelledError)) throw err;
    }
    const booking = await findBooking(bookingId);
    if (!booking) throw new HttpProblem(503, 'Service Unavailable', 'The booking could not be started; retry shortly.');
    respondWithBooking(res, booking, link);
  });

  route(bookingApi.cancel, async (req, res) => {
    const input = parseBody(cancelSchema, req.body);
    const booking = await visibleBooking(req, input.bookingId);
    if (booking.status !== 'confirmed') throw bookingNotChangeable(booking);
    logWorkflow(req, res, booking.workflowId);
    let result;
    try {
      result = await withinDeadline(() => temporal.workflow.getHandle(booking.workflowId).executeUpdate(cancelBookingUpdate));
    } catch (err) {
      if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return stillChanging(res, booking, link);
      throw await changeRefused(err, booking, 'The refund could not be made; the booking is unchanged.');
    }
    res.json({ booking: toJson(await bookingRow(booking.id)), refund: { tier: result.tier, amount: result.refundedAmount } });
  });

  route(bookingApi.reschedule, async (req, res) => {
    const { id } = parseParams(idParamsSchema, req.params);
    const input = parseBody(rescheduleSchema, req.body);
    const booking = await visibleBooking(req, id);
    if (booking.userId !== currentUser(req).id) {
      throw new HttpProblem(403, 'Forbidden', "Only the booking's owner can choose its new units.");
    }
    if (booking.status !== 'confirmed') throw bookingNotChangeable(booking);
    await assertUnitsOfOffering(booking.offeringId, input.unitIds);
    logWorkflow(req, res, booking.workflowId);
    let result;
    try {
      result = await withinDeadline(() =>
        temporal.workflow
          .getHandle(booking.workflowId)
          .executeUpdate(rescheduleBookingUpdate, { args: [{ unitIds: input.unitIds, paymentMethod: input.paymentMethod }] }),
      );
    } catch (err) {
      if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return stillChanging(res, booking, link);
      throw await changeRefused(err, booking, 'The reschedule failed; the booking is unchanged.');
    }
    switch (result.status) {
      case 'rescheduled':
        res.json({ booking: toJson(await bookingRow(id)), difference: result.difference });
        return;
      case 'unavailable':
        throw unitsNotAvailable(result.unavailableUnitIds);
      case 'rejected':
        throw unknownUnitsProblem(result.unknownUnitIds);
      case 'declined':
        throw new HttpProblem(402, 'Payment declined', `The price difference was declined (${result.failureCode}); the booking is unchanged.`, {
          failureCode: result.failureCode,
        });
      case 'conflict':
        throw new HttpProblem(409, 'Booking changed', 'The booking changed while it was being rescheduled; it is unchanged by this request.');
    }
  });

  route(bookingApi.mine, async (req, res) => {
    const { limit } = parseQuery(listQuerySchema, req.query);
    const rows = await db
      .select()
      .from(bookings)
      .where(eq(bookings.userId, currentUser(req).id))
      .orderBy(desc(bookings.createdAt), desc(bookings.id))
      .limit(limit);
    res.json({ bookings: rows.map(toJson) });
  });

  route(bookingApi.read, async (req, res) => {
    const booking = await visibleBooking(req, parseParams(idParamsSchema, req.params).id);
    const paymentRows = await db.select().from(payments).where(eq(payments.bookingId, booking.id)).orderBy(payments.createdAt);
    res.json({ booking: toJson(booking), payments: paymentRows.map((payment) => toPaymentJson(payment, link)) });
  });

  async function assertUnitsOfOffering(offeringId: string, unitIds: string[]): Promise<void> {
    const found = await db
      .select({ id: units.id })
      .from(units)
      .where(and(eq(units.offeringId, offeringId), inArray(units.id, unitIds)));
    const known = new Set(found.map((u) => u.id));
    const unknown = unitIds.filter((id) => !known.has(id));
    if (unknown.length > 0) throw unknownUnitsProblem(unknown);
  }

  /** The caller's hold; anyone else's is a 404, as if it did not exist. */
  async function ownHold(req: Request, id: string): Promise<HoldRow> {
    const [hold] = await db.select().from(holds).where(eq(holds.id, id));
    if (!hold || hold.userId !== currentUser(req).id) throw new HttpProblem(404, 'Hold not found', `There is no hold ${id}.`);
    return hold;
  }

  /** The booking if the caller owns it or is staff; otherwise a 404, as if it did not exist. */
  async function visibleBooking(req: Request, id: string): Promise<BookingRow> {
    const user = currentUser(req);
    const booking = await findBooking(id);
    if (!booking || (booking.userId !== user.id && user.role !== 'staff')) throw bookingNotFound(id);
    return booking;
  }

  async function offeringName(offeringId: string): Promise<string> {
    const [offering] = await db.select({ name: offerings.name }).from(offerings).where(eq(offerings.id, offeringId));
    return offering?.name ?? `offering ${offeringId}`;
  }

  async function findBooking(id: string): Promise<BookingRow | undefined> {
    const [booking] = await db.select().from(bookings).where(eq(bookings.id, id));
    return booking;
  }

  async function bookingRow(id: string): Promise<BookingRow> {
    const booking = await findBooking(id);
    if (!booking) throw new Error(`booking ${id} vanished`);
    return booking;
  }

  /** Why the booking's workflow refused a cancel or reschedule, as a problem. */
  async function changeRefused(err: unknown, booking: BookingRow, failedDetail: string): Promise<HttpProblem> {
    if (err instanceof WorkflowNotFoundError) {
      return new HttpProblem(409, 'Booking closed', `Booking ${booking.id} can no longer be changed: its offering has ended.`);
    }
    if (!(err instanceof WorkflowUpdateFailedError)) throw err;
    const cause = err.cause;
    if (cause instanceof ApplicationFailure && ['BookingNotConfirmed', 'BookingBusy', 'OfferingStarted'].includes(cause.type ?? '')) {
      return new HttpProblem(409, 'Booking cannot be changed now', cause.message);
    }
    return new HttpProblem(502, 'Change failed', failedDetail);
  }

  return router;
}

/** The workflow is still carrying the change out (a payment awaiting its webhook, say): it goes on durably. */
function stillChanging(res: Response, booking: BookingRow, link: WorkflowLinker): void {
  res.status(202).json({ booking: toBookingJson(booking, link) });
}

function respondWithBooking(res: Response, booking: BookingRow, link: WorkflowLinker): void {
  const json = toBookingJson(booking, link);
  if (booking.status === 'failed') {
    const reason = (booking.failureReason ?? 'confirm_failed') as BookingFailureReason;
    const { status, title } = FAILURE_STATUS[reason];
    throw new HttpProblem(status, title, describeBookingFailure(reason), { reason, booking: json });
  }
  res.status(booking.status === 'pending' ? 202 : 201).json({ booking: json });
}

/** The id of the one booking a hold can make: a name-based UUID (version 8) of the hold id. */
export function bookingIdForHold(holdId: string): string {
  const bytes = createHash('sha256').update(`booking-of-hold:${holdId}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x80;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A booking as the API shows it. */
export const bookingJsonSchema = z
  .strictObject({
    id: z.uuid(),
    userId: z.uuid(),
    offeringId: z.uuid(),
    unitIds: z.array(z.uuid()),
    status: z.enum(bookings.status.enumValues),
    amount: z.int().min(0).meta({ description: "The booking's current price: what the customer has paid net of reschedule refunds." }),
    currency: z.string(),
    refundedAmount: z.int().min(0).meta({ description: 'Money returned by a cancellation.' }),
    ...workflowLinkFields,
    createdAt: isoDateTime,
    failureReason: z.string().nullable(),
  })
  .meta({ id: 'Booking' }) satisfies z.ZodType<BookingView & { failureReason: string | null }>;

export type BookingJson = z.infer<typeof bookingJsonSchema>;

/** A hold as the API shows it (the hold workflow's own view). */
export const holdJsonSchema = z
  .strictObject({
    id: z.uuid(),
    offeringId: z.uuid(),
    unitIds: z.array(z.uuid()),
    expiresAt: isoDateTime,
    status: z.enum(holds.status.enumValues),
    ...workflowLinkFields,
  })
  .meta({ id: 'Hold' }) satisfies z.ZodType<HoldView>;

export function toBookingJson(booking: BookingRow, link: WorkflowLinker): BookingJson {
  return {
    id: booking.id,
    userId: booking.userId,
    offeringId: booking.offeringId,
    unitIds: booking.unitIds,
    status: booking.status,
    amount: booking.amount,
    currency: booking.currency,
    refundedAmount: booking.refundedAmount,
    ...link(booking.workflowId),
    createdAt: booking.createdAt.toISOString(),
    failureReason: booking.failureReason,
  };
}

/** A request gave up waiting for the claim: the hold's workflow releases whatever it claims. */
async function letGoOfHold(temporal: Client, workflowId: string): Promise<void> {
  try {
    await temporal.workflow.getHandle(workflowId).signal(holdSettledSignal);
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
}

function unitsNotAvailable(unitIds: string[]): HttpProblem {
  return new HttpProblem(409, 'Units not available', `Not available: ${unitIds.join(', ')}.`, { unavailableUnitIds: unitIds });
}

function unknownUnitsProblem(unknownUnitIds: string[]): HttpProblem {
  return new HttpProblem(422, 'Unknown units', `Not units of this offering: ${unknownUnitIds.join(', ')}.`, { unknownUnitIds });
}

/** A hold as the API shows it: the hold workflow's view and a link to that workflow. */
function holdJson(hold: HoldRow, link: WorkflowLinker): z.infer<typeof holdJsonSchema> {
  return { ...holdView(hold), ...link(hold.workflowId) };
}

function holdNotActive(hold: HoldRow, link: WorkflowLinker): HttpProblem {
  return new HttpProblem(409, 'Hold not active', `Hold ${hold.id} is ${hold.status}.`, { hold: holdJson(hold, link) });
}

function bookingNotFound(id: string): HttpProblem {
  return new HttpProblem(404, 'Booking not found', `There is no booking ${id}.`);
}

function bookingNotChangeable(booking: BookingRow): HttpProblem {
  return new HttpProblem(409, 'Booking cannot be changed', `Booking ${booking.id} is ${booking.status}.`);
}

const holdAnswer = z.strictObject({ hold: holdJsonSchema });
const bookingAnswer = z.strictObject({ booking: bookingJsonSchema });

export const bookingApi = {
  hold: {
    method: 'post',
    path: '/api/v1/bookings/holds',
    summary: "Hold units of an offering until the offering's hold TTL runs out",
    auth: 'user',
    idempotent: true,
    request: { body: holdSchema },
    responses: {
      201: json('The hold', holdAnswer),
      ...problems(
        400,
        [404, 'No such offering'],
        [409, 'Units not available, or the offering has started'],
        [422, 'Units that are not part of this offering'],
        [503, 'The hold could not be placed in time; retry'],
      ),
    },
  },
  releaseHold: {
    method: 'delete',
    path: '/api/v1/bookings/holds/{id}',
    summary: 'Release a hold of the caller',
    auth: 'user',
    request: { params: idParamsSchema },
    responses: { 200: json('The released hold', holdAnswer), ...problems(400, 404, [409, 'The hold is no longer active']) },
  },
  create: {
    method: 'post',
    path: '/api/v1/bookings/create',
    summary: 'Book what a hold holds: charge, confirm (a saga); one booking per hold',
    auth: 'user',
    idempotent: true,
    request: { body: createBookingSchema },
    responses: {
      201: json('Confirmed', bookingAnswer),
      202: json('The payment awaits the customer (or the saga is still at work)', bookingAnswer),
      ...problems(400, [402, 'The payment was declined or not completed'], [403, 'The offering requires an active subscription'], 404, [
        409,
        'The hold is not active or has expired, or the booking could not be confirmed',
      ]),
    },
  },
  cancel: {
    method: 'post',
    path: '/api/v1/bookings/cancel',
    summary: 'Cancel a confirmed booking; the refund follows the offering’s cancellation tiers',
    auth: 'user',
    idempotent: true,
    request: { body: cancelSchema },
    responses: {
      200: json(
        'Canceled',
        z.strictObject({ booking: bookingJsonSchema, refund: z.strictObject({ tier: z.enum(['full', 'late', 'none']), amount: z.int().min(0) }) }),
      ),
      202: json('The workflow is still carrying the change out', bookingAnswer),
      ...problems(400, 404, [409, 'The booking cannot be changed now'], [502, 'The refund could not be made; the booking is unchanged']),
    },
  },
  reschedule: {
    method: 'post',
    path: '/api/v1/bookings/{id}/reschedule',
    summary: 'Move a confirmed booking to other units of its offering, charging or refunding the difference',
    auth: 'user',
    idempotent: true,
    request: { params: idParamsSchema, body: rescheduleSchema },
    responses: {
      200: json('Rescheduled', z.strictObject({ booking: bookingJsonSchema, difference: z.int() })),
      202: json('The workflow is still carrying the change out', bookingAnswer),
      ...problems(
        400,
        [402, 'The price difference was declined'],
        [403, "Only the booking's owner may reschedule it"],
        404,
        [409, 'Units not available, or the booking cannot be changed now'],
        [422, 'Units that are not part of this offering'],
        [502, 'The reschedule failed; the booking is unchanged'],
      ),
    },
  },
  mine: {
    method: 'get',
    path: '/api/v1/bookings/my',
    summary: "The caller's bookings, newest first",
    auth: 'user',
    request: { query: listQuerySchema },
    responses: { 200: json('Bookings', z.strictObject({ bookings: z.array(bookingJsonSchema) })), ...problems(400) },
  },
  read: {
    method: 'get',
    path: '/api/v1/bookings/{id}',
    summary: 'A booking with its payments (owner or staff)',
    auth: 'user',
    request: { params: idParamsSchema },
    responses: {
      200: json('The booking', z.strictObject({ booking: bookingJsonSchema, payments: z.array(paymentJsonSchema) })),
      ...problems(400, 404),
    },
  },
} satisfies Record<string, ApiOperation>;
