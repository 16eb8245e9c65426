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

/** The app's real Redis client, counting the readiness checks that reach Redis. */
class PingCountingRedis extends Redis {
  pings = 0;
  override ping(...args: unknown[]): Promise<'PONG'> {
    this.pings += 1;
    return (super.ping as (...a: unknown[]) => Promise<'PONG'>)(...args);
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

describe('readiness under a flood of probes', () => {
  let api: TestApi;
  let redis: PingCountingRedis;

  before(async () => {
    redis = new PingCountingRedis(process.env.REDIS_URL!);
    api = await startTestApi({ redis });
  });

  after(async () => {
    await api.close();
    if (redis.status !== 'end') await redis.quit();
  });

  test('200 probes at once share one check of the dependencies, and a result is reused for a second at most', async () => {
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 200 }, () => requestJson(`${api.url}/readyz`)));
    const elapsedMs = Date.now() - started;
    assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([200]));
    // One check per second of the flood at most (a slow machine may spread the probes over more
    // than one): without sharing every probe would ping Redis, 200 times.
    assert.ok(redis.pings >= 1 && redis.pings <= 1 + Math.ceil(elapsedMs / 1000), `${redis.pings} checks in ${elapsedMs} ms`);

    const before = redis.pings;
    await sleep(1_100);
    assert.equal((await requestJson(`${api.url}/readyz`)).status, 200);
    assert.equal(redis.pings, before + 1, 'a result older than a second is checked anew');
  });

  test('a dependency that stops answering turns /readyz into a 503 naming it', async () => {
    assert.equal((await requestJson(`${api.url}/readyz`)).status, 200);
    redis.disconnect();
    let answer = await requestJson(`${api.url}/readyz`);
    // The previous result may still be fresh; the next check sees Redis gone.
    for (let i = 0; i < 50 && answer.status === 200; i++) {
      await sleep(100);
      answer = await requestJson(`${api.url}/readyz`);
    }
    assert.equal(answer.status, 503);
    assert.deepEqual(answer.body.unreachable, ['redis']);
  });
});
