import type { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { planRowOf } from '../../api/plan';
import type { Database } from '../../db/client';
import { plans } from '../../db/schema';
import type { PlanTerms, SubscriptionSnapshot } from '../../domain/subscription';
import { getSubscriptionState } from '../../api/subscription-client';
import { testPlanTerms } from './plan-terms';

/** A plan row of its own (random code) and the terms a subscription workflow is started with. */
export async function insertTestPlan(db: Database, overrides: Partial<Omit<PlanTerms, 'planId' | 'code'>> = {}): Promise<PlanTerms> {
  const terms = testPlanTerms(overrides);
  const [row] = await db.insert(plans).values(planRowOf(terms)).returning({ id: plans.id });
  return { ...terms, planId: row.id };
}

/** Retries `check` until it stops throwing (15 s): projections and outbox rows trail the workflow. */
export async function eventually<T>(check: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

const QUERY_DEADLINE_MS = 2_000;

/** Polls the `state` query until `ready` holds: activities take real time after the clock jumps. */
export function waitForState(
  client: Client,
  subscriptionId: string,
  ready: (snapshot: SubscriptionSnapshot) => boolean,
): Promise<SubscriptionSnapshot> {
  return eventually(async () => {
    // A deadline on each query: one that reaches a run as it continues as new can go unanswered
    // on the time-skipping server, and the next attempt asks the new run.
    const snapshot = await client.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => getSubscriptionState(client, subscriptionId));
    if (!ready(snapshot)) throw new Error(`state never matched; last: ${JSON.stringify(snapshot, null, 1)}`);
    return snapshot;
  });
}

/** Moves the time-skipping server's clock to `at`; timers due by then fire. */
export async function advanceTo(env: TestWorkflowEnvironment, at: Date | string): Promise<void> {
  const ms = new Date(at).getTime() - (await env.currentTimeMs());
  if (ms > 0) await env.sleep(ms);
}
