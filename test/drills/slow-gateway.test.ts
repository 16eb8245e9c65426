/**
 * A gateway that takes 15 s to answer must not make hold requests answer 503. Charges used to
 * hold a PostgreSQL transaction (and a pooled connection) across the gateway call, so twenty
 * slow charges took every connection of the worker's pool and the claims of new holds queued
 * behind them past the API's answer deadline. Now a charge claims its row, calls the gateway with
 * no transaction open, then records the answer.
 *
 * The stack charges through the Stripe gateway against stripe-mock, reached through a proxy that
 * delays every request by 15 s once the set-up is done.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { eq } from 'drizzle-orm';
import { payments } from '../../db/schema';
import { loadConfig } from '../../platform/config';
import { createTestUser, requestJson, type TestUser } from '../support/api';
import { createOffering, placeHold, type BookingStack } from '../support/booking-stack';
import { assertBooksBalance } from '../support/reconciliation';
import { startTestStack } from '../support/stack';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';

const GATEWAY_LATENCY_MS = 15_000;
const SLOW_CHARGES = 20;
const HOLDS = 50;

let proxy: TcpProxy;
let stack: BookingStack;

before(async () => {
  const stripeMock = new URL(process.env.STRIPE_MOCK_URL!);
  proxy = await startTcpProxy({ host: stripeMock.hostname, port: Number(stripeMock.port) });
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    RATE_LIMIT_IP_PER_MINUTE: '1000000',
    RATE_LIMIT_PAYMENTS_PER_USER_PER_MINUTE: '1000000',
    ...process.env,
    PAYMENT_GATEWAY: 'stripe',
    STRIPE_SECRET_KEY: 'sk_test_123',
    STRIPE_API_URL: `http://127.0.0.1:${proxy.port}`,
  });
  stack = await startTestStack({ serves: ['bookings'], config });
});

after(async () => {
  await stack?.close();
  await proxy?.close();
});

async function bookWithDefaultCard(user: TestUser, holdId: string) {
  return requestJson(`${stack.url}/api/v1/bookings/create`, { body: { holdId }, headers: user.headers });
}

test('50 holds while 20 charges wait 15 s for the gateway: none answers 503', async () => {
  // The payer holds SLOW_CHARGES units of it at once, more than the default units limit per customer.
  const offering = await createOffering(stack, { maxUnitsPerCustomer: SLOW_CHARGES }, SLOW_CHARGES + HOLDS);
  const payer = await createTestUser(stack.deps);
  // Saved while the gateway is quick: the bookings below charge it without asking the gateway first.
  // A payment method id of its own: stripe-mock answers an attach with the id it was given, and
  // the test database is shared with other files. Letters only: twelve digits in a row would read
  // as a card number, which the API refuses (a random hex id has such a run about once in 14).
  const paymentMethod = `pm_slow${randomUUID().replace(/[-\d]/g, (c) => (c === '-' ? '' : 'ghijklmnop'[Number(c)]))}`;
  const saved = await requestJson(`${stack.url}/api/v1/payment-methods`, { body: { paymentMethod }, headers: payer.headers });
  assert.equal(saved.status, 201, JSON.stringify(saved.body));
  const holds = await Promise.all(offering.unitIds.slice(0, SLOW_CHARGES).map((unitId) => placeHold(stack, payer, offering.id, [unitId])));
  assert.deepEqual(
    holds.map((h) => h.status),
    holds.map(() => 201),
  );

  proxy.setLatency(GATEWAY_LATENCY_MS);
  const bookings = holds.map((hold) => bookWithDefaultCard(payer, hold.body.hold.id));
  // Every charge claimed its row and is now waiting for the gateway.
  const deadline = Date.now() + 10_000;
  while ((await stack.deps.db.select().from(payments).where(eq(payments.userId, payer.user.id))).length < SLOW_CHARGES) {
    assert.ok(Date.now() < deadline, 'the charges started');
    await sleep(100);
  }

  const customers = await Promise.all(Array.from({ length: 5 }, () => createTestUser(stack.deps)));
  const answers = await Promise.all(
    offering.unitIds.slice(SLOW_CHARGES).map((unitId, i) => placeHold(stack, customers[i % customers.length], offering.id, [unitId])),
  );
  assert.deepEqual(
    answers.map((a) => a.status),
    answers.map(() => 201),
    'every hold was placed while the gateway was slow',
  );

  proxy.setLatency(0);
  const booked = await Promise.all(bookings);
  for (const answer of booked) assert.notEqual(answer.status, 503, JSON.stringify(answer.body));
  await assertBooksBalance(stack.deps.db, { customers: [payer.user.id, ...customers.map((c) => c.user.id)] });
});
