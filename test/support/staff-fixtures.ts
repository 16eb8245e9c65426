/**
 * Fixtures for the support-console and staff tests: subscriptions in a chosen state over HTTP,
 * and a bounded wait for Temporal's visibility store, which trails the workflows a little.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { createPlan, getSubscription, requestPaymentMethodChange, subscribe, waitFor, type SubscriptionStack } from './subscription-stack';
import type { TestUser } from './api';

export const VISA = 'pm_card_visa';
export const DECLINED = 'pm_card_chargeDeclined';

/**
 * A plan that renews after 4 s and, once a renewal fails, stays past due for a minute (one
 * retry at +50 s): long enough for staff to act on it. Answers its id and code.
 */
export async function createDunningPlan(stack: SubscriptionStack): Promise<{ id: string; code: string }> {
  const code = `dunning-${randomUUID()}`;
  const id = await createPlan(stack, {
    code,
    interval: 'PT4S',
    dunning: { retryOffsets: ['PT50S'], reminderOffsets: ['PT40S'], gracePeriod: 'PT60S' },
  });
  return { id, code };
}

/** A plan that renews monthly: its subscriptions stay active for the whole test. */
export async function createMonthlyPlan(stack: SubscriptionStack): Promise<{ id: string; code: string }> {
  const code = `monthly-${randomUUID()}`;
  return { id: await createPlan(stack, { code, interval: 'P1M' }), code };
}

/** Subscribes `user` with a good card and answers the subscription's JSON. */
export async function activeSubscription(stack: SubscriptionStack, user: TestUser, planId: string): Promise<Record<string, any>> {
  const res = await subscribe(stack, user, { planId, paymentMethod: VISA });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.subscription;
}

/**
 * A subscription of `user` to a dunning plan whose renewal was declined: subscribed with a good
 * card, switched to a declining one before the renewal. Answers its JSON once past due.
 */
export async function pastDueSubscription(stack: SubscriptionStack, user: TestUser, planId: string): Promise<Record<string, any>> {
  const { id } = await activeSubscription(stack, user, planId);
  const switched = await requestPaymentMethodChange(stack, user, id, DECLINED);
  assert.equal(switched.status, 200, JSON.stringify(switched.body));
  return waitFor(
    () => subscriptionRow(stack, user, id),
    (row) => row.status === 'past_due',
    {
      what: `subscription ${id} past due`,
      timeoutMs: 30_000,
    },
  );
}

async function subscriptionRow(stack: SubscriptionStack, user: TestUser, id: string): Promise<Record<string, any>> {
  const res = await getSubscription(stack, user, id);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.subscription;
}

/** The workflow ids a visibility query lists, once they are exactly `expected` (bounded wait). */
export async function waitForListing(client: Client, query: string, expected: string[]): Promise<string[]> {
  return waitFor(
    async () => {
      const ids: string[] = [];
      for await (const workflow of client.workflow.list({ query })) ids.push(workflow.workflowId);
      return ids.sort();
    },
    (ids) => JSON.stringify(ids) === JSON.stringify([...expected].sort()),
    { what: `visibility to list ${JSON.stringify(expected)} for ${query}`, timeoutMs: 20_000, intervalMs: 250 },
  );
}
