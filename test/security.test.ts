/**
 * Security over HTTP: helmet's headers, CORS from configuration, the rate limits at their
 * production defaults (in Redis, and in memory while Redis is down), and no card data accepted.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eq } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { subscriptions } from '../db/schema';
import { loadConfig, type Config } from '../platform/config';
import { createTestUser, requestJson, startTestApi, type TestApi, type TestUser } from './support/api';
import { closedLoopbackPort } from './support/payment-fixtures';
import { insertTestPlan } from './support/subscription-fixtures';

const ALLOWED_ORIGIN = 'https://app.example.test';

/** The production defaults for the limits (whatever the environment says), behind one trusted proxy. */
function productionLimitsConfig(): Config {
  const { RATE_LIMIT_IP_PER_MINUTE: _ip, RATE_LIMIT_PAYMENTS_PER_USER_PER_MINUTE: _payments, ...env } = process.env;
  return loadConfig({ ...env, LOG_LEVEL: 'silent', TRUST_PROXY: '1', CORS_ORIGINS: ALLOWED_ORIGIN });
}

/**
 * A client address of its own (IPv6 documentation range), sent as X-Forwarded-For: every test
 * process shares Redis, and requests of other tests from 127.0.0.1 must not count here.
 */
function uniqueClientAddress(): Record<string, string> {
  const groups = Array.from({ length: 6 }, () => randomBytes(2).toString('hex'));
  return { 'x-forwarded-for': `2001:db8:${groups.join(':')}` };
}

async function requestMany(count: number, send: () => Promise<{ status: number }>): Promise<number[]> {
  const statuses: number[] = [];
  // A few at a time: enough to be quick, few enough not to exhaust sockets.
  for (let sent = 0; sent < count; sent += 10) {
    const batch = await Promise.all(Array.from({ length: Math.min(10, count - sent) }, send));
    statuses.push(...batch.map((answer) => answer.status));
  }
  return statuses;
}

function assertRateLimited(answer: { status: number; headers: Headers; body: any }, limit: RegExp): void {
  assert.equal(answer.status, 429, JSON.stringify(answer.body));
  const retryAfter = Number(answer.headers.get('retry-after'));
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${answer.headers.get('retry-after')}`);
  assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(answer.body.title, 'Too Many Requests');
  assert.match(answer.body.detail, limit);
}

/** Rate limits at their defaults, on `redis` (the shared one, or an unreachable one). */
function describeRateLimits(name: string, redis: () => Promise<Redis | undefined>) {
  describe(name, () => {
    let api: TestApi;
    let ownRedis: Redis | undefined;

    before(async () => {
      ownRedis = await redis();
      api = await startTestApi({ config: productionLimitsConfig(), ...(ownRedis ? { redis: ownRedis } : {}) });
    });

    after(async () => {
      await api.close();
      ownRedis?.disconnect();
    });

    test('the defaults are 100 requests per minute per address and 10 payment requests per minute per user', () => {
      assert.equal(api.deps.config.RATE_LIMIT_IP_PER_MINUTE, 100);
      assert.equal(api.deps.config.RATE_LIMIT_PAYMENTS_PER_USER_PER_MINUTE, 10);
    });

    test('the 101st request of a minute from one address is a 429; webhooks, probes and metrics stay open', async () => {
      const client = uniqueClientAddress();
      const statuses = await requestMany(100, () => requestJson(`${api.url}/api/v1/nowhere`, { headers: client }));
      assert.deepEqual([...new Set(statuses)], [404]);
      assertRateLimited(await requestJson(`${api.url}/api/v1/subscriptions/plans`, { headers: client }), /100 requests per client address/);

      const webhook = await requestJson(`${api.url}/api/v1/webhooks/stripe`, { body: { id: 'evt_1', type: 'x' }, headers: client });
      assert.equal(webhook.status, 400, 'a webhook is judged by its signature, not limited');
      assert.equal((await requestJson(`${api.url}/healthz`, { headers: client })).status, 200);
      assert.notEqual((await requestJson(`${api.url}/readyz`, { headers: client })).status, 429);
      assert.equal((await fetch(`${api.url}/metrics`, { headers: client })).status, 200);

      const other = await requestJson(`${api.url}/api/v1/nowhere`, { headers: uniqueClientAddress() });
      assert.equal(other.status, 404, 'another address has its own budget');
    });

    test('the 11th payment request of a minute by one user is a 429, across subscribe, payments and bookings', async () => {
      const client = uniqueClientAddress();
      const payer = await createTestUser(api.deps);
      const headers = { ...payer.headers, ...client };
      // Invalid bodies still count: the limit comes before anything else the route does.
      const statuses = await requestMany(10, () => requestJson(`${api.url}/api/v1/payments/process`, { body: {}, headers }));
      assert.deepEqual([...new Set(statuses)], [400]);

      const perUser = /10 payment requests per user/;
      assertRateLimited(await requestJson(`${api.url}/api/v1/payments/process`, { body: {}, headers }), perUser);
      assertRateLimited(await requestJson(`${api.url}/api/v1/subscriptions/subscribe`, { body: {}, headers }), perUser);
      assertRateLimited(await requestJson(`${api.url}/api/v1/bookings/create`, { body: {}, headers }), perUser);
      assert.equal((await requestJson(`${api.url}/api/v1/payments/history`, { headers })).status, 200, 'reading is not paying');

      const other: TestUser = await createTestUser(api.deps);
      const answer = await requestJson(`${api.url}/api/v1/payments/process`, { body: {}, headers: { ...other.headers, ...client } });
      assert.equal(answer.status, 400, 'another user has their own budget');
    });
  });
}

describeRateLimits('rate limits in Redis', async () => undefined);
describeRateLimits('rate limits while Redis is unreachable (counted in memory, never a 500)', async () => {
  const redis = new Redis(await closedLoopbackPort(), '127.0.0.1', { maxRetriesPerRequest: 0 });
  redis.on('error', () => undefined);
  return redis;
});

describe('security headers and CORS', () => {
  let api: TestApi;

  before(async () => {
    api = await startTestApi({ config: productionLimitsConfig() });
  });

  after(async () => {
    await api.close();
  });

  test("answers carry helmet's headers with a policy for an API, and no X-Powered-By", async () => {
    const response = await fetch(`${api.url}/healthz`, { headers: uniqueClientAddress() });
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(response.headers.get('content-security-policy'), "default-src 'none';frame-ancestors 'none'");
    assert.match(response.headers.get('strict-transport-security') ?? '', /max-age=\d+/);
    assert.equal(response.headers.get('x-frame-options'), 'SAMEORIGIN');
    assert.equal(response.headers.get('x-powered-by'), null);
  });

  test('a configured origin may call the API from a browser; any other may not', async () => {
    const preflight = (origin: string) =>
      fetch(`${api.url}/api/v1/payments/process`, {
        method: 'OPTIONS',
        headers: {
          ...uniqueClientAddress(),
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization,content-type,idempotency-key',
        },
      });
    const allowed = await preflight(ALLOWED_ORIGIN);
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN);
    assert.match(allowed.headers.get('access-control-allow-headers') ?? '', /Authorization.*Idempotency-Key/);

    const refused = await preflight('https://evil.example.test');
    assert.equal(refused.headers.get('access-control-allow-origin'), null);

    const read = await fetch(`${api.url}/api/v1/subscriptions/plans`, { headers: { ...uniqueClientAddress(), origin: ALLOWED_ORIGIN } });
    assert.equal(read.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN);
    assert.match(read.headers.get('access-control-expose-headers') ?? '', /X-Request-Id/);
    await read.arrayBuffer();
  });
});

describe('card data', () => {
  let api: TestApi;
  let payer: TestUser;

  before(async () => {
    api = await startTestApi();
    payer = await createTestUser(api.deps);
  });

  after(async () => {
    await api.close();
  });

  const cardLike = [
    '4242424242424242',
    '4242 4242 4242 4242',
    'pm_4242424242424242',
    'tok_5555555555554444',
    { number: '4242424242424242', cvc: '123' },
  ];

  test('a card number where a payment method token belongs is a 400, and nothing is charged or stored', async () => {
    const plan = await insertTestPlan(api.deps.db);
    const subscriptionId = randomUUID();
    await api.deps.db.insert(subscriptions).values({
      id: subscriptionId,
      userId: payer.user.id,
      planId: plan.planId,
      status: 'active',
      paymentMethod: 'pm_card_visa',
      anchorDate: new Date(),
      workflowId: `subscription-${subscriptionId}`,
    });
    const routes: Array<[string, (paymentMethod: unknown) => Record<string, unknown>]> = [
      ['/api/v1/payments/process', (paymentMethod) => ({ amount: 1000, currency: 'usd', description: 'Gift', paymentMethod })],
      ['/api/v1/subscriptions/subscribe', (paymentMethod) => ({ planId: plan.planId, paymentMethod })],
      ['/api/v1/bookings/create', (paymentMethod) => ({ holdId: randomUUID(), paymentMethod })],
      [`/api/v1/subscriptions/${subscriptionId}/payment-method`, (paymentMethod) => ({ paymentMethod })],
    ];
    for (const [path, body] of routes) {
      for (const paymentMethod of cardLike) {
        const answer = await requestJson(`${api.url}${path}`, { body: body(paymentMethod), headers: payer.headers });
        assert.equal(answer.status, 400, `${path} accepted ${JSON.stringify(paymentMethod)}`);
        assert.ok(
          answer.body.invalidParams.some((p: { name: string }) => p.name === 'paymentMethod'),
          `${path}: ${JSON.stringify(answer.body.invalidParams)}`,
        );
      }
    }
    const [{ count }] = await api.deps.sql`select count(*)::int as count from payments where user_id = ${payer.user.id}`;
    assert.equal(count, 0);
    const [row] = await api.deps.db.select().from(subscriptions).where(eq(subscriptions.id, subscriptionId));
    assert.equal(row.paymentMethod, 'pm_card_visa');
  });

  test('tokens are accepted as they are', async () => {
    const answer = await requestJson(`${api.url}/api/v1/subscriptions/subscribe`, {
      body: { planId: randomUUID(), paymentMethod: 'pm_card_visa' },
      headers: payer.headers,
    });
    // Past validation of the token: the plan is what is wrong.
    assert.equal(answer.status, 422);
    assert.deepEqual(
      answer.body.invalidParams.map((p: { name: string }) => p.name),
      ['planId'],
    );
  });
});
