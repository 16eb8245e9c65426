/**
 * The API and worker processes as deployed (`workers/api.ts`, `workers/worker.ts`), with every
 * secret set and the most verbose log level: no secret may appear in anything they print while
 * starting, serving and stopping. The worker also serves Temporal's own metrics.
 */
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Stripe from 'stripe';
import { freePort } from '../scripts/services';
import { requestJson } from './support/api';
import { startAppProcess, type AppProcess } from './support/app-process';

interface Secrets {
  JWT_SECRET: string;
  STRIPE_SECRET_KEY: string;
  STRIPE_WEBHOOK_SECRET: string;
  databasePassword: string;
}

/** Fresh secrets; the database URL carries a password (PostgreSQL on loopback trusts and ignores it). */
function environmentWithSecrets(): { env: NodeJS.ProcessEnv; secrets: Secrets } {
  const databaseUrl = new URL(process.env.DATABASE_URL!);
  databaseUrl.password ||= `pg-${randomBytes(12).toString('hex')}`;
  const secrets: Secrets = {
    JWT_SECRET: randomBytes(40).toString('base64url'),
    STRIPE_SECRET_KEY: `sk_test_${randomBytes(18).toString('hex')}`,
    STRIPE_WEBHOOK_SECRET: `whsec_${randomBytes(18).toString('hex')}`,
    databasePassword: decodeURIComponent(databaseUrl.password),
  };
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: 'trace',
    PORT: '0',
    DATABASE_URL: databaseUrl.toString(),
    JWT_SECRET: secrets.JWT_SECRET,
    STRIPE_SECRET_KEY: secrets.STRIPE_SECRET_KEY,
    STRIPE_WEBHOOK_SECRET: secrets.STRIPE_WEBHOOK_SECRET,
    ...(process.env.STRIPE_MOCK_URL ? { STRIPE_API_URL: process.env.STRIPE_MOCK_URL } : {}),
  };
  return { env, secrets };
}

function assertNoSecrets(output: string, secrets: Record<string, string>): void {
  for (const [name, value] of Object.entries(secrets)) {
    assert.ok(!output.includes(value), `${name} appears in the output`);
  }
}

describe('process logs', () => {
  const running: AppProcess[] = [];

  after(async () => {
    await Promise.all(running.map((p) => p.stop()));
  });

  test('the API logs requests with their ids but never a secret, a password or a token', async () => {
    const { env, secrets } = environmentWithSecrets();
    const api = startAppProcess('workers/api.ts', env);
    running.push(api);
    const [, url] = await api.waitFor(/API listening on (http:\/\/localhost:\d+)/);

    const password = `pw-${randomBytes(12).toString('hex')}`;
    const email = `logs-${randomBytes(6).toString('hex')}@example.test`;
    const signup = await requestJson(`${url}/api/v1/auth/signup`, { body: { email, password, name: 'Logs' } });
    assert.equal(signup.status, 201);
    const login = await requestJson(`${url}/api/v1/auth/login`, { body: { email, password } });
    assert.equal(login.status, 200);
    const token: string = login.body.token;
    assert.equal((await requestJson(`${url}/api/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    const payload = JSON.stringify({ id: `evt_${randomBytes(8).toString('hex')}`, object: 'event', type: 'customer.created', data: { object: {} } });
    const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret: secrets.STRIPE_WEBHOOK_SECRET });
    const webhook = await fetch(`${url}/api/v1/webhooks/stripe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': signature },
      body: payload,
    });
    assert.equal(webhook.status, 200);
    const wrongLogin = await requestJson(`${url}/api/v1/auth/login`, { body: { email, password: `${password}-wrong` } });
    assert.equal(wrongLogin.status, 401);

    assert.equal(await api.stop(), 0);
    const output = api.output();
    assert.match(output, /"url":"\/api\/v1\/auth\/me"/, 'the request log lines are there');
    assert.match(output, /"reqId":"[^"]+"/);
    assertNoSecrets(output, { ...secrets, password, token, signature, wrongPassword: `${password}-wrong` });
  });

  test("the worker starts, serves Temporal's metrics for Prometheus and stops without printing a secret", async () => {
    const { env, secrets } = environmentWithSecrets();
    const metricsAddress = `127.0.0.1:${await freePort()}`;
    const worker = startAppProcess('workers/worker.ts', { ...env, WORKER_METRICS_ADDRESS: metricsAddress });
    running.push(worker);
    await worker.waitFor(/workers running/);

    const metrics = await fetch(`http://${metricsAddress}/metrics`);
    assert.equal(metrics.status, 200);
    const text = await metrics.text();
    assert.match(text, /^# TYPE temporal_\w+/m, 'Temporal core metrics');

    assert.equal(await worker.stop(), 0);
    assertNoSecrets(worker.output(), { ...secrets });
  });
});
