/**
 * Proves each real server the project stands on is exercised: the Java time-skipping server, the
 * Temporal dev server, PostgreSQL with the committed migrations, Redis and stripe-mock.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { bundleWorkflowCode, DefaultLogger, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import Redis from 'ioredis';
import Stripe from 'stripe';
import { connectDatabase, migrateDatabase, type DatabaseHandle } from '../db/client';
import { connectDevServer, createTimeSkippingEnv, uniqueTaskQueue } from './support/temporal';
import { greet, sleepFor, type PlatformProbeActivities } from './support/workflows';

const DAY_MS = 24 * 60 * 60 * 1000;

function probeActivities(): PlatformProbeActivities {
  return { describeWorker: async () => 'a real worker' };
}

describe('temporal', () => {
  let workflowBundle: WorkflowBundleWithSourceMap;

  before(async () => {
    workflowBundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('./support/workflows'),
      logger: new DefaultLogger('WARN'),
    });
  });

  test('a 30-day sleep completes on the time-skipping server', async () => {
    const env = await createTimeSkippingEnv();
    try {
      const taskQueue = uniqueTaskQueue('platform');
      const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle, activities: probeActivities() });
      const elapsed = await worker.runUntil(
        env.client.workflow.execute(sleepFor, { args: [30 * DAY_MS], taskQueue, workflowId: `sleep-${randomUUID()}` }),
      );
      assert.ok(elapsed >= 30 * DAY_MS, `workflow time advanced ${elapsed} ms`);
    } finally {
      await env.teardown();
    }
  });

  test('a workflow and its activity run on the dev server', async () => {
    const server = await connectDevServer();
    try {
      const taskQueue = uniqueTaskQueue('platform');
      const worker = await Worker.create({ connection: server.nativeConnection, taskQueue, workflowBundle, activities: probeActivities() });
      const greeting = await worker.runUntil(
        server.client.workflow.execute(greet, { args: ['platform'], taskQueue, workflowId: `greet-${randomUUID()}` }),
      );
      assert.equal(greeting, 'hello platform from a real worker');
    } finally {
      await server.close();
    }
  });
});

describe('postgresql', () => {
  let database: DatabaseHandle;

  before(async () => {
    // Applying twice proves migrations are idempotent, as start-up of several processes needs.
    await migrateDatabase(process.env.DATABASE_URL!);
    await migrateDatabase(process.env.DATABASE_URL!);
    database = connectDatabase(process.env.DATABASE_URL!, { max: 2 });
  });

  after(() => database.close());

  test('the migrations created every table', async () => {
    const rows = await database.sql<{ table_name: string }[]>`
      select table_name from information_schema.tables where table_schema = 'public'`;
    const tables = new Set(rows.map((row) => row.table_name));
    for (const table of [
      'users',
      'plans',
      'subscriptions',
      'payments',
      'notifications',
      'webhook_events',
      'offerings',
      'units',
      'holds',
      'bookings',
      'unit_claims',
      'audit_log',
      'idempotency_records',
    ]) {
      assert.ok(tables.has(table), `table ${table} exists`);
    }
  });

  test('a second payment with the same idempotency key is rejected', async () => {
    const [user] = await database.sql<{ id: string }[]>`
      insert into users (email, password_hash, name)
      values (${`platform-${randomUUID()}@example.test`}, 'not-a-real-hash', 'Platform Test')
      returning id`;
    const idempotencyKey = `platform-${randomUUID()}`;
    const insertPayment = () => database.sql`
      insert into payments (kind, user_id, amount, currency, status, idempotency_key)
      values ('one_time', ${user.id}, 1200, 'EUR', 'pending', ${idempotencyKey})`;

    await insertPayment();
    await assert.rejects(insertPayment(), (error: { code?: string; constraint_name?: string }) => {
      assert.equal(error.code, '23505');
      assert.match(error.constraint_name ?? '', /idempotency_key/);
      return true;
    });
  });

  test('a webhook event is stored once', async () => {
    const eventId = `evt_${randomUUID()}`;
    const insertEvent = () => database.sql`
      insert into webhook_events (id, type, payload) values (${eventId}, 'invoice.paid', '{}'::jsonb)`;

    await insertEvent();
    await assert.rejects(insertEvent(), { code: '23505' });
  });
});

describe('redis', () => {
  test('a value round-trips and SET NX refuses a second holder', async () => {
    const redis = new Redis(process.env.REDIS_URL!, { lazyConnect: true });
    try {
      await redis.connect();
      const key = `platform:${randomUUID()}`;
      assert.equal(await redis.set(key, 'first', 'PX', 60_000, 'NX'), 'OK');
      assert.equal(await redis.set(key, 'second', 'PX', 60_000, 'NX'), null);
      assert.equal(await redis.get(key), 'first');
      await redis.del(key);
    } finally {
      redis.disconnect();
    }
  });
});

describe('stripe', () => {
  test('the stripe client is answered by stripe-mock', async () => {
    const url = new URL(process.env.STRIPE_MOCK_URL!);
    const stripe = new Stripe('sk_test_123', {
      host: url.hostname,
      port: Number(url.port),
      protocol: 'http',
      maxNetworkRetries: 0,
    });
    const customer = await stripe.customers.create({ email: `platform-${randomUUID()}@example.test` });
    assert.match(customer.id, /^cus_/);
    const intent = await stripe.paymentIntents.create({
      amount: 1200,
      currency: 'eur',
      customer: customer.id,
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    assert.equal(intent.object, 'payment_intent');
  });
});
