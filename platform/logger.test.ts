import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DrizzleQueryError } from 'drizzle-orm';
import { censorSecretFields, createLogger, REDACTED } from './logger';

function logOnce(fields: Record<string, unknown>): Record<string, any> {
  const lines: string[] = [];
  createLogger({ LOG_LEVEL: 'info', NODE_ENV: 'test' }, { write: (line) => void lines.push(line) }).info(fields, 'line');
  assert.equal(lines.length, 1);
  return JSON.parse(lines[0]);
}

test('passwords, tokens and secrets are redacted at any depth a log object reaches', () => {
  const entry = logOnce({
    password: 'p0',
    body: { password: 'p1', token: 't1', nested: { deeper: { secret: 's3' } } },
    config: { JWT_SECRET: 'jwt', STRIPE_SECRET_KEY: 'sk_test_x', STRIPE_WEBHOOK_SECRET: 'whsec_x' },
  });
  assert.equal(entry.password, REDACTED);
  assert.equal(entry.body.password, REDACTED);
  assert.equal(entry.body.token, REDACTED);
  assert.equal(entry.body.nested.deeper.secret, REDACTED);
  assert.equal(entry.config.JWT_SECRET, REDACTED);
  assert.equal(entry.config.STRIPE_SECRET_KEY, REDACTED);
  assert.equal(entry.config.STRIPE_WEBHOOK_SECRET, REDACTED);
});

test('card data is redacted but a payment-method token is kept', () => {
  const entry = logOnce({ body: { paymentMethod: 'pm_card_visa', card: { number: '4242424242424242', cvc: '123' } } });
  assert.equal(entry.body.paymentMethod, 'pm_card_visa');
  assert.equal(entry.body.card, REDACTED);
});

test('authorization, cookies and Stripe-Signature headers are redacted; other headers kept', () => {
  const entry = logOnce({
    req: { headers: { authorization: 'Bearer abc', cookie: 'a=b', 'stripe-signature': 't=1,v1=x', host: 'api' } },
    res: { headers: { 'set-cookie': 'a=b' } },
  });
  assert.equal(entry.req.headers.authorization, REDACTED);
  assert.equal(entry.req.headers.cookie, REDACTED);
  assert.equal(entry.req.headers['stripe-signature'], REDACTED);
  assert.equal(entry.res.headers['set-cookie'], REDACTED);
  assert.equal(entry.req.headers.host, 'api');
});

test("a gRPC error (a Temporal client's) is logged with its message and stack, not lost to its metadata", async () => {
  const { Metadata } = await import('@grpc/grpc-js');
  const metadata = new Metadata();
  metadata.set('grpc-status-details-bin', Buffer.from('details'));
  const error = Object.assign(new Error('3 INVALID_ARGUMENT: Update-with-Start could not be executed.'), {
    code: 3,
    details: 'Namespace default has no mapping defined for search attribute CustomerId',
    metadata,
  });
  const entry = logOnce({ err: error });
  assert.equal(entry.err.message, error.message);
  assert.equal(entry.err.code, 3);
  assert.equal(entry.err.details, error.details);
  assert.match(entry.err.stack, /INVALID_ARGUMENT/);
  assert.equal(entry.err.metadata, undefined);
});

test('a failed query is logged with its SQL and the driver error, never its parameters', () => {
  const cause = Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' });
  const error = new DrizzleQueryError(
    'insert into "users" ("email", "password_hash") values ($1, $2)',
    ['who@example.test', '$argon2id$v=19$secret-hash'],
    cause,
  );
  const lines: string[] = [];
  createLogger({ LOG_LEVEL: 'info', NODE_ENV: 'test' }, { write: (line) => void lines.push(line) }).error({ err: error }, 'unhandled error');
  const entry = JSON.parse(lines[0]);
  assert.equal(entry.err.message, cause.message);
  assert.equal(entry.err.code, '22021');
  assert.match(entry.err.query, /^insert into "users"/);
  assert.ok(!lines[0].includes('secret-hash') && !lines[0].includes('who@example.test'), lines[0]);
});

test('censorSecretFields censors every secret field at any depth, in arrays too, and leaves the input as it was', () => {
  const input = {
    headers: { authorization: 'Bearer t', 'x-request-id': 'r1', 'set-cookie': ['a=b'] },
    query: { token: ['t1', 't2'], limit: '5', nested: { deeper: { password: 'p', cvc: '123' } } },
    list: [{ apiKey: 'k', name: 'n' }],
    count: 3,
  };
  const copy = structuredClone(input);
  assert.deepEqual(censorSecretFields(input), {
    headers: { authorization: REDACTED, 'x-request-id': 'r1', 'set-cookie': REDACTED },
    query: { token: REDACTED, limit: '5', nested: { deeper: { password: REDACTED, cvc: REDACTED } } },
    list: [{ apiKey: REDACTED, name: 'n' }],
    count: 3,
  });
  assert.deepEqual(input, copy);
  let deep: Record<string, unknown> = { password: 'p' };
  for (let i = 0; i < 12; i++) deep = { next: deep };
  assert.ok(!JSON.stringify(censorSecretFields(deep)).includes('"p"'), 'past the depth bound a value is censored whole');
});
