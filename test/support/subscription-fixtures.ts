import { randomUUID } from 'node:crypto';
import type { Database } from '../../db/client';
import { plans } from '../../db/schema';
import { DEFAULT_DUNNING_POLICY } from '../../domain/dunning';
import type { PlanTerms } from '../../domain/subscription';

/** A plan row of its own (random code) and the terms a subscription workflow is started with. */
export async function insertTestPlan(db: Database, overrides: Partial<Omit<PlanTerms, 'planId' | 'code'>> = {}): Promise<PlanTerms> {
  const terms = {
    code: `plan-${randomUUID()}`,
    name: 'Pro',
    amount: 1999,
    currency: 'usd',
    interval: 'P1M',
    trialPeriod: null,
    dunning: DEFAULT_DUNNING_POLICY,
    ...overrides,
  };
  const [row] = await db
    .insert(plans)
    .values({
      code: terms.code,
      name: terms.name,
      amount: terms.amount,
      currency: terms.currency,
      interval: terms.interval,
      trialPeriod: terms.trialPeriod,
      retryOffsets: terms.dunning.retryOffsets,
      reminderOffsets: terms.dunning.reminderOffsets,
      gracePeriod: terms.dunning.gracePeriod,
    })
    .returning({ id: plans.id });
  return { planId: row.id, ...terms };
}
