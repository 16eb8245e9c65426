/**
 * The handlers of the booking routes, and the request shapes they parse; api/booking.ts
 * declares the routes (`bookingApi`) and mounts these handlers in order. Each handler
 * validates, authorises and talks to the workflow that owns the thing: a hold's and a
 * booking's workflow decide, the tables are their projections.
 */
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
import type { Request, Response } from 'express';
import { z } from 'zod';
import { admitHoldRequest, holdGateOwner, type UnitGate } from '../availability/unit-gate';
import type { Database } from '../db/client';
import { prepareHoldRequestFacts } from '../db/hold-request';
import { holdView } from '../db/holds';
import { bookings, holds, offerings, payments, units } from '../db/schema';
import { bookingWorkflowId, describeBookingFailure, MAX_RESCHEDULES, type BookingFailureReason } from '../domain/booking';
import { duplicateIds, holdLimitRefusal, holdTtlMilliseconds, holdWorkflowId, type HoldLimitRefusal } from '../domain/hold';
import type { MoveRefusal } from '../domain/move';
import { durationToMilliseconds } from '../domain/period';
import { bookingSummary } from '../domain/workflow-descriptions';
import {
  bookingDecisionUpdate,
  bookingWorkflow,
  cancelBookingUpdate,
  rescheduleBookingUpdate,
  type BookingWorkflowInput,
} from '../workflows/booking';
import { claimHoldUpdate, holdSettledSignal, holdWorkflow, releaseHoldUpdate } from '../workflows/hold';
import { customerAttributes, OfferingIdAttribute } from '../workflows/search-attributes';
// Types only: api/booking.ts imports this file, so a value import back would be a cycle.
import type { BookingJson, HoldJson } from './booking';
import { taskQueuesOf, type AppDeps } from './deps';
import { currentUser } from './auth';
import { toPaymentJson } from './payment';
import { HttpProblem } from './problem';
import { logWorkflow } from './request-context';
import type { RouteHandler } from './route';
import type { WorkflowLinker } from './temporal-ui';
import { chargeablePaymentMethod } from './payment-method-choice';
import { parseBody, parseParams, parseQuery, paymentMethodToken, queryInteger } from './validation';
import type { AnswerDeadline } from './workflow-answer';

export type BookingRow = typeof bookings.$inferSelect;
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

export const holdSchema = z.strictObject({ offeringId: z.uuid(), unitIds: unitIdsSchema });
export const createBookingSchema = z.strictObject({
  holdId: z.uuid(),
  paymentMethod: paymentMethodToken.optional().meta({ description: 'Absent: the default saved card. A pm_… token is saved to the customer first.' }),
});
export const cancelSchema = z.strictObject({ bookingId: z.uuid() });
export const rescheduleSchema = z.strictObject({
  unitIds: unitIdsSchema.meta({ description: 'The booking’s new units: of `offeringId` when given, else of its current offering.' }),
  paymentMethod: paymentMethodToken.optional(),
  offeringId: z
    .uuid()
    .optional()
    .meta({ description: 'Another offering of the booking’s series (seriesId) to move to; absent: the booking’s own offering.' }),
});
export const idParamsSchema = z.strictObject({ id: z.uuid() });
export const listQuerySchema = z.strictObject({ limit: queryInteger(1, 200).default(50) });

const FAILURE_STATUS: Record<BookingFailureReason, { status: number; title: string }> = {
  payment_declined: { status: 402, title: 'Payment declined' },
  payment_timeout: { status: 402, title: 'Payment not completed' },
  subscription_required: { status: 403, title: 'Subscription required' },
  hold_unavailable: { status: 409, title: 'Hold unavailable' },
  confirm_failed: { status: 409, title: 'Booking could not be confirmed' },
};

/** What the booking handlers share; `bookingRoutes` makes it once per router. */
export interface BookingHandlerContext {
  deps: AppDeps;
  /** Where hold and booking workflows are started. */
  taskQueue: string;
  /** Past it a booking is answered 202 and a hold 503. */
  withinDeadline: AnswerDeadline;
  gate: UnitGate;
  link: WorkflowLinker;
  /** A booking as the API shows it. */
  toJson: (booking: BookingRow) => BookingJson;
}

/**
 * Places a hold: the hold's workflow is started with update-with-start, so the answer (held
 * or 409) comes back in the same request.
 *
 * Crash safety: the hold's workflow is started (durably) in the same call that asks it to
 * claim, and its claim runs inside it, so no claim row can exist without a live workflow that
 * will release it at the TTL — whatever process dies at whatever point. A request that gives
 * up waiting tells the workflow to let go at once.
 */
export function placeHoldHandler({ deps, taskQueue, withinDeadline, gate, link }: BookingHandlerContext): RouteHandler {
  const { db, temporal, config } = deps;
  const holdsPerCustomerMax = config.HOLDS_PER_CUSTOMER_MAX;
  const readFacts = prepareHoldRequestFacts(db);
  return async (req, res) => {
    const input = parseBody(holdSchema, req.body);
    const user = currentUser(req);
    // Every check below is answered from one statement (db/hold-request.ts), in this order.
    const facts = await readFacts({ offeringId: input.offeringId, userId: user.id, unitIds: input.unitIds });
    if (!facts) throw new HttpProblem(404, 'Offering not found', `There is no offering ${input.offeringId}.`);
    const { offering } = facts;
    if (offering.status === 'canceled') throw offeringCanceled('the offering was canceled');
    if (offering.startsAt.getTime() <= Date.now()) {
      throw new HttpProblem(409, 'Offering has started', `Offering ${offering.id} started at ${offering.startsAt.toISOString()}.`);
    }
    if (facts.unknownUnitIds.length > 0) throw unknownUnitsProblem(facts.unknownUnitIds);
    // The fast answer while a line waits for these units; the claim's own check is the exact one.
    if (facts.reservedForWaitlist) throw reservedForWaitlist(input.unitIds);
    // A customer already at a limit is answered here, without a workflow; the claim's own check,
    // under the customer's lock, is the one that is exact when their requests race.
    const refusal = holdLimitRefusal({
      ...facts.counts,
      requested: input.unitIds.length,
      maxUnitsPerCustomer: offering.maxUnitsPerCustomer,
      holdsPerCustomerMax,
    });
    if (refusal) throw holdLimitReached(refusal);
    // Units PostgreSQL already has a live claim on are refused as the claim would refuse them,
    // without touching the gate (whose keys would then block others for nothing) or Temporal.
    if (facts.claimedUnitIds.length > 0) throw unitsNotAvailable(facts.claimedUnitIds);

    const holdId = randomUUID();
    const admission = await admitHoldRequest({ db, gate }, { holdId, offeringId: offering.id, unitIds: input.unitIds });
    if (admission.status === 'conflict') throw unitsNotAvailable(admission.unavailableUnitIds);

    const workflowId = holdWorkflowId(holdId);
    logWorkflow(req, res, workflowId);
    const start = new WithStartWorkflowOperation(holdWorkflow, {
      workflowId,
      taskQueue,
      args: [
        {
          holdId,
          userId: user.id,
          offeringId: offering.id,
          unitIds: input.unitIds,
          ttlMs: holdTtlMilliseconds(offering.holdTtl),
          holdsPerCustomerMax,
          maxExtensionMs: durationToMilliseconds(config.HOLD_MAX_EXTENSION),
        },
      ],
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
    if (outcome.status === 'conflict') {
      throw outcome.reservedForWaitlist ? reservedForWaitlist(input.unitIds) : unitsNotAvailable(outcome.unavailableUnitIds);
    }
    if (outcome.status === 'rejected') throw unknownUnitsProblem(outcome.unknownUnitIds);
    if (outcome.status === 'limited') throw holdLimitReached(outcome.refusal);
    if (outcome.status === 'closed') throw offeringCanceled(outcome.reason);
    res.status(201).json({ hold: { ...outcome.hold, ...link(workflowId) } });
  };
}

/** Releases an active hold of the caller through its workflow. */
export function releaseHoldHandler({ deps, link }: BookingHandlerContext): RouteHandler {
  const { db, temporal } = deps;
  return async (req, res) => {
    const hold = await ownHold(db, req, parseParams(idParamsSchema, req.params).id);
    if (hold.status !== 'active') throw holdNotActive(hold, link);
    logWorkflow(req, res, hold.workflowId);
    try {
      await temporal.workflow.getHandle(hold.workflowId).executeUpdate(releaseHoldUpdate);
    } catch (err) {
      // The workflow ended meanwhile (TTL, booking): answer with what it ended as.
      if (!(err instanceof WorkflowUpdateFailedError || err instanceof WorkflowNotFoundError)) throw err;
      throw holdNotActive(await ownHold(db, req, hold.id), link);
    }
    // A booking may have consumed it just before the release reached the workflow.
    const ended = await ownHold(db, req, hold.id);
    if (ended.status !== 'released') throw holdNotActive(ended, link);
    res.json({ hold: holdJson(ended, link) });
  };
}

/**
 * Books what a hold holds: the booking's workflow is started with update-with-start, so the
 * answer (confirmed, 402 or 403) comes back in the same request, or 202 past the deadline.
 *
 * A hold makes at most one booking: the booking id derives from the hold id, so a repeated
 * request (or a second tab) reaches the same workflow and gets the same answer.
 */
export function createBookingHandler(context: BookingHandlerContext): RouteHandler {
  const { deps, taskQueue, withinDeadline, link } = context;
  const { db, temporal, config } = deps;
  return async (req, res) => {
    const input = parseBody(createBookingSchema, req.body);
    const user = currentUser(req);
    const hold = await ownHold(db, req, input.holdId);
    const bookingId = bookingIdForHold(hold.id);
    const existing = await findBooking(db, bookingId);
    if (!existing) {
      if (hold.status !== 'active') throw holdNotActive(hold, link);
      if (hold.expiresAt.getTime() <= Date.now())
        throw new HttpProblem(409, 'Hold expired', `Hold ${hold.id} expired at ${hold.expiresAt.toISOString()}.`);
    }

    const workflowInput: BookingWorkflowInput = {
      bookingId,
      holdId: hold.id,
      userId: user.id,
      paymentMethod: await chargeablePaymentMethod(deps, user.id, input.paymentMethod),
      pendingPaymentTimeout: config.PENDING_PAYMENT_TIMEOUT,
      paymentsTaskQueue: taskQueuesOf(deps).payments,
    };
    logWorkflow(req, res, bookingWorkflowId(bookingId));
    const start = new WithStartWorkflowOperation(bookingWorkflow, {
      workflowId: bookingWorkflowId(bookingId),
      taskQueue,
      args: [workflowInput],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: [...customerAttributes({ userId: user.id, email: user.email }), { key: OfferingIdAttribute, value: hold.offeringId }],
      staticSummary: bookingSummary(hold.unitIds.length, await offeringName(db, hold.offeringId), { userId: user.id, email: user.email }),
    });
    try {
      await withinDeadline(() => temporal.workflow.executeUpdateWithStart(bookingDecisionUpdate, { startWorkflowOperation: start }));
    } catch (err) {
      // Closed already (the same hold booked before) or still deciding: the projection answers.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError || err instanceof WorkflowUpdateRPCTimeoutOrCancelledError)) throw err;
    }
    const booking = await findBooking(db, bookingId);
    if (!booking) throw new HttpProblem(503, 'Service Unavailable', 'The booking could not be started; retry shortly.');
    respondWithBooking(res, booking, context);
  };
}

/** Cancels a confirmed booking (owner or staff) through its workflow, which refunds by the offering's tiers. */
export function cancelBookingHandler(context: BookingHandlerContext): RouteHandler {
  const { deps, withinDeadline, toJson } = context;
  const { db, temporal } = deps;
  return async (req, res) => {
    const input = parseBody(cancelSchema, req.body);
    const booking = await visibleBooking(db, req, input.bookingId);
    if (booking.status !== 'confirmed') throw bookingNotChangeable(booking);
    await assertOfferingNotCanceled(db, booking.offeringId);
    logWorkflow(req, res, booking.workflowId);
    let result;
    try {
      result = await withinDeadline(() => temporal.workflow.getHandle(booking.workflowId).executeUpdate(cancelBookingUpdate));
    } catch (err) {
      if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return stillChanging(res, booking, context);
      throw await changeRefused(err, booking, 'The refund could not be made; the booking is unchanged.');
    }
    res.json({ booking: toJson(await bookingRow(db, booking.id)), refund: { tier: result.tier, amount: result.refundedAmount } });
  };
}

/**
 * Moves the owner's confirmed booking to other units of its offering, or (`offeringId`) to units of
 * another offering of its series, through its workflow.
 */
export function rescheduleBookingHandler(context: BookingHandlerContext): RouteHandler {
  const { deps, withinDeadline, toJson } = context;
  const { db, temporal } = deps;
  return async (req, res) => {
    const { id } = parseParams(idParamsSchema, req.params);
    const input = parseBody(rescheduleSchema, req.body);
    const booking = await visibleBooking(db, req, id);
    if (booking.userId !== currentUser(req).id) {
      throw new HttpProblem(403, 'Forbidden', "Only the booking's owner can choose its new units.");
    }
    if (booking.status !== 'confirmed') throw bookingNotChangeable(booking);
    await assertOfferingNotCanceled(db, booking.offeringId);
    // A move names another offering; the same offering named is an ordinary reschedule, sent as before moves.
    const moveTo = input.offeringId !== undefined && input.offeringId !== booking.offeringId ? input.offeringId : undefined;
    if (moveTo !== undefined) await assertOfferingExists(db, moveTo);
    await assertUnitsOfOffering(db, moveTo ?? booking.offeringId, input.unitIds);
    // Absent: the card the booking was paid with.
    const paymentMethod = input.paymentMethod && (await chargeablePaymentMethod(deps, booking.userId, input.paymentMethod));
    const request = { unitIds: input.unitIds, paymentMethod, ...(moveTo === undefined ? {} : { offeringId: moveTo }) };
    logWorkflow(req, res, booking.workflowId);
    let result;
    try {
      result = await withinDeadline(() =>
        temporal.workflow.getHandle(booking.workflowId).executeUpdate(rescheduleBookingUpdate, { args: [request] }),
      );
    } catch (err) {
      if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return stillChanging(res, booking, context);
      throw await changeRefused(err, booking, 'The reschedule failed; the booking is unchanged.');
    }
    switch (result.status) {
      case 'rescheduled':
        res.json({ booking: toJson(await bookingRow(db, id)), difference: result.difference });
        return;
      case 'unavailable':
        throw unitsNotAvailable(result.unavailableUnitIds);
      case 'rejected':
        throw unknownUnitsProblem(result.unknownUnitIds);
      case 'limited':
        throw holdLimitReached(result.refusal);
      case 'declined':
        throw new HttpProblem(402, 'Payment declined', `The price difference was declined (${result.failureCode}); the booking is unchanged.`, {
          failureCode: result.failureCode,
        });
      case 'closed':
        throw offeringCanceled(result.reason);
      case 'conflict':
        throw new HttpProblem(409, 'Booking changed', 'The booking changed while it was being rescheduled; it is unchanged by this request.');
      case 'refused':
        throw moveNotAllowed(result.refusal);
      case 'unknown_offering':
        throw unknownOffering(result.offeringId);
    }
  };
}

/** The caller's bookings, newest first. */
export function myBookingsHandler({ deps, toJson }: BookingHandlerContext): RouteHandler {
  const { db } = deps;
  return async (req, res) => {
    const { limit } = parseQuery(listQuerySchema, req.query);
    const rows = await db
      .select()
      .from(bookings)
      .where(eq(bookings.userId, currentUser(req).id))
      .orderBy(desc(bookings.createdAt), desc(bookings.id))
      .limit(limit);
    res.json({ bookings: rows.map(toJson) });
  };
}

/** A booking with its payments, for its owner or staff. */
export function readBookingHandler({ deps, link, toJson }: BookingHandlerContext): RouteHandler {
  const { db } = deps;
  return async (req, res) => {
    const booking = await visibleBooking(db, req, parseParams(idParamsSchema, req.params).id);
    const paymentRows = await db.select().from(payments).where(eq(payments.bookingId, booking.id)).orderBy(payments.createdAt);
    res.json({ booking: toJson(booking), payments: paymentRows.map((payment) => toPaymentJson(payment, link)) });
  };
}

async function assertUnitsOfOffering(db: Database, offeringId: string, unitIds: string[]): Promise<void> {
  const found = await db
    .select({ id: units.id })
    .from(units)
    .where(and(eq(units.offeringId, offeringId), inArray(units.id, unitIds)));
  const known = new Set(found.map((u) => u.id));
  const unknown = unitIds.filter((id) => !known.has(id));
  if (unknown.length > 0) throw unknownUnitsProblem(unknown);
}

/** A move's target must exist; what else it must be (of the series, scheduled, not started) the workflow decides. */
async function assertOfferingExists(db: Database, offeringId: string): Promise<void> {
  const [offering] = await db.select({ id: offerings.id }).from(offerings).where(eq(offerings.id, offeringId));
  if (!offering) throw unknownOffering(offeringId);
}

/**
 * A booking of an offering the business canceled is refunded in full by the cancellation: a
 * customer's cancel (refunded by the policy's tiers) or move would only get in its way.
 */
async function assertOfferingNotCanceled(db: Database, offeringId: string): Promise<void> {
  const [offering] = await db.select({ status: offerings.status }).from(offerings).where(eq(offerings.id, offeringId));
  if (offering?.status === 'canceled') throw offeringCanceled('the offering was canceled; its bookings are refunded in full');
}

/** The caller's hold; anyone else's is a 404, as if it did not exist. */
async function ownHold(db: Database, req: Request, id: string): Promise<HoldRow> {
  const [hold] = await db.select().from(holds).where(eq(holds.id, id));
  if (!hold || hold.userId !== currentUser(req).id) throw new HttpProblem(404, 'Hold not found', `There is no hold ${id}.`);
  return hold;
}

/** The booking if the caller owns it or is staff; otherwise a 404, as if it did not exist. */
async function visibleBooking(db: Database, req: Request, id: string): Promise<BookingRow> {
  const user = currentUser(req);
  const booking = await findBooking(db, id);
  if (!booking || (booking.userId !== user.id && user.role !== 'staff')) throw bookingNotFound(id);
  return booking;
}

async function offeringName(db: Database, offeringId: string): Promise<string> {
  const [offering] = await db.select({ name: offerings.name }).from(offerings).where(eq(offerings.id, offeringId));
  return offering?.name ?? `offering ${offeringId}`;
}

async function findBooking(db: Database, id: string): Promise<BookingRow | undefined> {
  const [booking] = await db.select().from(bookings).where(eq(bookings.id, id));
  return booking;
}

async function bookingRow(db: Database, id: string): Promise<BookingRow> {
  const booking = await findBooking(db, id);
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
  if (cause instanceof ApplicationFailure && cause.type === 'RescheduleLimitReached') {
    // Named like the hold limits' 409: which limit, its max and what the booking has used.
    const [counts] = (cause.details ?? []) as { current?: number }[];
    return new HttpProblem(409, 'Reschedule limit reached', cause.message, {
      limit: 'MAX_RESCHEDULES',
      max: MAX_RESCHEDULES,
      current: counts?.current ?? MAX_RESCHEDULES,
    });
  }
  if (cause instanceof ApplicationFailure && cause.type === 'MoveNotAllowed') {
    const [refusal] = (cause.details ?? []) as (MoveRefusal | undefined)[];
    return moveNotAllowed({ code: refusal?.code ?? 'outside_free_window', detail: cause.message });
  }
  if (cause instanceof ApplicationFailure && ['BookingNotConfirmed', 'BookingBusy', 'OfferingStarted'].includes(cause.type ?? '')) {
    return new HttpProblem(409, 'Booking cannot be changed now', cause.message);
  }
  return new HttpProblem(502, 'Change failed', failedDetail);
}

/** The workflow is still carrying the change out (a payment awaiting its webhook, say): it goes on durably. */
function stillChanging(res: Response, booking: BookingRow, { toJson }: BookingHandlerContext): void {
  res.status(202).json({ booking: toJson(booking) });
}

function respondWithBooking(res: Response, booking: BookingRow, { toJson }: BookingHandlerContext): void {
  const json = toJson(booking);
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

function reservedForWaitlist(unitIds: string[]): HttpProblem {
  return new HttpProblem(409, 'Units reserved for the waitlist', 'Customers are waiting for these units: join the waitlist instead.', {
    unavailableUnitIds: unitIds,
  });
}

/** The business canceled the offering (the claim, under its lock, or the row said so): nothing new is taken. */
function offeringCanceled(reason: string): HttpProblem {
  return new HttpProblem(409, 'Offering canceled', `${reason[0].toUpperCase()}${reason.slice(1)}: it takes no new holds, bookings or moves.`);
}

function holdLimitReached({ limit, max, current, detail }: HoldLimitRefusal): HttpProblem {
  return new HttpProblem(409, 'Hold limit reached', detail, { limit, max, current });
}

/** A move the series rules refuse: `reason` names which rule (domain/move.ts MoveRefusalCode). */
function moveNotAllowed(refusal: MoveRefusal): HttpProblem {
  return new HttpProblem(409, 'Move not allowed', `${refusal.detail}; the booking is unchanged.`, { reason: refusal.code });
}

function unknownOffering(offeringId: string): HttpProblem {
  return new HttpProblem(422, 'Unknown offering', `There is no offering ${offeringId}.`, {
    invalidParams: [{ name: 'offeringId', reason: 'No such offering' }],
  });
}

function unknownUnitsProblem(unknownUnitIds: string[]): HttpProblem {
  return new HttpProblem(422, 'Unknown units', `Not units of this offering: ${unknownUnitIds.join(', ')}.`, { unknownUnitIds });
}

/** A hold as the API shows it: the hold workflow's view and a link to that workflow. */
function holdJson(hold: HoldRow, link: WorkflowLinker): HoldJson {
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
