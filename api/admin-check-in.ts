/**
 * Staff check-in at the door, POST /api/v1/admin/bookings/check-in (role `staff`, which a gate
 * device's account has too): the booking found by the confirmation code the customer shows is
 * checked in through its workflow's checkIn update, which owns the status and refuses a second
 * check-in, a canceled booking and one whose offering has ended. Each check-in is audited.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import type { Router } from 'express';
import { z } from 'zod';
import { bookings } from '../db/schema';
import {
  checkInRefusal,
  CONFIRMATION_CODE_ALPHABET,
  CONFIRMATION_CODE_LENGTH,
  isConfirmationCode,
  normalizeConfirmationCode,
} from '../domain/booking';
import { checkInBookingUpdate } from '../workflows/booking';
import { auditEntryJsonSchema, recordStaffAction } from './audit';
import { currentUser } from './auth';
import { bookingJsonSchema, toBookingJson } from './booking';
import { json, problems, type ApiOperation } from './contract';
import type { AppDeps } from './deps';
import { HttpProblem } from './problem';
import { logWorkflow } from './request-context';
import { apiRouter } from './route';
import { workflowLinker } from './temporal-ui';
import { parseBody } from './validation';
import { answerDeadline } from './workflow-answer';

type BookingRow = typeof bookings.$inferSelect;

const CODE_CHARACTER = `[${CONFIRMATION_CODE_ALPHABET}${CONFIRMATION_CODE_ALPHABET.toLowerCase().replace(/\d/g, '')}]`;
const CODE_AS_TYPED = new RegExp(`^[ -]*(?:${CODE_CHARACTER}[ -]*){${CONFIRMATION_CODE_LENGTH}}$`);

const checkInSchema = z.strictObject({
  confirmationCode: z
    .string()
    .max(32)
    // The documented shape: eight characters of the code's alphabet in either case, spaces and
    // dashes anywhere (so a request the schema allows is one the route can look up).
    .regex(CODE_AS_TYPED, `Must be ${CONFIRMATION_CODE_LENGTH} characters of ${CONFIRMATION_CODE_ALPHABET}`)
    .transform(normalizeConfirmationCode)
    .refine(isConfirmationCode, `Must be ${CONFIRMATION_CODE_LENGTH} characters of ${CONFIRMATION_CODE_ALPHABET}`)
    .meta({ description: "The booking's confirmation code as the customer shows it (any case; spaces and dashes are ignored)." }),
});

const checkInAnswer = z.strictObject({ booking: bookingJsonSchema, audit: auditEntryJsonSchema });

export function adminCheckInRoutes(deps: AppDeps): Router {
  const { db, temporal } = deps;
  const link = workflowLinker(deps.config);
  const withinAnswerTime = answerDeadline(temporal);
  const { router, route } = apiRouter(deps);

  route(adminCheckInApi.checkIn, async (req, res) => {
    const { confirmationCode } = parseBody(checkInSchema, req.body);
    const found = await findByCode(deps, confirmationCode);
    logWorkflow(req, res, found.workflowId);
    // The row may lag the workflow; it only saves a round trip when it already says no.
    const refusal = found.status === 'confirmed' || found.status === 'pending' ? null : checkInRefusal(found.status, isoOrNull(found.checkedInAt));
    if (refusal) throw checkInRefused(refusal);
    try {
      await withinAnswerTime(() => temporal.workflow.getHandle(found.workflowId).executeUpdate(checkInBookingUpdate));
    } catch (error) {
      throw refusedBy(error);
    }
    const audit = await recordStaffAction(db, {
      actorId: currentUser(req).id,
      action: 'booking.check_in',
      target: { type: 'booking', id: found.id },
      reason: 'Checked in with the confirmation code',
      details: { workflowId: found.workflowId, confirmationCode },
    });
    res.json({ booking: toBookingJson(await findByCode(deps, confirmationCode), link), audit });
  });

  return router;
}

async function findByCode({ db }: AppDeps, confirmationCode: string): Promise<BookingRow> {
  const [row] = await db.select().from(bookings).where(eq(bookings.confirmationCode, confirmationCode)).limit(1);
  if (!row) throw new HttpProblem(404, 'Booking not found', `There is no booking with confirmation code ${confirmationCode}.`);
  return row;
}

function isoOrNull(at: Date | null): string | null {
  return at ? at.toISOString() : null;
}

function checkInRefused(why: string): HttpProblem {
  return new HttpProblem(409, 'Booking cannot be checked in', `${why[0].toUpperCase()}${why.slice(1)}.`);
}

/** Why the booking's workflow did not check it in, as a problem. */
function refusedBy(error: unknown): unknown {
  if (error instanceof WorkflowNotFoundError) return checkInRefused('the offering has ended');
  if (error instanceof WorkflowUpdateRPCTimeoutOrCancelledError) {
    return new HttpProblem(503, 'Service Unavailable', 'The check-in was not answered in time; retry shortly.');
  }
  if (!(error instanceof WorkflowUpdateFailedError)) return error;
  const cause = error.cause;
  if (cause instanceof ApplicationFailure && (cause.type === 'BookingCheckInRefused' || cause.type === 'BookingBusy')) {
    return checkInRefused(cause.message);
  }
  return error;
}

export const adminCheckInApi = {
  checkIn: {
    method: 'post',
    path: '/api/v1/admin/bookings/check-in',
    summary: "Staff: check a confirmed booking in by its confirmation code (the workflow's checkIn update)",
    auth: 'staff',
    idempotent: true,
    request: { body: checkInSchema },
    responses: {
      200: json('Checked in', checkInAnswer),
      ...problems(
        400,
        [404, 'No booking has this confirmation code'],
        [409, 'The booking was already checked in, was canceled, is not confirmed, or its offering has ended'],
        [503, 'The check-in was not answered in time; retry'],
      ),
    },
  },
} satisfies Record<string, ApiOperation>;
