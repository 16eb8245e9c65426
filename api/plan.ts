import { asc, eq } from 'drizzle-orm';
import type { Router } from 'express';
import { z } from 'zod';
import { MAX_TAX_RATE_BPS } from '../domain/invoice';
import { auditLog, plans } from '../db/schema';
import { DEFAULT_DUNNING_POLICY, type PolicyProblem } from '../domain/dunning';
import { formatMoney } from '../domain/money';
import { planTermsProblems, type PlanTerms } from '../domain/subscription';
import type { AppDeps } from './deps';
import { currentUser } from './auth';
import { isoDateTime, json, problems, type ApiOperation } from './contract';
import { HttpProblem } from './problem';
import { apiRouter } from './route';
import { nonBlankText, parseBody } from './validation';

export type PlanRow = typeof plans.$inferSelect;

/** A plan as the API shows it. */
export const planJsonSchema = z
  .strictObject({
    id: z.uuid(),
    code: z.string(),
    name: z.string(),
    amount: z.int().min(0),
    currency: z.string(),
    price: z.string().meta({ description: '"$19.99": for display only; `amount` is the number to compute with.' }),
    interval: z.string(),
    trialPeriod: z.string().nullable(),
    dunning: z.strictObject({ retryOffsets: z.array(z.string()), reminderOffsets: z.array(z.string()), gracePeriod: z.string() }),
    active: z.boolean(),
    taxRate: z
      .int()
      .min(0)
      .max(MAX_TAX_RATE_BPS)
      .nullable()
      .meta({ description: "Exclusive tax in basis points (2000 = 20 %) on the plan's invoice lines; null: none." }),
    createdAt: isoDateTime,
  })
  .meta({ id: 'Plan' });

export type PlanJson = z.infer<typeof planJsonSchema>;

export function toPlanJson(row: PlanRow): PlanJson {
  return {
    id: row.id,
    code: row.code,
    name: row.name,
    amount: row.amount,
    currency: row.currency,
    price: formatMoney(row.amount, row.currency),
    interval: row.interval,
    trialPeriod: row.trialPeriod,
    dunning: { retryOffsets: row.retryOffsets, reminderOffsets: row.reminderOffsets, gracePeriod: row.gracePeriod },
    active: row.active,
    taxRate: row.taxRate,
    createdAt: row.createdAt.toISOString(),
  };
}

/** The terms a subscription to this plan is sold on, frozen into its workflow at subscribe time. */
export function planTermsOf(row: PlanRow): PlanTerms {
  return {
    planId: row.id,
    code: row.code,
    name: row.name,
    amount: row.amount,
    currency: row.currency,
    interval: row.interval,
    trialPeriod: row.trialPeriod,
    dunning: { retryOffsets: row.retryOffsets, reminderOffsets: row.reminderOffsets, gracePeriod: row.gracePeriod },
    ...(row.taxRate ? { taxRate: row.taxRate } : {}),
  };
}

const duration = z.string().max(64);

// Shapes only: planTermsProblems (domain) judges the amount, currency, durations and dunning policy.
export const createPlanSchema = z.strictObject({
  code: z
    .string()
    .trim()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'Must be 1 to 64 lower-case letters, digits, "-" or "_"'),
  name: nonBlankText(200),
  amount: z.number(),
  currency: z.string().max(16),
  interval: duration,
  trialPeriod: duration.nullish().transform((value) => value ?? null),
  dunning: z
    .strictObject({
      retryOffsets: z.array(duration).max(100),
      reminderOffsets: z.array(duration).max(100),
      gracePeriod: duration,
    })
    .optional()
    .transform((dunning) => dunning ?? { ...DEFAULT_DUNNING_POLICY }),
  taxRate: z
    .int()
    .min(0)
    .max(MAX_TAX_RATE_BPS)
    .optional()
    .meta({ description: 'Exclusive tax in basis points (2000 = 20 %); none when absent. Invoiced only once the charges carry it (see invoices).' }),
});

/** GET /api/v1/subscriptions/plans: the plans on sale, for anyone. */
export function planCatalogRoutes(deps: Pick<AppDeps, 'db'>): Router {
  const { router, route } = apiRouter();
  route(planApi.catalog, async (_req, res) => {
    const rows = await deps.db.select().from(plans).where(eq(plans.active, true)).orderBy(asc(plans.amount), asc(plans.code));
    res.json({ plans: rows.map(toPlanJson) });
  });
  return router;
}

/** The `plans` row of a plan's terms: the dunning policy is stored column by column. */
export function planRowOf(terms: Omit<PlanTerms, 'planId'>): typeof plans.$inferInsert {
  return {
    code: terms.code,
    name: terms.name,
    amount: terms.amount,
    currency: terms.currency,
    interval: terms.interval,
    trialPeriod: terms.trialPeriod,
    retryOffsets: terms.dunning.retryOffsets,
    reminderOffsets: terms.dunning.reminderOffsets,
    gracePeriod: terms.dunning.gracePeriod,
  };
}

/** POST /api/v1/admin/plans: staff put a plan on sale. */
export function adminPlanRoutes(deps: AppDeps): Router {
  const { db } = deps;
  const { router, route } = apiRouter(deps);

  route(planApi.create, async (req, res) => {
    const input = parseBody(createPlanSchema, req.body);
    const terms = { ...input, currency: input.currency.toLowerCase() };
    const problems = planTermsProblems(terms);
    if (problems.length > 0) throw invalidPlanTerms(problems);

    const created = await db.transaction(async (tx) => {
      const [row] = await tx
        .insert(plans)
        .values({ ...planRowOf(terms), taxRate: input.taxRate ?? null })
        .onConflictDoNothing({ target: plans.code })
        .returning();
      if (!row) return undefined;
      await tx.insert(auditLog).values({
        actorId: currentUser(req).id,
        action: 'plan.create',
        targetType: 'plan',
        targetId: row.id,
        details: { code: row.code },
      });
      return row;
    });
    if (!created) {
      throw new HttpProblem(409, 'Plan code taken', `A plan with code "${terms.code}" already exists.`, {
        invalidParams: [{ name: 'code', reason: 'Already used by another plan' }],
      });
    }
    res.status(201).json({ plan: toPlanJson(created) });
  });

  return router;
}

function invalidPlanTerms(problems: PolicyProblem[]): HttpProblem {
  const invalidParams = problems.map((p) => ({ name: p.path.join('.'), reason: p.message }));
  return new HttpProblem(400, 'Invalid request', invalidParams.map((p) => `${p.name}: ${p.reason}`).join('; '), {
    invalidParams,
  });
}

export const planApi = {
  catalog: {
    method: 'get',
    path: '/api/v1/subscriptions/plans',
    summary: 'The plans on sale, cheapest first',
    auth: 'public',
    responses: { 200: json('Plans', z.strictObject({ plans: z.array(planJsonSchema) })) },
  },
  create: {
    method: 'post',
    path: '/api/v1/admin/plans',
    summary: 'Put a plan on sale (staff)',
    auth: 'staff',
    idempotent: true,
    request: { body: createPlanSchema },
    responses: {
      201: json('The plan', z.strictObject({ plan: planJsonSchema })),
      ...problems(400, [409, 'A plan with this code exists (or the same Idempotency-Key is in progress)']),
    },
  },
} satisfies Record<string, ApiOperation>;
