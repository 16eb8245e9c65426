/**
 * Coupons: staff create, list and deactivate them (audited); customers validate a code before
 * paying. Validation reads the coupon from the coupon cache (activities/coupon-cache.ts: this
 * process's copy, kept fresh by Redis, which every change invalidates) and the plan's price from a
 * copy of its own (plans never change); only what depends on the customer (a live redemption of
 * theirs, a subscription before for a first-time-only coupon) is read from PostgreSQL, in one
 * prepared statement, and only for a code that is otherwise valid.
 */
import { eq, inArray, sql } from 'drizzle-orm';
import type { Router } from 'express';
import { z } from 'zod';
import { createCouponCache, type CouponCache } from '../activities/coupon-cache';
import type { Database } from '../db/client';
import {
  couponById,
  couponStateOf,
  deactivateCoupon,
  insertCoupon,
  listCoupons,
  prepareCustomerFacts,
  type CouponRow,
  type CustomerCouponFacts,
} from '../db/coupons';
import { auditLog, plans } from '../db/schema';
import {
  COUPON_CODE,
  COUPON_DURATIONS,
  COUPON_REFUSALS,
  couponRefusal,
  couponTermsProblems,
  discountFor,
  MAX_DURATION_IN_CYCLES,
  MAX_REDEMPTIONS,
  type CouponState,
  type CouponTerms,
} from '../domain/coupon';
import type { PolicyProblem } from '../domain/dunning';
import { LruMap } from '../platform/lru-map';
import type { AppDeps } from './deps';
import { currentUser } from './auth';
import { isoDateTime, json, problems, type ApiOperation } from './contract';
import { HttpProblem } from './problem';
import { apiRouter, type RouteHandler } from './route';
import {
  chargeableAmount,
  currencyCode,
  cursorOf,
  pageCursor,
  parseBody,
  parseParams,
  parseQuery,
  queryInteger,
  unknownCursor,
  WITHOUT_NUL,
} from './validation';

export const couponCode = z.string().trim().regex(COUPON_CODE, 'Must be 1 to 64 letters, digits, "-" or "_"');

/** A coupon as staff see it. */
export const couponJsonSchema = z
  .strictObject({
    id: z.uuid(),
    code: z.string(),
    percentOff: z.int().min(1).max(100).nullable(),
    amountOff: z.int().min(1).nullable().meta({ description: 'Minor units of `currency`.' }),
    currency: z.string().nullable(),
    duration: z.enum(COUPON_DURATIONS),
    durationInCycles: z.int().min(1).nullable(),
    maxRedemptions: z.int().min(1).nullable(),
    redeemBy: isoDateTime.nullable(),
    appliesToPlans: z.array(z.uuid()).nullable(),
    firstTimeOnly: z.boolean(),
    active: z.boolean(),
    redemptionCount: z.int().min(0),
    createdAt: isoDateTime,
  })
  .meta({ id: 'Coupon' });

/** What a customer learns of a valid code: its terms, not its counts. */
export const customerCouponJsonSchema = z
  .strictObject({
    code: z.string(),
    percentOff: z.int().min(1).max(100).nullable(),
    amountOff: z.int().min(1).nullable(),
    currency: z.string().nullable(),
    duration: z.enum(COUPON_DURATIONS),
    durationInCycles: z.int().min(1).nullable(),
  })
  .meta({ id: 'CouponTerms' });

export function toCouponJson(row: CouponRow): z.infer<typeof couponJsonSchema> {
  return { ...couponStateOf(row), createdAt: row.createdAt.toISOString() };
}

function toCustomerCouponJson(coupon: CouponState): z.infer<typeof customerCouponJsonSchema> {
  const { code, percentOff, amountOff, currency, duration, durationInCycles } = coupon;
  return { code, percentOff, amountOff, currency, duration, durationInCycles };
}

// Shapes only: couponTermsProblems (domain) judges the rules across fields.
export const createCouponSchema = z.strictObject({
  code: couponCode.meta({ description: 'What customers type, in any case; unique case-insensitively.' }),
  percentOff: z.int().min(1).max(100).optional(),
  amountOff: chargeableAmount.optional().meta({ description: 'Minor units; with `currency`, instead of `percentOff`.' }),
  currency: currencyCode.optional(),
  duration: z.enum(COUPON_DURATIONS),
  durationInCycles: z.int().min(1).max(MAX_DURATION_IN_CYCLES).optional().meta({ description: 'With duration "repeating" only.' }),
  maxRedemptions: z.int().min(1).max(MAX_REDEMPTIONS).optional(),
  redeemBy: isoDateTime.optional(),
  appliesToPlans: z.array(z.uuid()).min(1).max(100).optional().meta({ description: 'Plan ids; every plan when absent.' }),
  firstTimeOnly: z.boolean().default(false),
});

const listCouponsQuery = z.strictObject({
  active: z.enum(['true', 'false']).optional().meta({ description: 'Only active (true) or deactivated (false) coupons.' }),
  limit: queryInteger(1, 200).default(50),
  cursor: pageCursor.optional(),
});

const couponIdParams = z.strictObject({ id: z.uuid() });

const validateQuery = z.strictObject({
  code: z.string().min(1).max(64).regex(WITHOUT_NUL, 'must not contain a NUL character'),
  planId: z.uuid().optional().meta({ description: 'The plan it is for: judges appliesToPlans and currency, and prices the discount.' }),
});

const validateAnswer = z.union([
  z.strictObject({
    valid: z.literal(true),
    coupon: customerCouponJsonSchema,
    discount: z
      .strictObject({ amount: z.int().min(0), currency: z.string() })
      .nullable()
      .meta({ description: "Off the plan's first charge (minor units); null without planId." }),
  }),
  z.strictObject({ valid: z.literal(false), reason: z.enum(COUPON_REFUSALS) }),
]);

/** POST/GET /api/v1/admin/coupons, POST /api/v1/admin/coupons/{id}/deactivate, GET /api/v1/coupons/validate. */
export function couponRoutes(deps: AppDeps): Router {
  const cache = createCouponCache(deps);
  const { router, route } = apiRouter(deps);
  route(couponApi.create, createHandler(deps, cache));
  route(couponApi.list, listHandler(deps));
  route(couponApi.deactivate, deactivateHandler(deps, cache));
  route(couponApi.validate, validateHandler(deps, cache));
  return router;
}

function createHandler({ db }: AppDeps, cache: CouponCache): RouteHandler {
  return async (req, res) => {
    const body = parseBody(createCouponSchema, req.body);
    const terms: CouponTerms = {
      code: body.code,
      percentOff: body.percentOff ?? null,
      amountOff: body.amountOff ?? null,
      currency: body.currency ?? null,
      duration: body.duration,
      durationInCycles: body.durationInCycles ?? null,
      maxRedemptions: body.maxRedemptions ?? null,
      redeemBy: body.redeemBy ?? null,
      appliesToPlans: body.appliesToPlans ?? null,
      firstTimeOnly: body.firstTimeOnly,
    };
    const invalid = couponTermsProblems(terms, new Date());
    if (invalid.length > 0) throw invalidTerms(invalid);
    if (terms.appliesToPlans && !(await plansExist(db, terms.appliesToPlans))) {
      throw invalidTerms([{ path: ['appliesToPlans'], message: 'names a plan that does not exist' }]);
    }
    const staff = currentUser(req);
    const created = await db.transaction(async (tx) => {
      const row = await insertCoupon(tx, terms, staff.id);
      if (!row) return undefined;
      await tx
        .insert(auditLog)
        .values({ actorId: staff.id, action: 'coupon.create', targetType: 'coupon', targetId: row.id, details: { code: row.code } });
      return row;
    });
    if (!created) {
      throw new HttpProblem(409, 'Coupon code taken', `A coupon with code "${terms.code}" (in any case) already exists.`, {
        invalidParams: [{ name: 'code', reason: 'Already used by another coupon' }],
      });
    }
    // An unknown code may have been cached as such.
    await cache.invalidate(created.code);
    res.status(201).json({ coupon: toCouponJson(created) });
  };
}

function listHandler({ db }: AppDeps): RouteHandler {
  return async (req, res) => {
    const query = parseQuery(listCouponsQuery, req.query);
    if (query.cursor && !(await couponById(db, query.cursor))) throw unknownCursor();
    const active = query.active === undefined ? undefined : query.active === 'true';
    const rows = await listCoupons(db, { limit: query.limit, after: query.cursor, active });
    const page = rows.slice(0, query.limit);
    res.json({
      items: page.map(toCouponJson),
      nextCursor: rows.length > query.limit ? cursorOf(page.at(-1)!.id) : null,
    });
  };
}

function deactivateHandler({ db }: AppDeps, cache: CouponCache): RouteHandler {
  return async (req, res) => {
    const { id } = parseParams(couponIdParams, req.params);
    const staff = currentUser(req);
    const result = await db.transaction(async (tx) => {
      const outcome = await deactivateCoupon(tx, id);
      if (outcome?.changed) {
        await tx
          .insert(auditLog)
          .values({ actorId: staff.id, action: 'coupon.deactivate', targetType: 'coupon', targetId: id, details: { code: outcome.row.code } });
      }
      return outcome;
    });
    if (!result) throw new HttpProblem(404, 'Coupon not found', `There is no coupon ${id}.`);
    await cache.invalidate(result.row.code);
    res.json({ coupon: toCouponJson(result.row) });
  };
}

function validateHandler({ db }: AppDeps, cache: CouponCache): RouteHandler {
  const planById = planPrices(db);
  const customerFacts = keptCustomerFacts(prepareCustomerFacts(db));
  return async (req, res) => {
    const query = parseQuery(validateQuery, req.query);
    const plan = query.planId ? await planById(query.planId) : undefined;
    if (query.planId && !plan) throw new HttpProblem(404, 'Plan not found', `There is no plan ${query.planId}.`);
    const coupon = await cache.byCode(query.code);
    const ctx = { now: new Date(), plan, alreadyRedeemed: false, hasSubscribedBefore: false };
    let reason = couponRefusal(coupon, ctx);
    // What depends on the customer is read only when it could change the answer: a code that is
    // valid so far, or exhausted (a customer who holds one of its places hears already_redeemed).
    if (coupon && (reason === null || reason === 'exhausted')) {
      const facts = await customerFacts(coupon, currentUser(req).id);
      reason = couponRefusal(coupon, {
        ...ctx,
        alreadyRedeemed: facts.alreadyRedeemed,
        hasSubscribedBefore: coupon.firstTimeOnly && facts.hasSubscribedBefore,
      });
    }
    if (reason !== null || !coupon) {
      res.json({ valid: false, reason: reason ?? 'unknown' });
      return;
    }
    const discount = plan ? { amount: discountFor(coupon, plan.amount, plan.currency) ?? 0, currency: plan.currency } : null;
    res.json({ valid: true, coupon: toCustomerCouponJson(coupon), discount });
  };
}

// Customers' facts kept in this process, by coupon copy and customer.
const CUSTOMER_FACTS_KEPT = 50_000;

/**
 * A customer's facts, kept against the very coupon object the cache answered: the cache answers
 * a new object once the coupon changed (and a redemption or a release of it is a change of it,
 * which invalidates it), so facts kept for the old object are never used again; they age out.
 * `hasSubscribedBefore` only ever turns true (subscription rows are never deleted) and no
 * coupon change announces it, so a false one is not kept for a first-time-only coupon.
 */
function keptCustomerFacts(read: (couponId: string, userId: string) => Promise<CustomerCouponFacts>) {
  const copyIds = new WeakMap<CouponState, number>();
  let lastCopyId = 0;
  const kept = new LruMap<string, CustomerCouponFacts>(CUSTOMER_FACTS_KEPT);
  return async (coupon: CouponState, userId: string): Promise<CustomerCouponFacts> => {
    let copyId = copyIds.get(coupon);
    if (copyId === undefined) copyIds.set(coupon, (copyId = ++lastCopyId));
    const key = `${copyId} ${userId}`;
    const copy = kept.get(key);
    if (copy) return copy;
    const facts = await read(coupon.id, userId);
    if (!coupon.firstTimeOnly || facts.hasSubscribedBefore) kept.set(key, facts);
    return facts;
  };
}

interface PlanPrice {
  id: string;
  amount: number;
  currency: string;
}

// Plans are only ever inserted (a new price is a new plan; nothing updates or deletes one), so a
// copy of a plan's price never goes stale. An unknown id is not kept: the plan may come next.
const PLAN_PRICES_KEPT = 1000;

/** A plan's price by id: from this process's copy, else one prepared query. */
function planPrices(db: Database): (id: string) => Promise<PlanPrice | undefined> {
  const byId = db
    .select({ id: plans.id, amount: plans.amount, currency: plans.currency })
    .from(plans)
    .where(eq(plans.id, sql.placeholder('id')))
    .prepare('plan_price_by_id');
  const kept = new LruMap<string, PlanPrice>(PLAN_PRICES_KEPT);
  return async (id) => {
    const copy = kept.get(id);
    if (copy) return copy;
    const [plan] = await byId.execute({ id });
    if (plan) kept.set(id, plan);
    return plan;
  };
}

async function plansExist(db: Database, ids: string[]): Promise<boolean> {
  const unique = [...new Set(ids)];
  const found = await db.select({ id: plans.id }).from(plans).where(inArray(plans.id, unique));
  const known = new Set(found.map((p) => p.id));
  return unique.every((id) => known.has(id));
}

function invalidTerms(problems: PolicyProblem[]): HttpProblem {
  const invalidParams = problems.map((p) => ({ name: p.path.join('.'), reason: p.message }));
  return new HttpProblem(400, 'Invalid request', invalidParams.map((p) => `${p.name}: ${p.reason}`).join('; '), { invalidParams });
}

export const couponApi = {
  create: {
    method: 'post',
    path: '/api/v1/admin/coupons',
    summary: 'Staff: create a coupon (percentOff or amountOff + currency; once, repeating or forever)',
    auth: 'staff',
    idempotent: true,
    request: { body: createCouponSchema },
    responses: {
      201: json('The coupon', z.strictObject({ coupon: couponJsonSchema })),
      ...problems(400, [409, 'A coupon with this code (in any case) exists (or the same Idempotency-Key is in progress)']),
    },
  },
  list: {
    method: 'get',
    path: '/api/v1/admin/coupons',
    summary: 'Staff: coupons, newest first, a page at a time',
    auth: 'staff',
    request: { query: listCouponsQuery },
    responses: {
      200: json('A page of coupons', z.strictObject({ items: z.array(couponJsonSchema), nextCursor: z.string().nullable() })),
      ...problems(400),
    },
  },
  deactivate: {
    method: 'post',
    path: '/api/v1/admin/coupons/{id}/deactivate',
    summary: 'Staff: stop new redemptions of a coupon (existing ones keep their terms); a repeat changes nothing',
    auth: 'staff',
    request: { params: couponIdParams },
    responses: { 200: json('The coupon, deactivated', z.strictObject({ coupon: couponJsonSchema })), ...problems(400, 404) },
  },
  validate: {
    method: 'get',
    path: '/api/v1/coupons/validate',
    summary: 'Whether a code can be used now (for this plan), and what it takes off',
    auth: 'user',
    request: { query: validateQuery },
    responses: { 200: json('valid, with the terms and discount; or not, with why', validateAnswer), ...problems(400, 404) },
  },
} satisfies Record<string, ApiOperation>;
