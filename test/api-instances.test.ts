/**
 * Two API processes (workers/api.ts) on the same PostgreSQL, Redis and Temporal, as behind a load
 * balancer, with one worker process: what a client sees must not depend on which instance answers
 * it. Live events, rate limits and idempotent replays live in Redis and PostgreSQL, not in a
 * process. Each instance serves /metrics on its internal address only.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { PROBLEM_CONTENT_TYPE } from '../api/problem';
import { connectTestDeps, createTestUser, requestJson, type TestDeps, type TestUser } from './support/api';
import { createNamespace, startAppProcess, type AppProcess } from './support/app-process';
import { offeringBody } from './support/booking-stack';
import { openSseStream } from './support/event-stream-client';

const PAYMENTS_PER_USER_PER_MINUTE = 10;

interface Instance {
  name: string;
  url: string;
  metricsUrl: string;
}

async function startApiInstance(name: string, env: NodeJS.ProcessEnv, running: AppProcess[]): Promise<Instance> {
  const api = startAppProcess('workers/api.ts', env);
  running.push(api);
  const [, metricsUrl] = await api.waitFor(/"metricsUrl":"([^"]+)"/);
  const [, url] = await api.waitFor(/API listening on (http:\/\/localhost:\d+)/);
  return { name, url, metricsUrl };
}

describe('two API instances behind one address', () => {
  const running: AppProcess[] = [];
  let shared: TestDeps;
  let a: Instance;
  let b: Instance;
  let staff: TestUser;

  before(async () => {
    const namespace = `api-instances-${randomUUID()}`;
    await createNamespace(process.env.TEMPORAL_ADDRESS!, namespace);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      LOG_LEVEL: 'info',
      PORT: '0',
      // Each instance its own internal port, as each process of a deploy.
      API_METRICS_ADDRESS: '127.0.0.1:0',
      TEMPORAL_NAMESPACE: namespace,
      RATE_LIMIT_PAYMENTS_PER_USER_PER_MINUTE: String(PAYMENTS_PER_USER_PER_MINUTE),
      // Every test's requests come from loopback; only the per-user limit is under test here.
      RATE_LIMIT_IP_PER_MINUTE: '1000000',
    };
    const worker = startAppProcess('workers/worker.ts', env);
    running.push(worker);
    [a, b] = await Promise.all([startApiInstance('A', env, running), startApiInstance('B', env, running), worker.waitFor(/workers running/)]);
    shared = await connectTestDeps();
    staff = await createTestUser(shared.deps, { role: 'staff' });
  });

  after(async () => {
    const codes = await Promise.all(running.map((p) => p.stop()));
    await shared?.close();
    assert.deepEqual(codes, [0, 0, 0], 'every process drained and exited 0');
  });

  test('each instance serves /metrics on its internal address only; its public port answers 404', async () => {
    for (const instance of [a, b]) {
      const publicMetrics = await fetch(`${instance.url}/metrics`);
      assert.equal(publicMetrics.status, 404, instance.name);
      assert.match(publicMetrics.headers.get('content-type') ?? '', new RegExp(`^${PROBLEM_CONTENT_TYPE.replace('+', '\\+')}`));
      const documented = await requestJson(`${instance.url}/openapi.json`);
      assert.equal(documented.body.paths['/metrics'], undefined, 'the public document does not offer /metrics');

      const internal = await fetch(instance.metricsUrl);
      assert.equal(internal.status, 200, instance.name);
      const text = await internal.text();
      assert.match(text, /^billing_projection_metrics_up 1$/m);
      // The public requests just made are timed, and shown on the internal port.
      assert.match(text, /^http_request_duration_seconds_count\{method="GET",route="\/openapi.json",status_code="200"\} \d+$/m);
      assert.equal((await fetch(new URL('/api/v1/plans', instance.metricsUrl))).status, 404, 'the internal port serves only /metrics');
    }
    assert.notEqual(a.metricsUrl, b.metricsUrl);
  });

  test('a client streaming from A sees the unit events of a hold made through B', async () => {
    const offering = await requestJson(`${a.url}/api/v1/admin/offerings`, { body: offeringBody({}, 2), headers: staff.headers });
    assert.equal(offering.status, 201, JSON.stringify(offering.body));
    const [unit] = offering.body.offering.units as Array<{ id: string }>;
    const stream = await openSseStream(`${a.url}/api/v1/offerings/${offering.body.offering.id}/events`);
    try {
      assert.equal((await stream.next())?.event, 'snapshot');
      const alice = await createTestUser(shared.deps);
      const held = await requestJson(`${b.url}/api/v1/bookings/holds`, {
        body: { offeringId: offering.body.offering.id, unitIds: [unit.id] },
        headers: alice.headers,
      });
      assert.equal(held.status, 201, JSON.stringify(held.body));
      const event = await stream.next();
      assert.equal(event?.event, 'units');
      assert.deepEqual(JSON.parse(event?.data ?? '{}').units, [{ id: unit.id, status: 'held' }]);
    } finally {
      stream.close();
    }
  });

  test('the same Idempotency-Key sent to A and then to B replays the first answer', async () => {
    const offering = await requestJson(`${a.url}/api/v1/admin/offerings`, { body: offeringBody({}, 2), headers: staff.headers });
    assert.equal(offering.status, 201, JSON.stringify(offering.body));
    const bob = await createTestUser(shared.deps);
    const request = {
      body: { offeringId: offering.body.offering.id, unitIds: [offering.body.offering.units[0].id] },
      headers: { ...bob.headers, 'idempotency-key': randomUUID() },
    };
    const first = await requestJson(`${a.url}/api/v1/bookings/holds`, request);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const repeat = await requestJson(`${b.url}/api/v1/bookings/holds`, request);
    assert.equal(repeat.status, 201, JSON.stringify(repeat.body));
    assert.equal(repeat.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(repeat.body, first.body);
    const [{ count }] = await shared.deps.sql`select count(*)::int as count from holds where user_id = ${bob.user.id}`;
    assert.equal(count, 1, 'one hold, not two');
  });

  test('14 payment requests spread over A and B: the ones past the per-user limit are 429s', async () => {
    const carol = await createTestUser(shared.deps);
    const statuses: number[] = [];
    for (let i = 0; i < 14; i++) {
      const instance = i % 2 === 0 ? a : b;
      // An empty body: refused as a 400 after the limit counted it, so nothing is charged.
      statuses.push((await requestJson(`${instance.url}/api/v1/payments/process`, { body: {}, headers: carol.headers })).status);
    }
    assert.deepEqual(
      statuses.map((status) => status === 429),
      [...Array<boolean>(PAYMENTS_PER_USER_PER_MINUTE).fill(false), ...Array<boolean>(14 - PAYMENTS_PER_USER_PER_MINUTE).fill(true)],
      `statuses: ${statuses.join(', ')}`,
    );
  });
});
