/**
 * The PostgreSQL-outage drill, shared by the dev server's stack (postgres-outage.drill.ts) and the
 * cluster's (cluster-postgres-outage.drill.ts, where the Temporal server keeps its own state in
 * the same PostgreSQL): stop PostgreSQL for 10 s in the middle of a renewal storm. The activities
 * retry until it is back and every renewal lands, once; meanwhile the API answers 503 (never 500)
 * to requests that need the database.
 *
 * PostgreSQL is killed (as by a crash or an OOM kill), so the outage starts at once; it must run
 * with synchronous commits, as in production (`durablePostgres`: without them a crash loses
 * acknowledged commits, and the drill finds renewals the workflow saw succeed with no payment row
 * behind them). The workers, the API instances and the Temporal server run supervised, restarted
 * if they exit, as under docker compose: postgres.js 3.4.9 can end a process when a connection
 * closes under a queued write (porsager/postgres#1154), and the drill reports how often that
 * happened.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { seedDueSubscriptions } from '../../bench/seed';
import { tally } from '../../bench/stats';
import { createTestUser, type TestUser } from '../support/api';
import { insertTestOffering } from '../support/booking-fixtures';
import { assertBooksBalance } from '../support/reconciliation';
import { insertTestPlan } from '../support/subscription-fixtures';
import { waitFor } from '../support/subscription-stack';
import { answeredCharges, auditChargedOnce, waitForEveryRenewal, probe, secondsFromNow, supervise, type Drill, type Probe } from './drill-support';

const SUBSCRIPTIONS = 300;
const STOP_AFTER_ANSWERED = 20;
const DOWN_FOR_MS = 10_000;
const PROBE_EVERY_MS = 500;

/** Runs the drill on `drill`'s stack (with its API, PostgreSQL durable). */
export async function stopPostgresDuringRenewals({ stack, deps }: Drill): Promise<void> {
  const api = stack.apiUrl!;
  const customer = await createTestUser(deps);
  const offering = await insertTestOffering(deps.db, { unitCount: 4 });
  const plan = await insertTestPlan(deps.db, { interval: 'P1D' });
  const seeded = await seedDueSubscriptions(deps, { plan, userIds: [customer.user.id], count: SUBSCRIPTIONS, dueAt: secondsFromNow(20) });
  const ids = seeded.map((s) => s.subscriptionId);

  const answered = async () => (await answeredCharges(deps, ids, 2)).length;
  await waitFor(answered, (n) => n >= STOP_AFTER_ANSWERED, {
    timeoutMs: 60_000,
    intervalMs: 20,
    what: `${STOP_AFTER_ANSWERED} renewals charged`,
  });
  // Every process that may end when PostgreSQL goes (a Temporal server on PostgreSQL too).
  const supervised = [...stack.workers, ...stack.apis, stack.temporal];
  const supervisors = supervised.map((process) => supervise(process));
  try {
    await stack.postgres.kill();
    console.log('postgresql killed');
    const probes = await probeWhileDown(api, customer, plan.planId, offering.id);
    await stack.postgres.start();
    console.log('postgresql started again');
    console.log('API answers while PostgreSQL was down:', tally(probes.map((p) => `${p.what} → ${p.status}`)));
    assert.deepEqual(
      probes.filter((p) => p.status !== 503),
      [],
      'every request that needs PostgreSQL is answered 503 while it is down',
    );

    await waitForEveryRenewal(deps, ids, answered, 'every renewal charged after PostgreSQL came back');
  } finally {
    await Promise.all(supervisors.map((s) => s.stop()));
  }
  const restarts = supervised.map((process, i) => `${process.name} ${supervisors[i].restarts()}`);
  console.log(`restarts after PostgreSQL went away: ${restarts.join(', ')}`);
  const audit = await auditChargedOnce(deps, stack.gatewayLogFile!, ids, 2);
  console.log(`charged once each: ${audit.subscriptions} subscriptions, ${audit.gatewayCalls} gateway calls, ${audit.repeatedCalls} repeated a key`);
  for (const url of [api, ...stack.apiInstanceUrls]) assert.equal((await probe('GET /readyz', `${url}/readyz`)).status, 200, `${url} ready again`);
  await assertBooksBalance(deps.db, { gatewayLog: stack.gatewayLogFile });
}

/**
 * For DOWN_FOR_MS, every PROBE_EVERY_MS: requests that each need PostgreSQL (a read of the
 * caller's subscriptions, a subscribe, a public availability read, the readiness probe).
 */
async function probeWhileDown(api: string, customer: TestUser, planId: string, offeringId: string): Promise<Probe[]> {
  const probes: Probe[] = [];
  const downSince = Date.now();
  const json = { 'content-type': 'application/json', ...customer.headers };
  while (Date.now() - downSince < DOWN_FOR_MS) {
    const round = await Promise.all([
      probe('GET /subscriptions/status', `${api}/api/v1/subscriptions/status`, { headers: customer.headers }),
      probe('POST /subscriptions/subscribe', `${api}/api/v1/subscriptions/subscribe`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ planId, paymentMethod: 'pm_card_visa' }),
      }),
      probe('GET /offerings/:id/availability', `${api}/api/v1/offerings/${offeringId}/availability`),
      probe('GET /readyz', `${api}/readyz`),
    ]);
    probes.push(...round);
    await sleep(PROBE_EVERY_MS);
  }
  return probes;
}
