/**
 * The waitlist of a sold-out offering (customers): join it, see one's place, leave it. The
 * offering's waitlist workflow (workflows/waitlist) makes the offers; these routes only write the
 * caller's entry and wake that workflow with signal-with-start.
 */
import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import type { Router } from 'express';
import { z } from 'zod';
import { isUniqueViolation, type Database } from '../db/client';
import { offerings, units, waitlistEntries } from '../db/schema';
import { freeUnitsOf, hasWaitingEntries, lockWaitlistExclusive, positionInLine } from '../db/waitlist';
import { holdWorkflowId } from '../domain/hold';
import { offeringClosedReason } from '../domain/offering';
import { LIVE_WAITLIST_STATUSES, MAX_WAITLIST_QUANTITY, WAITLIST_ENTRY_STATUSES, waitlistWorkflowId } from '../domain/waitlist';
import { releaseHoldUpdate } from '../workflows/hold';
import { entryChangedSignal, waitlistWorkflow } from '../workflows/waitlist';
import { currentUser } from './auth';
import { isoDateTime, json, problems, type ApiOperation } from './contract';
import { taskQueuesOf, type AppDeps } from './deps';
import { HttpProblem } from './problem';
import { apiRouter } from './route';
import { nonBlankText, parseBody, parseParams } from './validation';

type EntryRow = typeof waitlistEntries.$inferSelect;

const offeringParams = z.strictObject({ id: z.uuid() });
const entryParams = z.strictObject({ id: z.uuid(), entryId: z.uuid() });

const joinSchema = z.strictObject({
  quantity: z.int().min(1).max(MAX_WAITLIST_QUANTITY).meta({ description: "Units wanted; at most the offering's maxUnitsPerCustomer too." }),
  unitType: nonBlankText(100).optional().meta({ description: 'Only units of this type; any unit when absent.' }),
});

export const waitlistEntryJsonSchema = z
  .strictObject({
    id: z.uuid(),
    offeringId: z.uuid(),
    position: z.int().min(1).nullable().meta({ description: 'Place in line (1 is next) while waiting or offered; null after.' }),
    status: z.enum(WAITLIST_ENTRY_STATUSES),
    quantity: z.int().min(1),
    unitType: z.string().nullable(),
    holdId: z.uuid().nullable().meta({ description: 'The hold of the offer, once offered: book with it before offerExpiresAt.' }),
    offerExpiresAt: isoDateTime.nullable(),
    createdAt: isoDateTime,
  })
  .meta({ id: 'WaitlistEntry' });

const entryAnswer = z.strictObject({ entry: waitlistEntryJsonSchema });

export function waitlistRoutes(deps: AppDeps): Router {
  const { db } = deps;
  const { router, route } = apiRouter(deps);

  route(waitlistApi.join, async (req, res) => {
    const { id } = parseParams(offeringParams, req.params);
    const input = parseBody(joinSchema, req.body);
    const user = currentUser(req);
    const [offering] = await db.select().from(offerings).where(eq(offerings.id, id));
    if (!offering) throw new HttpProblem(404, 'Offering not found', `There is no offering ${id}.`);
    const closed = offeringClosedReason(offering, new Date());
    if (closed) throw new HttpProblem(409, 'Offering closed', `No waitlist: ${closed}.`);
    if (input.quantity > offering.maxUnitsPerCustomer) {
      throw new HttpProblem(409, 'Fair-use limit reached', `quantity: at most ${offering.maxUnitsPerCustomer} units of this offering per customer.`, {
        limit: 'maxUnitsPerCustomer',
        max: offering.maxUnitsPerCustomer,
      });
    }
    if (input.unitType && !(await hasUnitType(db, id, input.unitType))) {
      throw new HttpProblem(422, 'Unknown unit type', `unitType: offering ${id} has no units of type "${input.unitType}".`);
    }
    const entry = await joinLine(db, { offeringId: id, userId: user.id, quantity: input.quantity, unitType: input.unitType ?? null });
    await wakeWaitlist(deps, id);
    res.status(201).json({ entry: await entryJson(db, entry) });
  });

  route(waitlistApi.read, async (req, res) => {
    const { id } = parseParams(offeringParams, req.params);
    const [entry] = await db
      .select()
      .from(waitlistEntries)
      .where(and(eq(waitlistEntries.offeringId, id), eq(waitlistEntries.userId, currentUser(req).id)))
      .orderBy(desc(waitlistEntries.position))
      .limit(1);
    if (!entry) throw new HttpProblem(404, 'Not on the waitlist', `You have no entry on the waitlist of offering ${id}.`);
    res.json({ entry: await entryJson(db, entry) });
  });

  route(waitlistApi.leave, async (req, res) => {
    const { id, entryId } = parseParams(entryParams, req.params);
    const own = and(eq(waitlistEntries.id, entryId), eq(waitlistEntries.offeringId, id), eq(waitlistEntries.userId, currentUser(req).id));
    const [entry] = await db.select().from(waitlistEntries).where(own);
    if (!entry) throw new HttpProblem(404, 'Waitlist entry not found', `You have no entry ${entryId} on the waitlist of offering ${id}.`);
    const [left] = await db
      .update(waitlistEntries)
      .set({ status: 'left', updatedAt: sql`now()` })
      .where(and(own, inArray(waitlistEntries.status, [...LIVE_WAITLIST_STATUSES])))
      .returning();
    if (!left) throw new HttpProblem(409, 'Not on the waitlist any more', `The entry is ${entry.status}.`, { status: entry.status });
    // An offer left is given back at once; its release passes the units on (activities/hold.ts).
    if (entry.status === 'offered' && left.holdId) await releaseOffer(deps, left.holdId);
    await wakeWaitlist(deps, id);
    res.json({ entry: await entryJson(db, left) });
  });

  return router;
}

/**
 * The entry, written under the offering's exclusive waitlist lock (db/waitlist.ts): no claim
 * commits between the look at free units and the entry, so nobody joins a line while units
 * they could hold are free, and no unit freed meanwhile goes past the new entry.
 */
async function joinLine(db: Database, input: { offeringId: string; userId: string; quantity: number; unitType: string | null }): Promise<EntryRow> {
  try {
    return await db.transaction(async (tx) => {
      await lockWaitlistExclusive(tx, input.offeringId);
      const [existing] = await tx
        .select()
        .from(waitlistEntries)
        .where(
          and(
            eq(waitlistEntries.offeringId, input.offeringId),
            eq(waitlistEntries.userId, input.userId),
            inArray(waitlistEntries.status, [...LIVE_WAITLIST_STATUSES]),
          ),
        );
      if (existing) throw alreadyInLine(existing);
      // Free units nobody waits for are the caller's to hold; ones the line reserves are not.
      const free = await freeUnitsOf(tx, input.offeringId, input.unitType);
      if (free.length >= input.quantity && !(await hasWaitingEntries(tx, input.offeringId))) {
        throw new HttpProblem(409, 'Units are available', `${free.length} unit(s) can be held now: hold them instead of waiting.`, {
          availableUnitIds: free.map((unit) => unit.id),
        });
      }
      const [entry] = await tx.insert(waitlistEntries).values(input).returning();
      return entry;
    });
  } catch (err) {
    if (isUniqueViolation(err, 'waitlist_entries_one_live_per_customer'))
      throw new HttpProblem(409, 'Already on the waitlist', 'You already have a live entry on this waitlist.');
    throw err;
  }
}

function alreadyInLine(entry: EntryRow): HttpProblem {
  return new HttpProblem(409, 'Already on the waitlist', `You are on this waitlist already (entry ${entry.id}, ${entry.status}).`, {
    entryId: entry.id,
  });
}

/** Wakes (or starts) the offering's waitlist workflow. Best-effort: freed units wake it too. */
async function wakeWaitlist(deps: AppDeps, offeringId: string): Promise<void> {
  try {
    await deps.temporal.workflow.signalWithStart(waitlistWorkflow, {
      workflowId: waitlistWorkflowId(offeringId),
      taskQueue: taskQueuesOf(deps).bookings,
      args: [{ offeringId }],
      signal: entryChangedSignal,
      signalArgs: [],
    });
  } catch (err) {
    deps.logger.warn({ offeringId, err }, 'waitlist workflow not woken; freed units will wake it');
  }
}

/** Gives an offer's hold back through its workflow; one that already ended needs nothing. */
async function releaseOffer(deps: AppDeps, holdId: string): Promise<void> {
  try {
    await deps.temporal.workflow.getHandle(holdWorkflowId(holdId)).executeUpdate(releaseHoldUpdate);
  } catch (err) {
    deps.logger.warn({ holdId, err }, 'offer not released early; it expires at its TTL');
  }
}

async function hasUnitType(db: Database, offeringId: string, type: string): Promise<boolean> {
  const [unit] = await db
    .select({ id: units.id })
    .from(units)
    .where(and(eq(units.offeringId, offeringId), eq(units.type, type)))
    .limit(1);
  return unit !== undefined;
}

async function entryJson(db: Database, entry: EntryRow): Promise<z.infer<typeof waitlistEntryJsonSchema>> {
  const live = (LIVE_WAITLIST_STATUSES as readonly string[]).includes(entry.status);
  return {
    id: entry.id,
    offeringId: entry.offeringId,
    position: live ? await positionInLine(db, entry.offeringId, entry.position) : null,
    status: entry.status,
    quantity: entry.quantity,
    unitType: entry.unitType,
    holdId: entry.holdId,
    offerExpiresAt: entry.offerExpiresAt?.toISOString() ?? null,
    createdAt: entry.createdAt.toISOString(),
  };
}

export const waitlistApi = {
  join: {
    method: 'post',
    path: '/api/v1/offerings/{id}/waitlist',
    summary: 'Join the waitlist of an offering that has no units to hold',
    description:
      'When units free up, the first entries that fit are offered them, in line order: a hold for the waiting customer ' +
      '(its `holdId` on the entry, `status: offered`) lasting the offering’s `waitlistOfferTtl`, booked like any hold. ' +
      'An offer not booked in time passes to the next entry. While anyone waits, freed units are kept for the line.',
    auth: 'user',
    request: { params: offeringParams, body: joinSchema },
    responses: {
      201: json('The entry, with its place in line', entryAnswer),
      ...problems(
        400,
        [404, 'No such offering'],
        [
          409,
          'Units are available to hold now, the caller is already on this waitlist, the offering is canceled or has started, or quantity is above maxUnitsPerCustomer',
        ],
        [422, 'The offering has no units of unitType'],
      ),
    },
  },
  read: {
    method: 'get',
    path: '/api/v1/offerings/{id}/waitlist',
    summary: "The caller's latest entry on the offering's waitlist: its place in line, status and offer",
    auth: 'user',
    request: { params: offeringParams },
    responses: { 200: json('The entry', entryAnswer), ...problems(400, [404, 'The caller has no entry on this waitlist']) },
  },
  leave: {
    method: 'delete',
    path: '/api/v1/offerings/{id}/waitlist/{entryId}',
    summary: 'Leave the waitlist; an offer not yet booked is given back and passes to the next entry',
    auth: 'user',
    request: { params: entryParams },
    responses: {
      200: json('The entry, now left', entryAnswer),
      ...problems(400, [404, 'No such entry of the caller on this offering'], [409, 'The entry is no longer waiting or offered']),
    },
  },
} satisfies Record<string, ApiOperation>;
