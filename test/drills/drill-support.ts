/**
 * What the fault drills share: a stack of their own (bench/stack.ts) whose processes they may
 * kill and restart, and the audits that say nothing was lost and nothing done twice, from
 * PostgreSQL and from the gateway's own record (bench/recording-gateway.ts). Each drill ends with
 * the reconciliation of its stack's books against that record (test/support/reconciliation.ts).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { and, eq, inArray } from 'drizzle-orm';
import type { AppDeps } from '../../api/app';
import { readGatewayCalls } from '../../bench/recording-gateway';
import { connectToStack } from '../../bench/seed';
import { tally } from '../../bench/stats';
import { startLocalStack, type LocalStack, type Restartable, type StackOptions } from '../../bench/stack';
import { payments, subscriptions } from '../../db/schema';
import { waitFor } from '../support/subscription-stack';
import { insertTestUser } from '../support/payment-fixtures';

export interface Drill {
  stack: LocalStack;
  /** Connections from the drill's own process to the stack's servers. */
  deps: AppDeps;
  /** Stops everything; a failed drill keeps its servers' logs and says where. */
  stop(options: { failed: boolean }): Promise<void>;
}

/**
 * The production topology on one machine, for the cluster drills: the Temporal server proper on
 * PostgreSQL (16 history shards), two worker processes, two API instances behind nginx.
 */
export const CLUSTER_TOPOLOGY = { temporal: 'cluster', workers: 2, api: true, apis: 2, loadBalancer: true } as const satisfies Partial<StackOptions>;

export async function startDrill(options: Omit<StackOptions, 'name' | 'recordGateway'>): Promise<Drill> {
  const stack = await startLocalStack({ name: 'billing-drill', recordGateway: true, ...options });
  const { deps, close } = await connectToStack(stack);
  return {
    stack,
    deps,
    stop: async ({ failed }) => {
      await close();
      await stack.stop({ keepDir: failed });
    },
  };
}

/** Runs `body` on a fresh drill stack and stops it, keeping the logs when `body` failed. */
export async function withDrill(options: Omit<StackOptions, 'name' | 'recordGateway'>, body: (drill: Drill) => Promise<void>): Promise<void> {
  const drill = await startDrill(options);
  let failed = true;
  try {
    await body(drill);
    failed = false;
  } finally {
    await drill.stop({ failed });
  }
}

export async function insertUsers(deps: AppDeps, count: number): Promise<string[]> {
  return Promise.all(Array.from({ length: count }, async () => (await insertTestUser(deps.db)).id));
}

/** The instant `seconds` from now, on a whole second (timers line up). */
export function secondsFromNow(seconds: number): Date {
  return new Date(Math.ceil(Date.now() / 1000) * 1000 + seconds * 1000);
}

/** Payments of one cycle for these subscriptions: `pending` while the gateway has not answered. */
export function chargesOfCycle(deps: AppDeps, subscriptionIds: string[], cycle: number) {
  return deps.db
    .select()
    .from(payments)
    .where(and(inArray(payments.subscriptionId, subscriptionIds), eq(payments.cycle, cycle)));
}

export async function answeredCharges(deps: AppDeps, subscriptionIds: string[], cycle: number) {
  return (await chargesOfCycle(deps, subscriptionIds, cycle)).filter((row) => row.status !== 'pending');
}

export interface ChargeAudit {
  subscriptions: number;
  /** Charges the gateway answered for these subscriptions and this cycle. */
  gatewayCalls: number;
  /** Calls that repeated an idempotency key already answered: retries after a fault, one charge each. */
  repeatedCalls: number;
}

/**
 * Every subscription was charged exactly once for `cycle`: one payments row, succeeded, whose
 * idempotency key is the only key the gateway saw for that subscription and cycle, answered
 * `succeeded` every time it was sent. Repeats of a key are counted, not failed: the gateway
 * treats them as the same charge, as Stripe does.
 */
export async function auditChargedOnce(deps: AppDeps, gatewayLogFile: string, subscriptionIds: string[], cycle: number): Promise<ChargeAudit> {
  const rows = await chargesOfCycle(deps, subscriptionIds, cycle);
  const wanted = new Set(subscriptionIds);
  const calls = readGatewayCalls(gatewayLogFile).filter(
    (call) => wanted.has(call.metadata.subscription_id) && call.idempotencyKey.includes(`/cycle-${cycle}/`),
  );
  for (const id of subscriptionIds) {
    const own = rows.filter((row) => row.subscriptionId === id);
    assert.equal(own.length, 1, `subscription ${id}: ${own.length} payments for cycle ${cycle} in PostgreSQL`);
    assert.equal(own[0].status, 'succeeded', `subscription ${id}: cycle ${cycle} payment is ${own[0].status}`);
    const keys = new Set(calls.filter((call) => call.metadata.subscription_id === id).map((call) => call.idempotencyKey));
    assert.deepEqual([...keys], [own[0].idempotencyKey], `subscription ${id}: the gateway saw keys ${[...keys].join(', ') || 'none'}`);
  }
  for (const call of calls) assert.equal(call.status, 'succeeded', `gateway answered ${call.status} for ${call.idempotencyKey}`);
  const distinctKeys = new Set(calls.map((call) => call.idempotencyKey)).size;
  return { subscriptions: subscriptionIds.length, gatewayCalls: calls.length, repeatedCalls: calls.length - distinctKeys };
}

/** How many of these subscriptions' rows show each cycle, e.g. `{ "2": 300 }` once all renewed. */
export async function projectedCycles(deps: AppDeps, subscriptionIds: string[]): Promise<Record<string, number>> {
  const rows = await deps.db.select({ cycle: subscriptions.cycle }).from(subscriptions).where(inArray(subscriptions.id, subscriptionIds));
  return tally(rows.map((row) => row.cycle));
}

/**
 * What the workflows of subscriptions still lacking a `cycle` charge are doing: their pending
 * activities, attempts and last failures. Printed when a drill times out waiting for them.
 */
/**
 * Until every subscription's cycle-2 charge is answered (`answered` counts them) and projected;
 * on a timeout, which of them are still waiting is printed with the error.
 */
export async function waitForEveryRenewal(deps: AppDeps, subscriptionIds: string[], answered: () => Promise<number>, what: string): Promise<void> {
  await waitFor(answered, (n) => n === subscriptionIds.length, { timeoutMs: 5 * 60_000, intervalMs: 500, what }).catch(async (error: unknown) => {
    console.log(await describeUncharged(deps, subscriptionIds, 2));
    throw error;
  });
  await waitFor(
    () => projectedCycles(deps, subscriptionIds),
    (cycles) => cycles['2'] === subscriptionIds.length,
    { timeoutMs: 2 * 60_000, what: 'every subscription projected in cycle 2' },
  );
}

export async function describeUncharged(deps: AppDeps, subscriptionIds: string[], cycle: number, limit = 5): Promise<string> {
  const charged = new Set((await answeredCharges(deps, subscriptionIds, cycle)).map((row) => row.subscriptionId));
  const missing = subscriptionIds.filter((id) => !charged.has(id)).slice(0, limit);
  const lines = await Promise.all(
    missing.map(async (id) => {
      const handle = deps.temporal.workflow.getHandle(`subscription-${id}`);
      const { raw, status } = await handle.describe();
      const pending = (raw.pendingActivities ?? []).map(
        (a) => `${a.activityType?.name} attempt ${a.attempt} (${a.lastFailure?.message ?? 'no failure yet'})`,
      );
      const events = (await handle.fetchHistory()).events ?? [];
      const lastEvents = events.slice(-6).map((e) => {
        const kind = Object.keys(e).find((k) => k.endsWith('EventAttributes') && (e as Record<string, unknown>)[k]);
        const at = new Date(Number(String(e.eventTime?.seconds)) * 1000).toISOString();
        const timer = e.timerStartedEventAttributes?.startToFireTimeout;
        const continued = e.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
        return `${kind?.replace('EventAttributes', '')}@${at}${timer ? ` fires in ${String(timer.seconds)} s` : ''}${continued ? ' (continued)' : ''}`;
      });
      return `subscription ${id}: ${status.name}; pending: ${pending.join('; ') || 'none'}; last events: ${lastEvents.join(', ')}`;
    }),
  );
  return lines.join('\n');
}

export interface Supervisor {
  /** How often the process had exited and was started again. */
  restarts(): number;
  stop(): Promise<void>;
}

/**
 * Starts `process` again whenever it has exited, as docker-compose.temporal.yml's
 * `restart: unless-stopped` does for the worker and the API.
 */
export function supervise(process: Restartable): Supervisor {
  let restarts = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      if (!process.isRunning()) {
        restarts += 1;
        console.log(`${process.name} exited; starting it again (restart ${restarts})`);
        // A start that fails (the stack is being stopped) is tried again on the next turn.
        await process.start().catch((error: unknown) => console.log(`${process.name} did not start: ${String(error)}`));
      }
      await sleep(250);
    }
  })();
  return {
    restarts: () => restarts,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

export interface Probe {
  at: number;
  what: string;
  /** HTTP status, or 0 when no answer came within the probe's timeout. */
  status: number;
}

/** One request with a deadline; a missing answer is status 0, never an exception. */
export async function probe(what: string, url: string, init: RequestInit = {}, timeoutMs = 5000): Promise<Probe> {
  const at = Date.now();
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    return { at, what, status: response.status };
  } catch {
    return { at, what, status: 0 };
  }
}
