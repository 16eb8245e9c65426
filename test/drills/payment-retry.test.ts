/**
 * Drill (fast, on the test runner's servers): a subscribe or a one-time payment whose answer is
 * lost after the charge (the API's PostgreSQL link cut, the API process killed mid-request) is
 * retried with the same Idempotency-Key. The retry answers with the same subscription or payment
 * as it stands, and nothing is charged twice. The API reaches PostgreSQL through a proxy whose
 * link is cut; the worker keeps its own direct pool, so the charge itself goes through.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { idFromIdempotencyKey } from '../../api/derived-ids';
import { connectDatabase, type DatabaseHandle } from '../../db/client';
import { subscriptionWorkflowId } from '../../domain/subscription';
import { TASK_QUEUES } from '../../platform/task-queues';
import { createTestUser, requestJson, type TestUser } from '../support/api';
import { assertBooksBalance } from '../support/reconciliation';
import { startTestStack, type TestStack } from '../support/stack';
import { createPlan, getSubscription, requestPaymentMethodChange, subscribe, waitFor } from '../support/subscription-stack';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';

const ROOT = path.join(__dirname, '..', '..');
const SUBSCRIBE_SCOPE = 'POST /api/v1/subscriptions/subscribe';
const ticket = { amount: 1250, currency: 'EUR', paymentMethod: 'pm_card_visa', description: 'Retried ticket' };

let direct: DatabaseHandle;
// Every customer charged here: the books the drill ends by reconciling (the database is shared).
const customers: string[] = [];

async function newCustomer(stack: TestStack): Promise<TestUser> {
  const user = await createTestUser(stack.deps);
  customers.push(user.user.id);
  return user;
}

before(() => {
  direct = connectDatabase(requiredEnv('DATABASE_URL'), { max: 2 });
});

after(async () => {
  await direct?.close();
});

describe("the API's PostgreSQL link cut right after the charge", () => {
  let proxy: TcpProxy;
  let apiDatabase: DatabaseHandle;
  let temporalConnection: Connection;
  let stack: TestStack;
  // Set by a test: the next update-with-start's answer arrives, then the API loses PostgreSQL.
  let cutAfterNextStart = false;

  before(async () => {
    const target = new URL(requiredEnv('DATABASE_URL'));
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const proxied = new URL(target);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    apiDatabase = connectDatabase(proxied.toString(), { max: 5 });
    temporalConnection = await Connection.connect({ address: requiredEnv('TEMPORAL_ADDRESS') });
    const temporal = cuttingAfterStart(
      new Client({ connection: temporalConnection, namespace: process.env.TEMPORAL_NAMESPACE || 'default' }),
      async () => {
        if (!cutAfterNextStart) return;
        cutAfterNextStart = false;
        await proxy.cut();
      },
    );
    stack = await startTestStack({ serves: ['billing'], api: { db: apiDatabase.db, sql: apiDatabase.sql, temporal } });
  });

  after(async () => {
    await stack?.close();
    await apiDatabase?.close();
    await temporalConnection?.close();
    await proxy?.close();
  });

  test('a subscribe retried with its key: the same subscription, active, charged once', async () => {
    const user = await newCustomer(stack);
    const planId = await createPlan(stack, { interval: 'P1M' });
    const key = randomUUID();
    const body = { planId, paymentMethod: 'pm_card_visa' };

    cutAfterNextStart = true;
    const lost = await subscribe(stack, user, body, { 'idempotency-key': key });
    assert.ok(lost.status >= 500, `the answer is lost: ${lost.status} ${JSON.stringify(lost.body)}`);
    await proxy.restore();

    const retried = await subscribe(stack, user, body, { 'idempotency-key': key });
    assert.equal(retried.status, 201, JSON.stringify(retried.body));
    const id = idFromIdempotencyKey(user.user.id, SUBSCRIBE_SCOPE, key);
    assert.equal(retried.body.subscription.id, id);
    assert.equal(retried.body.subscription.status, 'active');
    assert.equal(retried.body.payment.status, 'succeeded');
    assert.deepEqual(await chargesOfSubscription(id), { rows: 1, keys: 1 });

    const replayed = await subscribe(stack, user, body, { 'idempotency-key': key });
    assert.equal(replayed.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(replayed.body, retried.body);
  });

  test('a declined subscribe retried with its key: its workflow has closed, so its rows answer the same 402', async () => {
    const user = await newCustomer(stack);
    const planId = await createPlan(stack, { interval: 'P1M' });
    const key = randomUUID();
    const body = { planId, paymentMethod: 'pm_card_chargeDeclined' };

    cutAfterNextStart = true;
    const lost = await subscribe(stack, user, body, { 'idempotency-key': key });
    assert.ok(lost.status >= 500, `the answer is lost: ${lost.status} ${JSON.stringify(lost.body)}`);
    await proxy.restore();

    const retried = await subscribe(stack, user, body, { 'idempotency-key': key });
    assert.equal(retried.status, 402, JSON.stringify(retried.body));
    const id = idFromIdempotencyKey(user.user.id, SUBSCRIBE_SCOPE, key);
    assert.equal(retried.body.subscription.id, id);
    assert.equal(retried.body.subscription.status, 'incomplete');
    assert.equal(retried.body.failureCode, 'generic_decline');
    assert.equal(retried.body.decline, 'soft');
    assert.equal(retried.body.payment.status, 'failed');
    assert.deepEqual(await chargesOfSubscription(id), { rows: 1, keys: 1 });
  });

  test('a one-time payment retried with its key: the same payment, succeeded, charged once', async () => {
    const user = await newCustomer(stack);
    const key = randomUUID();
    const pay = () => requestJson(`${stack.url}/api/v1/payments/process`, { body: ticket, headers: { ...user.headers, 'idempotency-key': key } });

    cutAfterNextStart = true;
    const lost = await pay();
    assert.ok(lost.status >= 500, `the answer is lost: ${lost.status} ${JSON.stringify(lost.body)}`);
    await proxy.restore();

    const retried = await pay();
    assert.equal(retried.status, 201, JSON.stringify(retried.body));
    assert.equal(retried.body.payment.id, idFromIdempotencyKey(user.user.id, 'POST /api/v1/payments/process', key));
    assert.equal(retried.body.payment.status, 'succeeded');
    const rows = await direct.sql`select id from payments where user_id = ${user.user.id}`;
    assert.equal(rows.length, 1);
  });

  test('a payment-method change while past due, sent twice with one key, charges once', async () => {
    const user = await newCustomer(stack);
    const planId = await createPlan(stack);
    const subscribed = await subscribe(stack, user, { planId, paymentMethod: 'pm_card_visa' });
    assert.equal(subscribed.status, 201);
    const id: string = subscribed.body.subscription.id;
    assert.equal((await requestPaymentMethodChange(stack, user, id, 'pm_card_chargeDeclined')).status, 200);
    await waitFor(
      () => getSubscription(stack, user, id),
      (res) => res.body.subscription.status === 'past_due',
      { what: 'the declined renewal' },
    );

    const key = randomUUID();
    const change = () =>
      requestJson(`${stack.url}/api/v1/subscriptions/${id}/payment-method`, {
        body: { paymentMethod: 'pm_card_visa' },
        headers: { ...user.headers, 'idempotency-key': key },
      });
    const first = await change();
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.subscription.status, 'active');
    const chargesAfterFirst = await chargesOfSubscription(id);

    const second = await change();
    assert.equal(second.status, 200);
    assert.equal(second.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(second.body, first.body);
    assert.deepEqual(await chargesOfSubscription(id), chargesAfterFirst);
  });
});

describe('the API process killed in the middle of a subscribe', () => {
  let stack: TestStack;
  const processes: Array<ReturnType<typeof startApiProcess>> = [];

  before(async () => {
    // An API process serves the production queues; no worker polls them until the test says so,
    // so the subscribe's update waits with its workflow started.
    stack = await startTestStack({ serves: ['billing'], taskQueues: TASK_QUEUES, withoutWorkers: true });
  });

  after(async () => {
    for (const api of processes) api.child.kill('SIGKILL');
    await stack?.close();
  });

  test('a retry on a new process: the same subscription, active, charged once', async () => {
    const user = await newCustomer(stack);
    const planId = await createPlan(stack, { interval: 'P1M' });
    const key = randomUUID();
    const body = { planId, paymentMethod: 'pm_card_visa' };
    const id = idFromIdempotencyKey(user.user.id, SUBSCRIBE_SCOPE, key);

    const first = startApiProcess();
    processes.push(first);
    const firstUrl = await first.url;
    const lost = requestJson(`${firstUrl}/api/v1/subscriptions/subscribe`, { body, headers: { ...user.headers, 'idempotency-key': key } }).catch(
      (err: unknown) => err,
    );
    await waitFor(
      () => workflowExists(stack, subscriptionWorkflowId(id)),
      (exists) => exists,
      { what: 'the workflow the first request started' },
    );
    first.child.kill('SIGKILL');
    assert.ok((await lost) instanceof Error, 'the first request got no answer');

    await stack.startWorkers();
    const second = startApiProcess();
    processes.push(second);
    const retried = await requestJson(`${await second.url}/api/v1/subscriptions/subscribe`, {
      body,
      headers: { ...user.headers, 'idempotency-key': key },
    });
    assert.equal(retried.status, 201, JSON.stringify(retried.body));
    assert.equal(retried.body.subscription.id, id);
    assert.equal(retried.body.subscription.status, 'active');
    assert.deepEqual(await chargesOfSubscription(id), { rows: 1, keys: 1 });
  });
});

// After both stacks have stopped (their workflows ended, their activities finished): books at rest.
test('the books of every customer charged here balance', async () => {
  await assertBooksBalance(direct.db, { customers });
});

/** The subscription's charges: payments rows, and the distinct idempotency keys sent to the gateway. */
async function chargesOfSubscription(subscriptionId: string): Promise<{ rows: number; keys: number }> {
  const [counts] = await direct.sql`
    select count(*)::int as rows, count(distinct idempotency_key)::int as keys
    from payments where subscription_id = ${subscriptionId} and kind = 'subscription'`;
  return { rows: counts.rows, keys: counts.keys };
}

/** The client with `afterStart` run once each update-with-start has answered, before its caller sees the answer. */
function cuttingAfterStart(client: Client, afterStart: () => Promise<void>): Client {
  const workflow = new Proxy(client.workflow, {
    get(target, property) {
      if (property === 'executeUpdateWithStart') {
        return async (...args: Parameters<typeof target.executeUpdateWithStart>) => {
          const answer = await target.executeUpdateWithStart(...args);
          await afterStart();
          return answer;
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return new Proxy(client, {
    get(target, property) {
      if (property === 'workflow') return workflow;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

async function workflowExists(stack: TestStack, workflowId: string): Promise<boolean> {
  try {
    await stack.deps.temporal.workflow.getHandle(workflowId).describe();
    return true;
  } catch {
    return false;
  }
}

/** A real API process (workers/api.ts) on a free port; `url` once it listens. */
function startApiProcess() {
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/api.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', RATE_LIMIT_IP_PER_MINUTE: '1000000', RATE_LIMIT_PAYMENTS_PER_USER_PER_MINUTE: '1000000' },
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = (async () => {
    let stopped = false;
    void exited.then(() => (stopped = true));
    for (;;) {
      const match = /"url":"(http:\/\/localhost:\d+)"/.exec(output);
      if (match) return match[1];
      if (stopped) throw new Error(`the API exited before listening:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return { child, url };
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}
