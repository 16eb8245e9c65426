import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import express from 'express';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import Stripe from 'stripe';
import { createLogger } from '../platform/logger';
import { closedLoopbackPort } from '../test/support/payment-fixtures';
import { listen, requestJson, startTestApi, type TestApi, type TestServer } from '../test/support/api';
import { HttpProblem, notFoundHandler, problemHandler } from './problem';
import { requestLogger } from './request-context';

describe('problem responses', () => {
  const logLines: string[] = [];
  let server: TestServer;
  let deadPostgres: postgres.Sql;
  let deadRedis: Redis;
  let deadTemporal: Connection;

  before(async () => {
    deadPostgres = postgres({ host: '127.0.0.1', port: await closedLoopbackPort(), max: 1, connect_timeout: 2 });
    deadRedis = new Redis({
      host: '127.0.0.1',
      port: await closedLoopbackPort(),
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    deadRedis.on('error', () => {});
    deadTemporal = Connection.lazy({ address: `127.0.0.1:${await closedLoopbackPort()}` });
    const temporal = new Client({ connection: deadTemporal });

    const logger = createLogger({ LOG_LEVEL: 'info', NODE_ENV: 'test' }, { write: (line) => void logLines.push(line) });
    const app = express();
    app.use(requestLogger(logger));
    app.get('/declined', () => {
      throw new HttpProblem(402, 'Payment declined', 'The card was declined.', { declineCode: 'card_declined' });
    });
    app.get('/bug', () => {
      throw new Error('internal detail that must not leak');
    });
    app.get('/postgres-down', async () => {
      await deadPostgres`select 1`;
    });
    app.get('/redis-down', async () => {
      await deadRedis.get('anything');
    });
    app.get('/temporal-down', async () => {
      await deadTemporal.withDeadline(Date.now() + 1_000, () => temporal.workflow.getHandle('missing').describe());
    });
    app.get('/gateway-down', async () => {
      // A Stripe client pointed at a closed port: what a gateway outage looks like to the API.
      const stripe = new Stripe('sk_test_123', { host: '127.0.0.1', port: await closedLoopbackPort(), protocol: 'http', maxNetworkRetries: 0 });
      await stripe.customers.create({ email: 'down@example.test' });
    });
    app.use(notFoundHandler());
    app.use(problemHandler(logger));
    server = await listen(app);
  });

  after(async () => {
    await server.close();
    await deadPostgres.end({ timeout: 1 });
    // A client that gave up connecting is already closed; disconnect() would wait on a 2 s timer.
    if (deadRedis.status !== 'end') deadRedis.disconnect();
    await deadTemporal.close();
  });

  test('an HttpProblem is rendered as application/problem+json with its extra members', async () => {
    const answer = await requestJson(`${server.url}/declined`);
    assert.equal(answer.status, 402);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.deepEqual(answer.body, {
      type: 'about:blank',
      title: 'Payment declined',
      status: 402,
      detail: 'The card was declined.',
      instance: '/declined',
      requestId: answer.headers.get('x-request-id'),
      declineCode: 'card_declined',
    });
  });

  test('an unexpected error is a 500 that shows no message or stack, and is logged with the request id', async () => {
    const answer = await requestJson(`${server.url}/bug`);
    assert.equal(answer.status, 500);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const text = JSON.stringify(answer.body);
    assert.ok(!text.includes('internal detail'));
    assert.ok(!text.includes('problem.test.ts'));

    const requestId = answer.headers.get('x-request-id');
    const logged = logLines.map((line) => JSON.parse(line)).find((entry) => entry.msg === 'unhandled error');
    assert.ok(logged, 'the error was logged');
    assert.equal(logged.reqId, requestId);
    assert.match(logged.err.message, /internal detail/);
  });

  for (const dependency of ['postgres', 'redis', 'temporal', 'gateway']) {
    test(`${dependency} unreachable is a 503 problem the client may retry`, async () => {
      const answer = await requestJson(`${server.url}/${dependency}-down`);
      assert.equal(answer.status, 503);
      assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.ok(answer.headers.get('retry-after'));
    });
  }

  test('an unknown route is a 404 problem', async () => {
    const answer = await requestJson(`${server.url}/nowhere`, { method: 'DELETE' });
    assert.equal(answer.status, 404);
    assert.equal(answer.body.title, 'Not Found');
  });
});

describe('body parsing in createApp', () => {
  let api: TestApi;

  before(async () => {
    api = await startTestApi();
  });

  after(async () => {
    await api.close();
  });

  test('a body over the size limit is a 413 problem', async () => {
    const answer = await requestJson(`${api.url}/api/v1/auth/login`, {
      body: { email: 'a@example.test', password: 'x'.repeat(200_000) },
    });
    assert.equal(answer.status, 413);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
  });

  test('webhook paths are not parsed as JSON, so their routers can read the raw body', async () => {
    const response = await fetch(`${api.url}/api/v1/webhooks/unmounted-in-this-test`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: 'not json at all',
    });
    const text = await response.text();
    assert.ok(!text.includes('not valid JSON'), `the JSON parser rejected a webhook body: ${text}`);
  });
});
