import type { Router } from 'express';
import { z } from 'zod';
import { createUnitGate } from '../availability/unit-gate';
import { bookings, holds } from '../db/schema';
import type { BookingView } from '../domain/booking';
import type { HoldView } from '../domain/hold';
import {
  cancelBookingHandler,
  cancelSchema,
  createBookingHandler,
  createBookingSchema,
  holdSchema,
  idParamsSchema,
  listQuerySchema,
  myBookingsHandler,
  placeHoldHandler,
  readBookingHandler,
  releaseHoldHandler,
  rescheduleBookingHandler,
  rescheduleSchema,
  type BookingHandlerContext,
  type BookingRow,
} from './booking-handlers';
import { taskQueuesOf, type AppDeps } from './deps';
import { isoDateTime, json, problems, type ApiOperation } from './contract';
import { paymentJsonSchema } from './payment';
import { paymentRateLimit } from './rate-limit';
import { apiRouter } from './route';
import { workflowLinkFields, workflowLinker, type WorkflowLinker } from './temporal-ui';
import { answerDeadline, type WorkflowRouteOptions } from './workflow-answer';

/**
 * Holds and bookings, under /api/v1/bookings; the handlers are in api/booking-handlers.ts.
 * Each route validates, authorises and talks to the workflow that owns the thing: a hold's and
 * a booking's workflow decide, the tables are their projections. Routes that start a workflow
 * use update-with-start, so the answer (held or 409; confirmed, 402 or 403) comes back in the
 * same request; past `answerWithinMs` a booking is answered 202 and a hold 503.
 */
export function bookingRoutes(deps: AppDeps, options: WorkflowRouteOptions = {}): Router {
  const link = workflowLinker(deps.config);
  const context: BookingHandlerContext = {
    deps,
    taskQueue: taskQueuesOf(deps).bookings,
    withinDeadline: answerDeadline(deps.temporal, options),
    gate: createUnitGate(deps.redis, deps.logger),
    link,
    toJson: (booking) => toBookingJson(booking, link),
  };
  const { router, route } = apiRouter(deps);
  route(bookingApi.hold, placeHoldHandler(context));
  route(bookingApi.releaseHold, releaseHoldHandler(context));
  route(bookingApi.create, paymentRateLimit(deps), createBookingHandler(context));
  route(bookingApi.cancel, cancelBookingHandler(context));
  route(bookingApi.reschedule, rescheduleBookingHandler(context));
  route(bookingApi.mine, myBookingsHandler(context));
  route(bookingApi.read, readBookingHandler(context));
  return router;
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
    confirmationCode: z
      .string()
      .nullable()
      .meta({ description: 'What the customer shows at the door for staff to check in; null for bookings made before codes.' }),
    checkedInAt: isoDateTime.nullable().meta({ description: 'When staff checked the booking in; null until then.' }),
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

export type HoldJson = z.infer<typeof holdJsonSchema>;

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
    confirmationCode: booking.confirmationCode,
    checkedInAt: booking.checkedInAt?.toISOString() ?? null,
  };
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
        [
          409,
          'Units not available (or reserved for the waitlist of the offering), the offering has started or was canceled, or a fair-use limit is reached: `limit` names it ' +
            '(maxUnitsPerCustomer of the offering, or HOLDS_PER_CUSTOMER_MAX), with its `max` and the customer’s `current`',
        ],
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
    // The booking id derives from the hold's, so a repeat reaches the same saga.
    idempotent: 'converges',
    request: { body: createBookingSchema },
    responses: {
      201: json('Confirmed', bookingAnswer),
      202: json('The payment awaits the customer (or the saga is still at work)', bookingAnswer),
      ...problems(
        400,
        [402, 'The payment was declined or not completed'],
        [403, 'The offering requires an active subscription'],
        404,
        [409, 'The hold is not active or has expired, or the booking could not be confirmed'],
        [422, 'A payment method that cannot be used'],
      ),
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
      ...problems(
        400,
        404,
        [409, 'The booking cannot be changed now, or its offering was canceled (its bookings are refunded in full)'],
        [502, 'The refund could not be made; the booking is unchanged'],
      ),
    },
  },
  reschedule: {
    method: 'post',
    path: '/api/v1/bookings/{id}/reschedule',
    summary: 'Move a confirmed booking to other units of its offering, or of another offering of its series, charging or refunding the difference',
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
        [
          409,
          'Units not available, the offering was canceled, the booking cannot be changed now, more units would pass the offering’s maxUnitsPerCustomer, or the booking was rescheduled MAX_RESCHEDULES (10) times already (`limit` names it); ' +
            'or a move to `offeringId` is not allowed (`reason`: not_in_series, other_series, offering_canceled, offering_started, outside_free_window — past the free-cancellation window — or other_currency)',
        ],
        [422, 'Units that are not part of this offering (of `offeringId` in a move), or no offering `offeringId`'],
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
