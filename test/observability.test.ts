/**
 * GET /metrics (HTTP latency by route template, business counts read from PostgreSQL) and the
 * request log's ids. Other tests write to the same database at the same time, so business
 * counters are compared before and after this test's own rows: they grow by at least as much.
 */
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bookings, holds, offerings, payments, subscriptions } from '../db/schema';
import { connectDatabase } from '../db/client';
import { createLogger } from '../platform/logger';
import { createTestUser, requestJson, startTestApi, type TestApi, type TestUser } from './support/api';
import { closedLoopbackPort } from './support/payment-fixtures';
import { insertTestPlan } from './support/subscription-fixtures';

/** Sample values of a Prometheus text exposition, keyed `name{label="value",…}` as printed. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

async function scrape(api: TestApi): Promise<{ text: string; samples: Map<string, number> }> {
  const response = await fetch(`${api.url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await response.text();
  return { text, samples: parseMetrics(text) };
}

function value(samples: Map<string, number>, key: string): number {
  const found = samples.get(key);
  assert.ok(found !== undefined, `no sample ${key}`);
  return found;
}

describe('GET /metrics', () => {
  let api: TestApi;
  let user: TestUser;

  before(async () => {
    api = await startTestApi();
    user = await createTestUser(api.deps);
  });

  after(async () => {
    await api.close();
  });

  test('times requests by route template and status, never by raw URL', async () => {
    const id = randomUUID();
    assert.equal((await requestJson(`${api.url}/api/v1/subscriptions/${id}`, { headers: user.headers })).status, 404);
    assert.equal((await requestJson(`${api.url}/nowhere-${id}`)).status, 404);
    const { text, samples } = await scrape(api);
    assert.equal(value(samples, 'http_request_duration_seconds_count{method="GET",route="/api/v1/subscriptions/{id}",status_code="404"}'), 1);
    assert.equal(value(samples, 'http_request_duration_seconds_count{method="GET",route="unmatched",status_code="404"}'), 1);
    assert.ok(samples.has('http_request_duration_seconds_bucket{le="0.1",method="GET",route="/api/v1/subscriptions/{id}",status_code="404"}'));
    assert.ok(!text.includes(id), 'a raw id in a label would make a series per subscription');
    assert.match(text, /^process_cpu_user_seconds_total /m, 'process metrics');
  });

  test('business counts come from the projection tables, so every process sees the same numbers', async () => {
    const expected: Record<string, number> = {
      renewal_succeeded: 2,
      renewal_failed: 1,
      dunning_recovery: 1,
      subscription_expired: 1,
      hold_expired: 1,
      booking_confirmed: 4,
      refund: 1,
    };
    const counter = (event: string) => `billing_events_total{event="${event}"}`;
    const before = (await scrape(api)).samples;
    const beforeRefunded = before.get('billing_refunded_amount_minor_total{currency="usd"}') ?? 0;

    const { db } = api.deps;
    const plan = await insertTestPlan(db);
    const subscriptionIds = [randomUUID(), randomUUID()];
    await db.insert(subscriptions).values(
      subscriptionIds.map((id, i) => ({
        id,
        userId: user.user.id,
        planId: plan.planId,
        status: i === 0 ? ('expired' as const) : ('active' as const),
        paymentMethod: 'pm_card_visa',
        anchorDate: new Date(),
        workflowId: `subscription-${id}`,
      })),
    );
    const charge = (overrides: Partial<typeof payments.$inferInsert>) => ({
      kind: 'subscription' as const,
      userId: user.user.id,
      subscriptionId: subscriptionIds[1],
      amount: 1999,
      currency: 'usd',
      status: 'succeeded' as const,
      idempotencyKey: `metrics-test-${randomUUID()}`,
      ...overrides,
    });
    await db.insert(payments).values([
      charge({ cycle: 1 }), // the first charge: not a renewal
      charge({ cycle: 2 }), // a renewal, paid
      charge({ cycle: 3, attempt: 1, status: 'failed' }), // a renewal that failed…
      charge({ cycle: 3, attempt: 2 }), // …and its dunning retry that recovered the period
      charge({ kind: 'refund', subscriptionId: null, amount: 700 }),
    ]);
    const [offering] = await db
      .insert(offerings)
      .values({ name: 'Metrics', kind: 'seating', startsAt: new Date(Date.now() + 86_400_000), endsAt: new Date(Date.now() + 90_000_000) })
      .returning();
    const holdId = randomUUID();
    await db.insert(holds).values({
      id: holdId,
      userId: user.user.id,
      offeringId: offering.id,
      unitIds: [randomUUID()],
      status: 'expired',
      expiresAt: new Date(),
      workflowId: `hold-${holdId}`,
    });
    await db.insert(bookings).values(
      (['confirmed', 'canceled', 'checked_in', 'no_show', 'failed'] as const).map((status) => ({
        userId: user.user.id,
        offeringId: offering.id,
        unitIds: [randomUUID()],
        status,
        amount: 2500,
        currency: 'usd',
        workflowId: `booking-${randomUUID()}`,
      })),
    );

    const { samples: afterwards } = await scrape(api);
    for (const [event, least] of Object.entries(expected)) {
      const growth = value(afterwards, counter(event)) - (before.get(counter(event)) ?? 0);
      assert.ok(growth >= least, `${event} grew by ${growth}, expected at least ${least}`);
    }
    assert.ok(value(afterwards, 'billing_refunded_amount_minor_total{currency="usd"}') - beforeRefunded >= 700);
    assert.ok(value(afterwards, 'billing_subscriptions{status="expired"}') >= 1);
    assert.ok(value(afterwards, 'billing_holds{status="expired"}') >= 1);
    assert.ok(value(afterwards, 'billing_bookings{status="failed"}') >= 1);
    assert.ok(value(afterwards, 'billing_payments{kind="subscription",status="failed"}') >= 1);
    assert.equal(value(afterwards, 'billing_projection_metrics_up'), 1);
  });

  test('with PostgreSQL unreachable the scrape still answers, saying the business metrics are missing', async () => {
    const database = connectDatabase(`postgres://postgres@127.0.0.1:${await closedLoopbackPort()}/none`, { max: 1 });
    const cutOff = await startTestApi({ db: database.db, sql: database.sql });
    try {
      const { samples } = await scrape(cutOff);
      assert.equal(value(samples, 'billing_projection_metrics_up'), 0);
      // Never a counter at 0 that jumps to its total once PostgreSQL answers.
      assert.deepEqual(
        [...samples.keys()].filter((key) => key.startsWith('billing_events_total')),
        [],
      );
    } finally {
      await cutOff.close();
      await database.close();
    }
  });
});

describe('request logs', () => {
  const lines: string[] = [];
  let api: TestApi;
  let user: TestUser;

  before(async () => {
    const logger = createLogger({ LOG_LEVEL: 'info', NODE_ENV: 'test' }, { write: (line) => void lines.push(line) });
    api = await startTestApi({ logger });
    user = await createTestUser(api.deps);
  });

  after(async () => {
    await api.close();
  });

  test("a request that reaches a workflow logs the request's id, the user's id and the workflow's id", async () => {
    // A subscription row whose workflow is gone: the cancel reaches Temporal and is refused.
    const plan = await insertTestPlan(api.deps.db);
    const id = randomUUID();
    await api.deps.db.insert(subscriptions).values({
      id,
      userId: user.user.id,
      planId: plan.planId,
      status: 'active',
      paymentMethod: 'pm_card_visa',
      anchorDate: new Date(),
      workflowId: `subscription-${id}`,
    });
    const answer = await requestJson(`${api.url}/api/v1/subscriptions/cancel`, {
      body: { subscriptionId: id },
      headers: { ...user.headers, 'x-request-id': `trace-${id}` },
    });
    assert.equal(answer.status, 409);

    const entry = lines.map((line) => JSON.parse(line) as Record<string, any>).find((e) => e.reqId === `trace-${id}` && e.res);
    assert.ok(entry, 'the response line of the request');
    assert.equal(entry.userId, user.user.id);
    assert.equal(entry.workflowId, `subscription-${id}`);
    assert.equal(entry.res.statusCode, 409);
  });
});
