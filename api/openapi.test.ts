import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { Express } from 'express';
import { connectTestDeps, createTestUser, listen, requestJson, type TestDeps, type TestServer } from '../test/support/api';
import { createApp } from './app';
import { openApiDocument } from './openapi';

/** What router 2.3's `listRoutes()` answers for each layer of a router. */
interface ListedRoute {
  path: string | RegExp;
  methods: string[] | undefined;
  router: { listRoutes(): ListedRoute[] } | undefined;
}

/** "GET /api/v1/subscriptions/{id}" for every route the app mounts, walking nested routers. */
function mountedOperations(app: Express): string[] {
  const walk = (router: { listRoutes(): ListedRoute[] }, prefix: string): string[] =>
    router.listRoutes().flatMap((route) => {
      assert.equal(typeof route.path, 'string', `a route mounted on a RegExp cannot be documented: ${String(route.path)}`);
      const path = joinPaths(prefix, route.path as string);
      if (route.router) return walk(route.router, path);
      return (route.methods ?? []).filter((method) => method !== 'HEAD').map((method) => `${method} ${path.replace(/:(\w+)/g, '{$1}')}`);
    });
  return walk((app as unknown as { router: { listRoutes(): ListedRoute[] } }).router, '');
}

function joinPaths(prefix: string, path: string): string {
  const joined = `${prefix}/${path}`.replace(/\/+/g, '/');
  return joined.length > 1 ? joined.replace(/\/$/, '') : joined;
}

function documentedOperations(document: Record<string, any>): string[] {
  return Object.entries(document.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
    Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
  );
}

describe('the OpenAPI document', () => {
  let services: TestDeps;
  let api: TestServer;
  let app: Express;

  before(async () => {
    services = await connectTestDeps();
    app = createApp(services.deps);
    api = await listen(app);
  });

  after(async () => {
    await api.close();
    await services.close();
  });

  test('is valid OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(openApiDocument());
    assert.deepEqual(result.errors, undefined);
    assert.equal(result.valid, true);
    assert.equal(validator.version, '3.1');
  });

  test('documents exactly the routes the app mounts', () => {
    const mounted = mountedOperations(app).sort();
    const documented = documentedOperations(openApiDocument()).sort();
    assert.ok(mounted.length > 20, `only ${mounted.length} routes found`);
    assert.deepEqual(
      mounted.filter((op) => !documented.includes(op)),
      [],
      'routes missing from the document (serve them with apiRouter().route and a declared operation)',
    );
    assert.deepEqual(
      documented.filter((op) => !mounted.includes(op)),
      [],
      'documented operations no route serves',
    );
  });

  test('describes request bodies with the schemas the routes validate with', () => {
    const document = openApiDocument() as Record<string, any>;
    const subscribe = document.paths['/api/v1/subscriptions/subscribe'].post;
    const body = subscribe.requestBody.content['application/json'].schema;
    // The payment method is optional: absent, the customer's default card is charged.
    assert.deepEqual(body.required, ['planId']);
    assert.match(body.properties.paymentMethod.pattern, /pm/);
    assert.equal(body.additionalProperties, false);
    assert.equal(body.properties.planId.format, 'uuid');
    assert.deepEqual(subscribe.security, [{ bearerAuth: [] }]);
    assert.ok(subscribe.parameters.some((p: any) => p.in === 'header' && p.name === 'idempotency-key'));
    assert.equal(subscribe.responses['201'].content['application/json'].schema.properties.subscription.$ref, '#/components/schemas/Subscription');
    assert.equal(subscribe.responses['402'].content['application/problem+json'].schema.$ref, '#/components/schemas/Problem');
    assert.ok(subscribe.responses['429'].headers['Retry-After']);
    // Webhooks are exempt from the per-IP limit, so they never answer 429.
    assert.equal(document.paths['/api/v1/webhooks/stripe'].post.responses['429'], undefined);
  });

  test('is served at /openapi.json and browsable at /docs from the installed swagger-ui-dist', async () => {
    const served = await requestJson(`${api.url}/openapi.json`);
    assert.equal(served.status, 200);
    assert.deepEqual(served.body, openApiDocument());

    const page = await fetch(`${api.url}/docs`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const html = await page.text();
    assert.match(html, /<script src="\/docs\/swagger-ui-bundle\.js"><\/script>/);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);

    for (const [asset, type] of [
      ['swagger-ui-bundle.js', /javascript/],
      ['swagger-ui.css', /css/],
      ['init.js', /javascript/],
    ] as const) {
      const response = await fetch(`${api.url}/docs/${asset}`);
      assert.equal(response.status, 200, asset);
      assert.match(response.headers.get('content-type') ?? '', type);
      await response.arrayBuffer();
    }
    // swagger-ui-dist's own page would load the petstore example: not served.
    assert.equal((await fetch(`${api.url}/docs/index.html`)).status, 404);
  });

  test('a documented path asked with another method is a 405 naming the allowed ones', async () => {
    const answer = await requestJson(`${api.url}/api/v1/webhooks/stripe`);
    assert.equal(answer.status, 405);
    assert.equal(answer.headers.get('allow'), 'POST');
    assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
    // Behind an authenticated router the token is checked first.
    const { headers } = await createTestUser(services.deps);
    const read = await requestJson(`${api.url}/api/v1/subscriptions/plans`, { method: 'PUT', body: {}, headers });
    assert.equal(read.status, 405);
    assert.equal(read.headers.get('allow'), 'GET, HEAD');
    assert.equal((await requestJson(`${api.url}/api/v1/nowhere`, { method: 'PUT', body: {} })).status, 404);
  });
});
