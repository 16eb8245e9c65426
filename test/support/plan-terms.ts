import { randomUUID } from 'node:crypto';
import { DEFAULT_DUNNING_POLICY } from '../../domain/dunning';
import type { PlanTerms } from '../../domain/subscription';

/** Terms of a plan for tests: Pro, 19.99 USD a month, the default dunning, a code of its own. */
export function testPlanTerms(overrides: Partial<PlanTerms> = {}): PlanTerms {
  return {
    planId: randomUUID(),
    code: `plan-${randomUUID()}`,
    name: 'Pro',
    amount: 1999,
    currency: 'usd',
    interval: 'P1M',
    trialPeriod: null,
    dunning: DEFAULT_DUNNING_POLICY,
    ...overrides,
  };
}
