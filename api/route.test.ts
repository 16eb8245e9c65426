import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import express, { type RequestHandler } from 'express';
import { z } from 'zod';
import { connectTestDeps, createTestUser, listen, requestJson, type TestDeps, type TestServer } from '../test/support/api';
import { json, type ApiOperation } from './contract';
import { notFoundHandler, problemHandler } from './problem';
import { requestLogger } from './request-context';
import { apiRouter, expressPath } from './route';

const answer = json('Done', z.strictObject({ calls: z.int(), id: z.string() }));

const thingApi = {
  staffCreate: {
    method: 'post',
    path: '/api/v1/things/{id}/touch',
    summary: 'Staff touch a thing',
    auth: 'staff',
    idempotent: true,
    responses: { 200: answer },
  },
  publicRead: {
    method: 'get',
    path: '/api/v1/things/{id}',
    summary: 'Anyone reads a thing',
    auth: 'public',
    responses: { 200: answer },
  },
} satisfies Record<string, ApiOperation>;

describe('expressPath', () => {
  test('turns OpenAPI parameters into Express ones and leaves literal segments alone', () => {
    assert.equal(expressPath('/api/v1/subscriptions/{id}/payment-method'), '/api/v1/subscriptions/:id/payment-method');
    assert.equal(expressPath('/api/v1/subscriptions/plans'), '/api/v1/subscriptions/plans');
  });
});

describe('a route served from its declaration', () => {
  let services: TestDeps;
  let server: TestServer;
  let calls = 0;
  const order: string[] = [];

  before(async () => {
    services = await connectTestDeps();
    const { router, route } = apiRouter(services.deps);
    const marker: RequestHandler = (_req, _res, next) => {
      order.push('middleware');
      next();
    };
    route(thingApi.staffCreate, marker, (req, res) => {
      calls += 1;
      res.json({ calls, id: req.params.id });
    });
    route(thingApi.publicRead, (req, res) => {
      res.json({ calls, id: req.params.id });
    });
    const app = express()
      .use(requestLogger(services.deps.logger))
      .use(express.json())
      .use(router)
      .use(notFoundHandler())
      .use(problemHandler(services.deps.logger));
    server = await listen(app);
  });

  after(async () => {
    await server.close();
    await services.close();
  });

  test('is mounted at its declared method and path, parameters included', async () => {
    const read = await requestJson(`${server.url}/api/v1/things/abc`);
    assert.equal(read.status, 200);
    assert.equal(read.body.id, 'abc');
    assert.equal((await requestJson(`${server.url}/api/v1/things/abc/touch`)).status, 404, 'GET is not declared there');
  });

  test('enforces the auth its declaration names: no token 401, a customer 403, staff through', async () => {
    const url = `${server.url}/api/v1/things/t1/touch`;
    assert.equal((await requestJson(url, { body: {} })).status, 401);
    const customer = await createTestUser(services.deps);
    assert.equal((await requestJson(url, { body: {}, headers: customer.headers })).status, 403);
    assert.equal(order.length, 0, 'the middlewares run after the guards');
    const staff = await createTestUser(services.deps, { role: 'staff' });
    const done = await requestJson(url, { body: {}, headers: staff.headers });
    assert.equal(done.status, 200);
    assert.deepEqual(order, ['middleware']);
  });

  test('replays an Idempotency-Key when declared idempotent', async () => {
    const staff = await createTestUser(services.deps, { role: 'staff' });
    const headers = { ...staff.headers, 'idempotency-key': randomUUID() };
    const url = `${server.url}/api/v1/things/t2/touch`;
    const first = await requestJson(url, { body: { n: 1 }, headers });
    const again = await requestJson(url, { body: { n: 1 }, headers });
    assert.equal(first.status, 200);
    assert.deepEqual(again.body, first.body, 'the handler did not run again');
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
  });

  test('refuses a guarded declaration on a router built without what its guards need', () => {
    assert.throws(() => apiRouter().route(thingApi.staffCreate, (_req, res) => res.end()), /needs guards/);
  });
});
