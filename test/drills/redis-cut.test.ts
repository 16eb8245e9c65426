/**
 * Drill (fast, on the test runner's servers): Redis goes away in the middle of hold traffic and
 * comes back. The stack reaches the runner's Redis through a proxy whose link is cut, so only
 * this stack loses it. No double booking, no 500. The full drill stops a Redis server of its own
 * (redis-outage.drill.ts, `npm run drills`).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { findDoubleBookings } from '../../bench/invariants';
import { tally } from '../../bench/stats';
import { createTestUser } from '../support/api';
import { createOffering, startBookingStack, type BookingStack } from '../support/booking-stack';
import { assertBooksBalance } from '../support/reconciliation';
import { runHoldTraffic } from './hold-traffic';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';

const CUT_FROM_MS = 2000;
const CUT_UNTIL_MS = 7000;
const TRAFFIC_MS = 10_000;

let proxy: TcpProxy;
let redis: Redis;
let stack: BookingStack;

before(async () => {
  const target = new URL(process.env.REDIS_URL ?? '');
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
  redis = new Redis(proxy.port, '127.0.0.1');
  redis.on('error', () => undefined);
  stack = await startBookingStack({ redis });
});

after(async () => {
  await stack?.close();
  redis?.disconnect();
  await proxy?.close();
});

test('Redis cut off during hold traffic: holds go on through PostgreSQL, no double booking, no 500', async () => {
  // Bookings stay for the whole drill: no customer may run into their units limit before the units run out.
  const offering = await createOffering(stack, { maxUnitsPerCustomer: 30 }, 30);
  const customers = await Promise.all(Array.from({ length: 4 }, () => createTestUser(stack.deps)));
  const answers = await runHoldTraffic({
    apiUrl: stack.url,
    offering,
    customers,
    lanes: 8,
    durationMs: TRAFFIC_MS,
    faults: [
      { atMs: CUT_FROM_MS, run: () => proxy.cut() },
      { atMs: CUT_UNTIL_MS, run: () => proxy.restore() },
    ],
  });
  const during = answers.filter((a) => a.atMs >= CUT_FROM_MS && a.atMs < CUT_UNTIL_MS);
  const statuses = tally(answers.map((a) => `${a.request} ${a.status}`));
  assert.deepEqual(
    answers.filter((a) => a.status === 500 || a.status === 0),
    [],
    `no 500 and no dropped request: ${JSON.stringify(statuses)}`,
  );
  assert.ok(
    during.some((a) => a.request === 'hold' && a.status === 201),
    `holds granted while Redis was cut off: ${JSON.stringify(tally(during.map((a) => `${a.request} ${a.status}`)))}`,
  );
  assert.deepEqual(await findDoubleBookings(stack.deps.db, offering.id), {
    unitsClaimedTwice: 0,
    unitsInTwoLiveHolds: 0,
    unitsInTwoConfirmedBookings: 0,
  });
  await assertBooksBalance(stack.deps.db, { customers: customers.map((c) => c.user.id) });
});
