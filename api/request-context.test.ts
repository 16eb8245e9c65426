import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DrizzleQueryError } from 'drizzle-orm';
import express from 'express';
import { createLogger } from '../platform/logger';
import { connectTestDeps, createTestUser, listen, requestJson, type TestDeps, type TestServer, type TestUser } from '../test/support/api';
import { createApp } from './app';
import { requireAuth } from './auth';
import { problemHandler } from './problem';
import { requestLogger } from './request-context';

describe('request logging', () => {
  const output: string[] = [];
  const entries = () => output.map((line) => JSON.parse(line) as Record<string, any>);
  let services: TestDeps;
  let api: TestServer;
  let careless: TestServer;
  let user: TestUser;

  before(async () => {
    const logger = createLogger({ LOG_LEVEL: 'info', NODE_ENV: 'test' }, { write: (line) => void output.push(line) });
    services = await connectTestDeps({ logger });
    user = await createTestUser(services.deps);
    api = await listen(createApp(services.deps));

    // A route that logs what it received, the mistake redaction exists to survive.
    const app = express();
    app.use(requestLogger(logger));
    app.use(express.json());
    app.post('/echo', requireAuth(services.deps), (req, res) => {
      req.log.info({ body: req.body, headers: req.headers }, 'received');
      res.json({ ok: true });
    });
    app.get('/failed-query', () => {
      throw new DrizzleQueryError('select id from users where password_hash = $1', ['hash-param-do-not-log'], new Error('query failed'));
    });
    app.use(problemHandler(logger));
    careless = await listen(app);
  });

  after(async () => {
    await api.close();
    await careless.close();
    await services.close();
  });

  test('logs neither the bearer token nor the password of a request', async () => {
    const secretPassword = 'hunter2-do-not-log';
    await requestJson(`${api.url}/api/v1/auth/login`, {
      body: { email: 'nobody@example.test', password: secretPassword },
      headers: { authorization: `Bearer ${user.token}`, cookie: 'session=cookie-value-do-not-log' },
    });
    await requestJson(`${careless.url}/echo`, {
      body: { password: secretPassword, paymentMethod: { card: { number: '4242424242424242', cvc: '123' } } },
      headers: { ...user.headers, 'stripe-signature': 't=1,v1=signature-do-not-log' },
    });

    const text = output.join('');
    for (const secret of [user.token, secretPassword, 'cookie-value-do-not-log', '4242424242424242', 'signature-do-not-log']) {
      assert.ok(!text.includes(secret), `the log contains ${secret}`);
    }
    const received = entries().find((entry) => entry.msg === 'received');
    assert.ok(received, 'the careless route logged');
    assert.equal(received.body.password, '[REDACTED]');
    assert.equal(received.headers.authorization, '[REDACTED]');
  });

  test("a response line redacts secret fields in the request's headers, query and parameters", async () => {
    const answer = await requestJson(`${api.url}/api/v1/bookings/my?limit=x&token=query-token-do-not-log&apiKey=key-do-not-log`, {
      headers: {
        ...user.headers,
        'x-request-id': 'trace-logging-3',
        cookie: 'session=cookie-do-not-log',
        'x-api-key': 'header-key-do-not-log',
        'stripe-signature': 't=1,v1=signature-do-not-log',
      },
    });
    assert.equal(answer.status, 400);
    const line = entries().find((entry) => entry.reqId === 'trace-logging-3' && entry.msg === 'request completed');
    assert.ok(line, 'the 400 was logged');
    assert.equal(line.level, 'warn');
    assert.equal(line.userId, user.user.id);
    assert.equal(line.res.statusCode, 400);
    for (const header of ['authorization', 'cookie', 'x-api-key', 'stripe-signature']) assert.equal(line.req.headers[header], '[REDACTED]', header);
    assert.equal(line.req.query.token, '[REDACTED]');
    assert.equal(line.req.query.apiKey, '[REDACTED]');
    assert.equal(line.req.query.limit, 'x', 'other fields are kept');
    const { url, ...rest } = line.req;
    assert.match(url, /^\/api\/v1\/bookings\/my/);
    for (const secret of [
      user.token,
      'query-token-do-not-log',
      'key-do-not-log',
      'cookie-do-not-log',
      'header-key-do-not-log',
      'signature-do-not-log',
    ]) {
      assert.ok(!JSON.stringify({ ...line, req: rest }).includes(secret), `the line contains ${secret}`);
    }
  });

  test('every line of a request carries its request id, and the user id once authenticated', async () => {
    const answer = await requestJson(`${careless.url}/echo`, {
      body: { hello: 'world' },
      headers: { ...user.headers, 'x-request-id': 'trace-logging-1' },
    });
    assert.equal(answer.status, 200);

    const lines = entries().filter((entry) => entry.reqId === 'trace-logging-1');
    assert.deepEqual(lines.map((entry) => entry.msg).sort(), ['received', 'request completed']);
    for (const line of lines) assert.equal(line.userId, user.user.id);
  });

  test("an error logged through the request's logger keeps a failed query's parameters out", async () => {
    const answer = await requestJson(`${careless.url}/failed-query`, { headers: { 'x-request-id': 'trace-logging-2' } });
    assert.equal(answer.status, 500);
    const logged = entries().find((entry) => entry.reqId === 'trace-logging-2' && entry.msg === 'unhandled error');
    assert.ok(logged, 'the error was logged with the request id');
    assert.match(logged.err.query, /password_hash/);
    assert.ok(!output.join('').includes('hash-param-do-not-log'), 'the log contains the query parameter');
  });
});
