import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { closedLoopbackPort } from '../test/support/payment-fixtures';
import { requestJson, startTestApi, type TestApi } from '../test/support/api';

describe('health and readiness', () => {
  let api: TestApi;

  before(async () => {
    api = await startTestApi();
  });

  after(async () => {
    await api.close();
  });

  test('/healthz answers 200 while the process is up', async () => {
    const answer = await requestJson(`${api.url}/healthz`);
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { status: 'ok' });
  });

  test('/readyz answers 200 when PostgreSQL, Redis and Temporal answer', async () => {
    const answer = await requestJson(`${api.url}/readyz`);
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { status: 'ready', checks: { postgres: 'ok', redis: 'ok', temporal: 'ok' } });
  });

  test('every answer carries a request id, the caller’s when it sent a sane one', async () => {
    const generated = await requestJson(`${api.url}/healthz`);
    assert.match(generated.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);

    const echoed = await requestJson(`${api.url}/healthz`, { headers: { 'x-request-id': 'trace-abc.123' } });
    assert.equal(echoed.headers.get('x-request-id'), 'trace-abc.123');

    const replaced = await requestJson(`${api.url}/healthz`, { headers: { 'x-request-id': 'bad id with spaces' } });
    assert.notEqual(replaced.headers.get('x-request-id'), 'bad id with spaces');

    const problem = await requestJson(`${api.url}/nowhere`, { headers: { 'x-request-id': 'trace-404' } });
    assert.equal(problem.status, 404);
    assert.equal(problem.body.requestId, 'trace-404');
  });
});

describe('readiness with Redis unreachable', () => {
  let api: TestApi;
  let deadRedis: Redis;

  before(async () => {
    deadRedis = new Redis({
      host: '127.0.0.1',
      port: await closedLoopbackPort(),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    deadRedis.on('error', () => {});
    api = await startTestApi({ redis: deadRedis });
  });

  after(async () => {
    await api.close();
    // A client that gave up connecting is already closed; disconnect() would wait on a 2 s timer.
    if (deadRedis.status !== 'end') deadRedis.disconnect();
  });

  test('/readyz answers a 503 problem naming Redis, and only Redis', async () => {
    const answer = await requestJson(`${api.url}/readyz`);
    assert.equal(answer.status, 503);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.deepEqual(answer.body.unreachable, ['redis']);
    assert.deepEqual(answer.body.checks, { postgres: 'ok', redis: 'unreachable', temporal: 'ok' });
    assert.match(answer.body.detail, /redis/);
  });

  test('/healthz still answers 200: the process itself is fine', async () => {
    assert.equal((await requestJson(`${api.url}/healthz`)).status, 200);
  });
});
