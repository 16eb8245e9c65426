import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { drizzle } from 'drizzle-orm/postgres-js';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { createApp } from '../api/app';
import { SNAPSHOT_MAX_AGE_MS } from '../availability/snapshot-cache';
import * as schema from '../db/schema';
import { createTestUser, listen, requestJson, type TestServer, type TestUser } from './support/api';
import { createBooking, createOffering, placeHold, startBookingStack, type BookingStack } from './support/booking-stack';
import { openSseStream } from './support/event-stream-client';

describe('availability reads from the per-process snapshot (HTTP, dev server)', () => {
  let stack: BookingStack;
  let alice: TestUser;
  const cleanups: Array<() => Promise<unknown> | void> = [];

  before(async () => {
    stack = await startBookingStack();
    alice = await createTestUser(stack.deps);
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await stack.close();
  });

  /**
   * Another API process on the stack's services whose PostgreSQL reads of unit claims are counted
   * (postgres.js calls `debug` for every query it sends). Holds and bookings still go through the
   * stack's API and worker, which publish the unit events.
   */
  async function countingApi(redis: Redis = stack.deps.redis) {
    let claimReads = 0;
    const sql = postgres(stack.deps.config.DATABASE_URL, {
      max: 2,
      onnotice: () => {},
      debug: (_connection, query) => {
        if (query.includes('"unit_claims"')) claimReads += 1;
      },
    });
    const server: TestServer = await listen(createApp({ ...stack.deps, db: drizzle(sql, { schema }), sql, redis }));
    cleanups.push(
      () => sql.end({ timeout: 5 }),
      () => server.close(),
    );
    const read = async (offeringId: string, headers: Record<string, string> = {}) => {
      const response = await fetch(`${server.url}/api/v1/offerings/${offeringId}/availability`, { headers });
      const text = await response.text();
      return { status: response.status, etag: response.headers.get('etag'), text, body: text ? JSON.parse(text) : undefined };
    };
    const statuses = async (offeringId: string) => {
      const { body } = await read(offeringId);
      return body.units.map((u: { status: string }) => u.status) as string[];
    };
    return { url: server.url, read, statuses, claimReads: () => claimReads };
  }

  async function hold(offeringId: string, unitIds: string[]): Promise<string> {
    const held = await placeHold(stack, alice, offeringId, unitIds);
    assert.equal(held.status, 201, JSON.stringify(held.body));
    return held.body.hold.id;
  }

  test('a read right after a hold, a release or a booking reflects it; reads in between do not query PostgreSQL', async () => {
    const api = await countingApi();
    const offering = await createOffering(stack, {}, 3);
    const [u0, u1] = offering.unitIds;
    const first = await api.read(offering.id);
    assert.deepEqual(first.body.counts, { available: 3, held: 0, booked: 0 });

    const before = api.claimReads();
    const reads = [];
    for (let i = 0; i < 40; i++) reads.push(await api.read(offering.id));
    // One read per SNAPSHOT_MAX_AGE_MS at most: 40 local reads take far less than 4 of them.
    assert.ok(api.claimReads() - before <= 3, `${api.claimReads() - before} PostgreSQL reads for 40 answers`);
    assert.ok(
      reads.every((r) => r.status === 200 && r.body.counts.available === 3),
      'every cached answer is the current one',
    );
    // fetch adds `Cache-Control: no-cache` to a conditional request unless told otherwise.
    const revalidate = { 'if-none-match': reads.at(-1)!.etag!, 'cache-control': 'max-age=0' };
    const conditional = await api.read(offering.id, revalidate);
    assert.equal(conditional.status, 304);

    const heldId = await hold(offering.id, [u0]);
    assert.deepEqual(await api.statuses(offering.id), ['held', 'available', 'available']);
    const changed = await api.read(offering.id, revalidate);
    assert.equal(changed.status, 200, 'a changed snapshot has a new ETag');

    const released = await requestJson(`${stack.url}/api/v1/bookings/holds/${heldId}`, { method: 'DELETE', headers: alice.headers });
    assert.equal(released.status, 200, JSON.stringify(released.body));
    assert.deepEqual(await api.statuses(offering.id), ['available', 'available', 'available']);

    const booked = await createBooking(stack, alice, await hold(offering.id, [u1]));
    assert.equal(booked.status, 201, JSON.stringify(booked.body));
    assert.deepEqual(await api.statuses(offering.id), ['available', 'booked', 'available']);
  });

  test("a live stream's opening snapshot is the answer GET /availability gives", async () => {
    const api = await countingApi();
    const offering = await createOffering(stack, {}, 2);
    await hold(offering.id, [offering.unitIds[1]]);
    const read = await api.read(offering.id);
    const stream = await openSseStream(`${api.url}/api/v1/offerings/${offering.id}/events`);
    const snapshot = await stream.next();
    stream.close();
    assert.equal(snapshot?.event, 'snapshot');
    assert.equal(snapshot.data, read.text);
    assert.deepEqual(read.body.counts, { available: 1, held: 1, booked: 0 });
  });

  test('a change whose event was never published shows once the snapshot is SNAPSHOT_MAX_AGE_MS old', async () => {
    const api = await countingApi();
    const offering = await createOffering(stack, {}, 2);
    const heldId = await hold(offering.id, [offering.unitIds[0]]);
    assert.deepEqual(await api.statuses(offering.id), ['held', 'available']);
    // The release committed, as by an activity that lost Redis before it could publish.
    await stack.deps.sql`update unit_claims set released_at = now() where hold_id = ${heldId}`;
    await setTimeout(SNAPSHOT_MAX_AGE_MS + 100);
    assert.deepEqual(await api.statuses(offering.id), ['available', 'available']);
  });

  test('with its Redis gone, the API reads PostgreSQL on every request and answers correctly', async () => {
    const redis = new Redis(stack.deps.config.REDIS_URL);
    redis.on('error', () => undefined);
    cleanups.push(() => redis.disconnect());
    const api = await countingApi(redis);
    const offering = await createOffering(stack, {}, 2);
    assert.deepEqual(await api.statuses(offering.id), ['available', 'available']);
    assert.deepEqual(await api.statuses(offering.id), ['available', 'available']);

    redis.disconnect();
    await hold(offering.id, [offering.unitIds[1]]);
    const before = api.claimReads();
    for (let i = 0; i < 3; i++) assert.deepEqual(await api.statuses(offering.id), ['available', 'held']);
    assert.equal(api.claimReads() - before, 3, 'one PostgreSQL read per request');
    const unknown = await api.read('00000000-0000-4000-8000-000000000000');
    assert.equal(unknown.status, 404);
  });
});
