import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { createBooking, createOffering, placeHold, startBookingStack, unitStatuses, type BookingStack } from './support/booking-stack';
import { liveClaims } from './support/booking-fixtures';
import { closedLoopbackPort } from './support/payment-fixtures';

describe('holds with Redis stopped (HTTP, dev server)', () => {
  let stack: BookingStack;
  let redis: Redis;
  let customers: TestUser[];

  before(async () => {
    // Nothing listens there: the API and the worker keep reconnecting, as to a stopped Redis.
    redis = new Redis(await closedLoopbackPort(), '127.0.0.1');
    redis.on('error', () => undefined);
    stack = await startBookingStack({ redis });
    customers = await Promise.all(Array.from({ length: 5 }, () => createTestUser(stack.deps)));
  });

  after(async () => {
    await stack.close();
    redis.disconnect();
  });

  test('concurrent holds on one unit still get exactly one 201 and 409s, never a 500', async () => {
    const offering = await createOffering(stack, {}, 2);
    const [unitId] = offering.unitIds;
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => placeHold(stack, customers[i % 5], offering.id, [unitId])));
    const statuses = answers.map((a) => a.status);
    assert.equal(statuses.filter((s) => s === 201).length, 1, `statuses: ${[...new Set(statuses)].join(', ')}`);
    assert.equal(statuses.filter((s) => s === 409).length, 29);
    const winner = answers.find((a) => a.status === 201)!.body.hold;
    assert.deepEqual(
      (await liveClaims(stack.deps.db, [unitId])).map((c) => c.holdId),
      [winner.id],
    );
  });

  test('booking, release and availability work through PostgreSQL alone', async () => {
    const offering = await createOffering(stack, {}, 2);
    const [u1, u2] = offering.unitIds;
    const owner = customers[0];
    const held = await placeHold(stack, owner, offering.id, [u1]);
    assert.equal(held.status, 201);
    const booked = await createBooking(stack, owner, held.body.hold.id);
    assert.equal(booked.status, 201);

    const other = await placeHold(stack, owner, offering.id, [u2]);
    assert.equal(other.status, 201);
    const released = await requestJson(`${stack.url}/api/v1/bookings/holds/${other.body.hold.id}`, { method: 'DELETE', headers: owner.headers });
    assert.equal(released.status, 200);
    assert.deepEqual(await unitStatuses(stack, offering.id), { [u1]: 'booked', [u2]: 'available' });
    assert.equal((await placeHold(stack, customers[1], offering.id, [u1])).status, 409);

    const events = await requestJson(`${stack.url}/api/v1/offerings/${offering.id}/events`);
    assert.equal(events.status, 503, 'live events say they are unavailable instead of hanging');
  });
});
