import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { HttpProblem } from './problem';
import { parseBody, parseParams, parseQuery } from './validation';

const payment = z.strictObject({
  amount: z.number().int().positive(),
  currency: z.string().length(3),
  customer: z.object({ email: z.email() }),
});

function problemFrom(fn: () => unknown): HttpProblem {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof HttpProblem);
    return err;
  }
  assert.fail('expected a problem');
}

test('valid input comes back parsed', () => {
  assert.deepEqual(parseBody(payment, { amount: 500, currency: 'EUR', customer: { email: 'a@b.co' } }), {
    amount: 500,
    currency: 'EUR',
    customer: { email: 'a@b.co' },
  });
  assert.deepEqual(parseQuery(z.object({ page: z.coerce.number() }), { page: '2' }), { page: 2 });
});

test('every bad field is named, nested ones by their dotted path, unknown ones too', () => {
  const problem = problemFrom(() => parseBody(payment, { amount: -1, currency: 'EURO', customer: { email: 'nope' }, cardNumber: '4242' }));
  assert.equal(problem.status, 400);
  assert.equal(problem.title, 'Invalid request');
  const names = (problem.extra.invalidParams as { name: string }[]).map((p) => p.name).sort();
  assert.deepEqual(names, ['amount', 'cardNumber', 'currency', 'customer.email']);
  assert.match(problem.detail ?? '', /amount: /);
});

test('a body that is not an object at all is reported as the body', () => {
  const problem = problemFrom(() => parseBody(payment, undefined));
  assert.deepEqual(
    (problem.extra.invalidParams as { name: string }[]).map((p) => p.name),
    ['body'],
  );
});

test('path parameters are checked the same way', () => {
  const problem = problemFrom(() => parseParams(z.object({ id: z.uuid() }), { id: '42' }));
  assert.deepEqual(
    (problem.extra.invalidParams as { name: string }[]).map((p) => p.name),
    ['id'],
  );
});
