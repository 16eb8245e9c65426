import { and, asc, eq, gt, inArray, isNull, sql } from 'drizzle-orm';
import type { Router } from 'express';
import { z } from 'zod';
import { createSnapshotCache } from '../availability/snapshot-cache';
import type { Database } from '../db/client';
import { offerings, unitClaims, units } from '../db/schema';
import { cancellationPolicyProblem, OFFERING_KINDS } from '../domain/booking';
import { DEFAULT_HOLD_TTL, DEFAULT_MAX_UNITS_PER_CUSTOMER, holdTtlProblem, unitStatusOf, type UnitStatus } from '../domain/hold';
import { DEFAULT_WAITLIST_OFFER_TTL, MAX_REMINDERS, OFFERING_STATUSES, remindersProblem, waitlistOfferTtlProblem } from '../domain/offering';
import { isIsoDuration } from '../domain/period';
import type { AppDeps } from './deps';
import { isoDateTime, json, problems, type ApiOperation } from './contract';
import { availabilityStreams, eventsQuerySchema } from './offering-events';
import { HttpProblem } from './problem';
import { apiRouter } from './route';
import { currencyCode, nonBlankText, parseBody, parseParams, parseQuery, queryInteger } from './validation';

export const unitJsonSchema = z
  .strictObject({
    id: z.uuid(),
    label: z.string(),
    type: z.string().nullable(),
    amount: z.int().min(0),
    currency: z.string(),
    status: z.enum(['available', 'held', 'booked'] satisfies UnitStatus[]),
  })
  .meta({ id: 'Unit' });

export type UnitJson = z.infer<typeof unitJsonSchema>;

export const offeringJsonSchema = z
  .strictObject({
    id: z.uuid(),
    name: z.string(),
    kind: z.enum(OFFERING_KINDS),
    startsAt: isoDateTime,
    endsAt: isoDateTime,
    requiresSubscription: z.boolean(),
    holdTtl: z.string(),
    cancellation: z.strictObject({ freeUntil: z.string().nullable(), lateRefundPercent: z.int().min(0).max(100) }),
    maxUnitsPerCustomer: z.int().min(1).meta({ description: 'Units of this offering one customer may hold and book at once.' }),
    seriesId: z
      .uuid()
      .nullable()
      .meta({ description: 'Other dates or times of the same event or service share it; a booking may move to any of them.' }),
    reminders: z.array(z.string()).meta({ description: 'ISO-8601 offsets before startsAt at which each confirmed booking is reminded.' }),
    waitlistOfferTtl: z.string().meta({ description: 'How long a waitlist offer holds the units it offers (ISO-8601).' }),
    status: z.enum(OFFERING_STATUSES).meta({ description: '`canceled` by the business: every booking refunded, no longer bookable.' }),
    canceledAt: isoDateTime.nullable(),
    cancelReason: z.string().nullable(),
    units: z.array(unitJsonSchema),
    createdAt: isoDateTime,
  })
  .meta({ id: 'Offering' });

export type OfferingJson = z.infer<typeof offeringJsonSchema>;

type OfferingRow = typeof offerings.$inferSelect;

const MAX_UNITS_PER_OFFERING = 2000;
// Offerings inline their units, so a page of GET /offerings is bounded by units too: offerings
// are added while their units fit, and a page always has at least one (which fits: see above).
const MAX_UNITS_PER_PAGE = 2000;

const instant = z.iso.datetime({ offset: true, message: 'Must be an ISO-8601 date-time such as 2030-06-15T18:00:00Z' }).transform((s) => new Date(s));

const unitSchema = z.strictObject({
  label: nonBlankText(100),
  amount: z.number().int('Must be a whole number of minor units').min(0).max(Number.MAX_SAFE_INTEGER),
  currency: currencyCode,
  type: nonBlankText(50).optional(),
});

const createOfferingSchema = z
  .strictObject({
    name: nonBlankText(200),
    kind: z.enum(OFFERING_KINDS),
    startsAt: instant,
    endsAt: instant,
    requiresSubscription: z.boolean().default(false),
    holdTtl: z
      .string()
      .default(DEFAULT_HOLD_TTL)
      .superRefine((ttl, ctx) => {
        const problem = holdTtlProblem(ttl);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    cancellation: z
      .strictObject({
        freeUntil: z.string().refine(isIsoDuration, 'Must be an ISO-8601 duration such as P1D or PT12H'),
        lateRefundPercent: z.number().int().min(0).max(100),
      })
      .optional(),
    maxUnitsPerCustomer: z
      .number()
      .int()
      .min(1)
      .max(MAX_UNITS_PER_OFFERING)
      .default(DEFAULT_MAX_UNITS_PER_CUSTOMER)
      .meta({ description: 'Units of this offering one customer may hold and book at once (fair use); more asked for is a 409.' }),
    seriesId: z
      .uuid()
      .optional()
      .meta({ description: "Groups other dates or times of the same event or service (any UUID staff choose, often the first offering's id)." }),
    reminders: z
      .array(z.string())
      .default([])
      .superRefine((reminders, ctx) => {
        const problem = remindersProblem(reminders);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .meta({
        description: `ISO-8601 offsets before startsAt (e.g. ["P1D","PT2H"]), at most ${MAX_REMINDERS}: each confirmed booking is reminded once at each.`,
      }),
    waitlistOfferTtl: z
      .string()
      .default(DEFAULT_WAITLIST_OFFER_TTL)
      .superRefine((ttl, ctx) => {
        const problem = waitlistOfferTtlProblem(ttl);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .meta({ description: 'How long a waitlist offer holds the units it offers before passing to the next entry.' }),
    units: z.array(unitSchema).min(1).max(MAX_UNITS_PER_OFFERING),
  })
  .superRefine(
    (offering, ctx) => {
      if (offering.endsAt.getTime() <= offering.startsAt.getTime()) {
        ctx.addIssue({ code: 'custom', path: ['endsAt'], message: 'Must be after startsAt' });
      }
      const labels = new Set<string>();
      const currency = offering.units[0]?.currency;
      offering.units.forEach((unit, i) => {
        if (labels.has(unit.label)) ctx.addIssue({ code: 'custom', path: ['units', i, 'label'], message: `Duplicate label "${unit.label}"` });
        labels.add(unit.label);
        if (unit.currency !== currency) {
          ctx.addIssue({ code: 'custom', path: ['units', i, 'currency'], message: `All units of an offering share one currency (${currency})` });
        }
      });
      if (offering.cancellation) {
        const problem = cancellationPolicyProblem(offering.cancellation);
        if (problem) ctx.addIssue({ code: 'custom', path: ['cancellation'], message: problem });
      }
      // Rules across fields judge fields that passed: zod runs them after field issues too, and
      // `endsAt: ""` is no Date.
    },
    { when: (payload) => payload.issues.length === 0 },
  );

const listQuerySchema = z.strictObject({
  kind: z.enum(OFFERING_KINDS).optional(),
  limit: queryInteger(1, 100).default(20),
  // Bounded so that the document states what zod accepts (a safe integer), with room to spare.
  offset: queryInteger(0, 1_000_000).default(0),
});

const idParamsSchema = z.strictObject({ id: z.uuid() });

/** POST /api/v1/admin/offerings (staff): an offering and its units, in one transaction. */
export function adminOfferingRoutes(deps: AppDeps): Router {
  const { db } = deps;
  const { router, route } = apiRouter(deps);

  route(offeringApi.create, async (req, res) => {
    const input = parseBody(createOfferingSchema, req.body);
    const created = await db.transaction(async (tx) => {
      const [offering] = await tx
        .insert(offerings)
        .values({
          name: input.name,
          kind: input.kind,
          startsAt: input.startsAt,
          endsAt: input.endsAt,
          requiresSubscription: input.requiresSubscription,
          holdTtl: input.holdTtl,
          freeCancellationUntil: input.cancellation?.freeUntil ?? null,
          lateRefundPercent: input.cancellation?.lateRefundPercent ?? 0,
          maxUnitsPerCustomer: input.maxUnitsPerCustomer,
          seriesId: input.seriesId ?? null,
          reminders: input.reminders,
          waitlistOfferTtl: input.waitlistOfferTtl,
        })
        .returning();
      const unitRows = await tx
        .insert(units)
        .values(input.units.map((unit) => ({ ...unit, type: unit.type ?? null, offeringId: offering.id })))
        .returning();
      return { offering, unitRows };
    });
    req.log.info({ offeringId: created.offering.id, units: created.unitRows.length }, 'offering created');
    const unitJson = created.unitRows.map((u) => toUnitJson(u, 'available'));
    res.status(201).json({ offering: toOfferingJson(created.offering, unitJson) });
  });

  return router;
}

/**
 * Public catalogue: GET / (upcoming offerings), GET /:id, GET /:id/availability and
 * GET /:id/events (Server-Sent Events). Availability (and the events' opening snapshot) comes
 * from a per-process snapshot of each offering, rendered once and checked on every read against
 * the offering's position in its unit-event log, so it is never staler than a PostgreSQL read
 * (availability/snapshot-cache.ts says precisely); reading PostgreSQL every time cost the API
 * ~1 ms of CPU per read, and capped it near 1,000 reads/s (bench/README.md).
 */
export function offeringRoutes(deps: AppDeps): Router {
  const { db } = deps;
  const { router, route } = apiRouter();
  const { findOffering, unitsOf } = prepareOfferingQueries(db);
  const snapshots = createSnapshotCache({
    redis: deps.redis,
    logger: deps.logger,
    read: async (offeringId) => availabilityOf(offeringId, await unitsOf((await findOffering(offeringId)).id)),
  });
  const streamAvailability = availabilityStreams(deps, {
    findOffering,
    snapshotJson: async (offeringId) => (await snapshots.get(offeringId)).body.toString(),
  });

  route(offeringApi.list, async (req, res) => {
    const query = parseQuery(listQuerySchema, req.query);
    // One more than asked, to tell whether another page follows.
    const rows = await db
      .select({ offering: offerings, unitCount: unitCountOfOffering })
      .from(offerings)
      .where(and(gt(offerings.endsAt, sql`now()`), eq(offerings.status, 'scheduled'), query.kind ? eq(offerings.kind, query.kind) : undefined))
      .orderBy(asc(offerings.startsAt), asc(offerings.id))
      .limit(query.limit + 1)
      .offset(query.offset);
    const page = pageWithinUnits(rows, query.limit).map((row) => row.offering);
    const unitsByOffering = await readUnits(
      db,
      page.map((o) => o.id),
    );
    res.json({
      offerings: page.map((o) => toOfferingJson(o, unitsByOffering.get(o.id) ?? [])),
      nextOffset: rows.length > page.length ? query.offset + page.length : null,
    });
  });

  route(offeringApi.read, async (req, res) => {
    const offering = await findOffering(parseParams(idParamsSchema, req.params).id);
    res.json({ offering: toOfferingJson(offering, await unitsOf(offering.id)) });
  });

  route(offeringApi.availability, async (req, res) => {
    const snapshot = await snapshots.get(parseParams(idParamsSchema, req.params).id);
    // The ETag is the snapshot's own, so Express neither hashes the body again nor misses a 304.
    res.type('json').set('ETag', snapshot.etag).send(snapshot.body);
  });

  route(offeringApi.events, async (req, res) => {
    const { id } = parseParams(idParamsSchema, req.params);
    await streamAvailability(req, res, id, parseQuery(eventsQuerySchema, req.query).lastEventId);
  });

  return router;
}

// The outer row's id is named with its table: drizzle leaves columns unqualified in a one-table
// select, and a bare "id" inside the subquery would be the unit's.
const unitCountOfOffering = sql<number>`(select count(*) from ${units} where ${units.offeringId} = ${offerings}.${sql.identifier(offerings.id.name)})::int`;

/** The first rows, up to `limit`, whose units add up to MAX_UNITS_PER_PAGE at most; never none. */
function pageWithinUnits<T extends { unitCount: number }>(rows: T[], limit: number): T[] {
  const page: T[] = [];
  let unitTotal = 0;
  for (const row of rows) {
    if (page.length === limit || (page.length > 0 && unitTotal + row.unitCount > MAX_UNITS_PER_PAGE)) break;
    page.push(row);
    unitTotal += row.unitCount;
  }
  return page;
}

/**
 * The one-offering queries, built once: drizzle building their SQL on every request was ~15% of
 * the API's CPU while it served availability reads (bench/README.md).
 */
function prepareOfferingQueries(db: Database) {
  const offeringById = db
    .select()
    .from(offerings)
    .where(eq(offerings.id, sql.placeholder('id')))
    .prepare('offering_by_id');
  const unitsOfOffering = selectUnitsWithClaims(db)
    .where(eq(units.offeringId, sql.placeholder('offeringId')))
    .orderBy(asc(units.label))
    .prepare('units_of_offering');
  return {
    findOffering: async (id: string): Promise<OfferingRow> => {
      const [offering] = await offeringById.execute({ id });
      if (!offering) throw new HttpProblem(404, 'Offering not found', `There is no offering ${id}.`);
      return offering;
    },
    unitsOf: async (offeringId: string): Promise<UnitJson[]> => {
      return (await unitsOfOffering.execute({ offeringId })).map(unitJsonOf);
    },
  };
}

/** Units with their live claim, which comes from the partial unique index. */
function selectUnitsWithClaims(db: Database) {
  return db
    .select({ unit: units, claimId: unitClaims.id, bookingId: unitClaims.bookingId })
    .from(units)
    .leftJoin(unitClaims, and(eq(unitClaims.unitId, units.id), isNull(unitClaims.releasedAt)))
    .$dynamic();
}

type UnitWithClaim = Awaited<ReturnType<ReturnType<typeof selectUnitsWithClaims>['execute']>>[number];

function unitJsonOf(row: UnitWithClaim): UnitJson {
  return toUnitJson(row.unit, unitStatusOf(row.claimId === null ? null : row));
}

/** Units of several offerings with their status, by offering. */
export async function readUnits(db: Database, offeringIds: string[]): Promise<Map<string, UnitJson[]>> {
  const byOffering = new Map<string, UnitJson[]>();
  if (offeringIds.length === 0) return byOffering;
  const rows = await selectUnitsWithClaims(db).where(inArray(units.offeringId, offeringIds)).orderBy(asc(units.label));
  for (const row of rows) {
    const list = byOffering.get(row.unit.offeringId) ?? [];
    list.push(unitJsonOf(row));
    byOffering.set(row.unit.offeringId, list);
  }
  return byOffering;
}

function availabilityOf(offeringId: string, unitJson: UnitJson[]) {
  const counts: Record<UnitStatus, number> = { available: 0, held: 0, booked: 0 };
  for (const unit of unitJson) counts[unit.status] += 1;
  return { offeringId, units: unitJson, counts, at: new Date().toISOString() };
}

function toUnitJson(unit: typeof units.$inferSelect, status: UnitStatus): UnitJson {
  return { id: unit.id, label: unit.label, type: unit.type, amount: unit.amount, currency: unit.currency, status };
}

export function toOfferingJson(offering: OfferingRow, unitJson: UnitJson[]): OfferingJson {
  return {
    id: offering.id,
    name: offering.name,
    kind: offering.kind,
    startsAt: offering.startsAt.toISOString(),
    endsAt: offering.endsAt.toISOString(),
    requiresSubscription: offering.requiresSubscription,
    holdTtl: offering.holdTtl,
    cancellation: { freeUntil: offering.freeCancellationUntil, lateRefundPercent: offering.lateRefundPercent },
    maxUnitsPerCustomer: offering.maxUnitsPerCustomer,
    seriesId: offering.seriesId,
    reminders: offering.reminders,
    waitlistOfferTtl: offering.waitlistOfferTtl,
    status: offering.status,
    canceledAt: offering.canceledAt?.toISOString() ?? null,
    cancelReason: offering.cancelReason,
    units: unitJson,
    createdAt: offering.createdAt.toISOString(),
  };
}

const availabilityJsonSchema = z
  .strictObject({
    offeringId: z.uuid(),
    units: z.array(unitJsonSchema),
    counts: z.strictObject({ available: z.int().min(0), held: z.int().min(0), booked: z.int().min(0) }),
    at: isoDateTime.meta({
      description:
        'When these statuses were read from PostgreSQL. The answer may be a snapshot read up to a second earlier and kept ' +
        'because no unit of the offering has changed since (every change is published as a unit event, which retires it).',
    }),
  })
  .meta({ id: 'Availability' });
const offeringAnswer = z.strictObject({ offering: offeringJsonSchema });
const etagHeader = {
  description: 'Changes when any status does; send it back as `If-None-Match`',
  required: true,
  schema: { type: 'string' as const },
};

export const offeringApi = {
  create: {
    method: 'post',
    path: '/api/v1/admin/offerings',
    summary: 'Create an offering and its units (staff)',
    auth: 'staff',
    request: { body: createOfferingSchema },
    responses: { 201: json('The offering', offeringAnswer), ...problems(400) },
  },
  list: {
    method: 'get',
    path: '/api/v1/offerings',
    summary: 'Offerings that have not ended and are not canceled, soonest first',
    description:
      'A page holds up to `limit` offerings and at most 2,000 units in all (offerings are added while their units fit; ' +
      'always at least one). `nextOffset` is the `offset` of the next page, null after the last.',
    auth: 'public',
    request: { query: listQuerySchema },
    responses: {
      200: json('Offerings', z.strictObject({ offerings: z.array(offeringJsonSchema), nextOffset: z.int().min(0).nullable() })),
      ...problems(400),
    },
  },
  read: {
    method: 'get',
    path: '/api/v1/offerings/{id}',
    summary: 'An offering with its units and their status',
    auth: 'public',
    request: { params: idParamsSchema },
    responses: { 200: json('The offering', offeringAnswer), ...problems(400, 404) },
  },
  availability: {
    method: 'get',
    path: '/api/v1/offerings/{id}/availability',
    summary: "Each unit's status (never stale: a cached snapshot is checked against the offering's unit events on every read)",
    auth: 'public',
    request: { params: idParamsSchema },
    responses: {
      200: { ...json('Availability', availabilityJsonSchema), headers: { ETag: etagHeader } },
      304: { description: 'Not Modified: the `If-None-Match` ETag is still current' },
      ...problems(400, 404),
    },
  },
  events: {
    method: 'get',
    path: '/api/v1/offerings/{id}/events',
    summary: 'Live availability as Server-Sent Events: a `snapshot`, then `units` events as statuses change',
    description:
      'Every event has an `id`. Reconnecting with `Last-Event-ID` (or `lastEventId`) resumes after it: the `units` events missed, ' +
      'or a fresh `snapshot` when they are no longer kept. The server ends a stream after SSE_STREAM_MAX_AGE (after a `retry:` hint) ' +
      'and drops a client that stops reading; either way the client reconnects and misses nothing.',
    auth: 'public',
    request: { params: idParamsSchema, query: eventsQuerySchema },
    responses: {
      200: { description: 'An event stream that stays open', contentType: 'text/event-stream', schema: z.string() },
      ...problems(
        400,
        404,
        [429, 'Rate limited, or SSE_STREAMS_PER_IP streams are already open from this address; see Retry-After'],
        [503, 'Live events are unavailable (Redis unreachable) or this server has SSE_STREAMS_MAX streams open; see Retry-After'],
      ),
    },
  },
} satisfies Record<string, ApiOperation>;
