/**
 * Drill on the cluster: SIGKILL one of the two API instances behind nginx while customers
 * subscribe. Each customer sends one subscribe with an `Idempotency-Key` and, as a client should,
 * sends it again with the same key after a network error, a 5xx or a 409, until it has an answer.
 *
 * The requests the dead instance was serving are lost mid-way (nginx answers 502: it does not
 * pass a POST already sent on to the other instance); their retries reach the other instance,
 * whose idempotency record lets them through to the workflow the first attempt started, whose id
 * derives from the key. So each customer ends with one subscription and one first charge, and
 * requests sent after the kill are served by the other instance (nginx passes a refused
 * connection on to the next server, and then leaves the dead one out).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { inArray } from 'drizzle-orm';
import { runBounded, tally } from '../../bench/stats';
import { subscriptions } from '../../db/schema';
import { createTestUser, type TestUser } from '../support/api';
import { assertBooksBalance } from '../support/reconciliation';
import { insertTestPlan } from '../support/subscription-fixtures';
import { waitFor } from '../support/subscription-stack';
import { answeredCharges, auditChargedOnce, CLUSTER_TOPOLOGY, probe, withDrill } from './drill-support';

const CUSTOMERS = 200;
const IN_FLIGHT = 20;
const KILL_AFTER_ANSWERED = 40;
// Requests started this long after the kill returned must all be served (the kill itself is a SIGKILL).
const SETTLE_MS = 1000;
const CHECKS_AFTER = 40;

interface Attempt {
  customer: number;
  startedAt: number;
  status: number;
}

interface Answer {
  status: number;
  subscriptionId?: string;
}

test(
  'cluster: SIGKILL of one API instance under subscribe load: one subscription per customer, nginx serves the rest',
  { timeout: 10 * 60_000 },
  () =>
    withDrill({ ...CLUSTER_TOPOLOGY, gatewayDelayMs: 100 }, async ({ stack, deps }) => {
      assert.equal(stack.apis.length, 2, 'two API instances');
      assert.ok(stack.loadBalancer, 'nginx in front of them');
      const [, victim] = stack.apis;
      const plan = await insertTestPlan(deps.db, { interval: 'P1M' });
      const customers = (await runBounded(CUSTOMERS, 4, () => createTestUser(deps))).map((r) => {
        if (!r.ok) throw r.error;
        return r.value;
      });

      const attempts: Attempt[] = [];
      const load = runBounded(CUSTOMERS, IN_FLIGHT, (i) => subscribeUntilAnswered(stack.apiUrl!, plan.planId, customers[i], i, attempts));
      await waitFor(
        async () => attempts.filter((a) => a.status === 201).length,
        (n) => n >= KILL_AFTER_ANSWERED,
        { timeoutMs: 3 * 60_000, intervalMs: 20, what: `${KILL_AFTER_ANSWERED} subscriptions answered` },
      );
      await victim.kill();
      const killedAt = Date.now();
      const answers = (await load).map((r) => {
        if (!r.ok) throw r.error;
        return r.value;
      });

      const failed = attempts.filter((a) => a.status === 0 || a.status >= 500 || a.status === 409);
      console.log(
        `API instance ${victim.name} killed after ${KILL_AFTER_ANSWERED} answers; ${attempts.length} attempts for ${CUSTOMERS} customers: ${JSON.stringify(tally(attempts.map((a) => a.status)))}`,
      );
      console.log(`final answers: ${JSON.stringify(tally(answers.map((a) => a.status)))}`);
      assert.ok(failed.length > 0, 'the kill caught requests in flight, which the customers sent again');
      assert.deepEqual(
        failed.filter((a) => a.startedAt >= killedAt + SETTLE_MS),
        [],
        'every request sent after the kill was served by the other instance',
      );
      for (const answer of answers) assert.ok(answer.status === 201 || answer.status === 202, `a customer's final answer is ${answer.status}`);

      const rows = await deps.db
        .select({ id: subscriptions.id, userId: subscriptions.userId })
        .from(subscriptions)
        .where(
          inArray(
            subscriptions.userId,
            customers.map((c) => c.user.id),
          ),
        );
      customers.forEach((customer, i) => {
        const own = rows.filter((row) => row.userId === customer.user.id).map((row) => row.id);
        assert.deepEqual(own, [answers[i].subscriptionId], `customer ${customer.user.id}: subscriptions ${own.join(', ')}`);
      });
      const ids = rows.map((row) => row.id);
      await waitFor(
        async () => (await answeredCharges(deps, ids, 1)).length,
        (n) => n === CUSTOMERS,
        { timeoutMs: 2 * 60_000, intervalMs: 500, what: 'every first charge answered' },
      );
      const audit = await auditChargedOnce(deps, stack.gatewayLogFile!, ids, 1);
      console.log(
        `charged once each: ${audit.subscriptions} subscriptions, ${audit.gatewayCalls} gateway calls, ${audit.repeatedCalls} repeated a key`,
      );

      await checkServedByTheOther(stack.apiUrl!, stack.apiInstanceUrls, customers[0]);
      await assertBooksBalance(deps.db, { gatewayLog: stack.gatewayLogFile });
    }),
);

/** One customer's subscribe, sent again with the same key after a network error, a 5xx or a 409. */
async function subscribeUntilAnswered(apiUrl: string, planId: string, customer: TestUser, index: number, attempts: Attempt[]): Promise<Answer> {
  const key = `drill-subscribe-${customer.user.id}`;
  for (let attempt = 1; attempt <= 20; attempt++) {
    const startedAt = Date.now();
    const answer = await subscribeOnce(apiUrl, planId, customer, key);
    attempts.push({ customer: index, startedAt, status: answer.status });
    if (answer.status !== 0 && answer.status < 500 && answer.status !== 409) return answer;
    await sleep(200 * attempt);
  }
  throw new Error(`customer ${index}: no answer after 20 attempts`);
}

async function subscribeOnce(apiUrl: string, planId: string, customer: TestUser, key: string): Promise<Answer> {
  try {
    const response = await fetch(`${apiUrl}/api/v1/subscriptions/subscribe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key, ...customer.headers },
      body: JSON.stringify({ planId, paymentMethod: 'pm_card_visa' }),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await response.text();
    const body = response.headers.get('content-type')?.includes('json') && text ? JSON.parse(text) : undefined;
    return { status: response.status, subscriptionId: body?.subscription?.id };
  } catch {
    return { status: 0 };
  }
}

/**
 * After the load: the dead instance refuses connections, and every request through nginx is
 * answered by the live one (reads of the customer's subscriptions, each needing the API's
 * PostgreSQL and auth, not a cached page).
 */
async function checkServedByTheOther(apiUrl: string, instanceUrls: string[], customer: TestUser): Promise<void> {
  const direct = await Promise.all(instanceUrls.map((url) => probe('GET /readyz', `${url}/readyz`)));
  assert.deepEqual(
    direct.map((p) => p.status),
    [200, 0],
    'the first instance answers and the killed one refuses',
  );
  const through = await Promise.all(
    Array.from({ length: CHECKS_AFTER }, () =>
      probe('GET /subscriptions/status', `${apiUrl}/api/v1/subscriptions/status`, { headers: customer.headers }),
    ),
  );
  console.log(`through nginx after the kill: ${JSON.stringify(tally(through.map((p) => p.status)))}`);
  assert.ok(
    through.every((p) => p.status === 200),
    'nginx sends every request to the live instance',
  );
}
