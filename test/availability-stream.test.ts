import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { createApp } from '../api/app';
import { appendUnitEvent, BACKLOG_EVENTS } from '../availability/unit-event-log';
import { unitEventsChannel } from '../domain/hold';
import type { Config } from '../platform/config';
import { createTestUser, listen, requestJson, type TestServer, type TestUser } from './support/api';
import { createOffering, placeHold, startBookingStack, type BookingStack } from './support/booking-stack';
import { openSseStream, seqOf, type SseMessage, type SseStream } from './support/event-stream-client';

describe('live availability streams (Server-Sent Events)', () => {
  let stack: BookingStack;
  let alice: TestUser;
  const servers: TestServer[] = [];

  before(async () => {
    stack = await startBookingStack();
    alice = await createTestUser(stack.deps);
  });

  after(async () => {
    for (const server of servers) await server.close();
    await stack.close();
  });

  /** Another API process on the stack's services, with some settings of its own. */
  async function serveApi(settings: Partial<Config>): Promise<string> {
    const server = await listen(createApp({ ...stack.deps, config: { ...stack.deps.config, ...settings } }));
    servers.push(server);
    return server.url;
  }

  const eventsUrl = (base: string, offeringId: string, query = '') => `${base}/api/v1/offerings/${offeringId}/events${query}`;

  async function hold(offeringId: string, unitIds: string[]): Promise<string> {
    const held = await placeHold(stack, alice, offeringId, unitIds);
    assert.equal(held.status, 201, JSON.stringify(held.body));
    return held.body.hold.id;
  }

  const unitsOf = (message: SseMessage | undefined) => JSON.parse(message?.data ?? 'null')?.units as Array<{ id: string; status: string }>;

  test('a client that reconnects with Last-Event-ID is sent exactly what it missed, then live events', async () => {
    const offering = await createOffering(stack, {}, 6);
    const [u0, u1, u2, u3] = offering.unitIds;
    const first = await openSseStream(eventsUrl(stack.url, offering.id));
    const snapshot = await first.next();
    assert.equal(snapshot?.event, 'snapshot');
    const firstHold = await hold(offering.id, [u0]);
    const e1 = await first.next();
    await hold(offering.id, [u1]);
    const e2 = await first.next();
    assert.deepEqual([e1?.event, unitsOf(e1), unitsOf(e2)], ['units', [{ id: u0, status: 'held' }], [{ id: u1, status: 'held' }]]);
    first.close();

    // Missed while disconnected: a hold and a release.
    await hold(offering.id, [u2]);
    const released = await requestJson(`${stack.url}/api/v1/bookings/holds/${firstHold}`, { method: 'DELETE', headers: alice.headers });
    assert.equal(released.status, 200, JSON.stringify(released.body));

    const resumed = await openSseStream(eventsUrl(stack.url, offering.id), { 'last-event-id': e2!.id! });
    const missed = [await resumed.next(), await resumed.next()];
    assert.deepEqual(missed.map(unitsOf), [[{ id: u2, status: 'held' }], [{ id: u0, status: 'available' }]]);
    await hold(offering.id, [u3]);
    const live = await resumed.next();
    assert.deepEqual(unitsOf(live), [{ id: u3, status: 'held' }]);
    // One numbering for the offering: the snapshot's position, then each event once, in order.
    assert.deepEqual([snapshot, e1, e2, ...missed, live].map(seqOf), [0, 1, 2, 3, 4, 5]);
    assert.ok([e1, e2, ...missed, live].every((m) => m?.event === 'units' && m.id!.split('-')[0] === snapshot.id!.split('-')[0]));
    resumed.close();

    // The query parameter, for clients that cannot set headers; the header wins when both come.
    const byQuery = await openSseStream(eventsUrl(stack.url, offering.id, `?lastEventId=${e2!.id}`));
    assert.deepEqual(
      [(await byQuery.next())?.id, (await byQuery.next())?.id],
      missed.map((m) => m?.id),
    );
    byQuery.close();
    const both = await openSseStream(eventsUrl(stack.url, offering.id, `?lastEventId=${e2!.id}`), { 'last-event-id': missed[1]!.id! });
    assert.equal((await both.next())?.id, live?.id);
    both.close();
  });

  test('an id the backlog no longer covers, or one never sent, gets a fresh snapshot', async () => {
    const offering = await createOffering(stack);
    const stream = await openSseStream(eventsUrl(stack.url, offering.id));
    const snapshot = await stream.next();
    stream.close();
    // More events than the backlog keeps, published as the activities publish them.
    const event = JSON.stringify({ offeringId: offering.id, units: [], at: new Date().toISOString() });
    for (let i = 0; i < BACKLOG_EVENTS + 200; i++) await appendUnitEvent(stack.deps.redis, offering.id, event);

    for (const lastEventId of [snapshot!.id!, 'not-an-id', `1-${BACKLOG_EVENTS}`]) {
      const again = await openSseStream(eventsUrl(stack.url, offering.id), { 'last-event-id': lastEventId });
      const first = await again.next();
      assert.equal(first?.event, 'snapshot', lastEventId);
      assert.equal(seqOf(first), BACKLOG_EVENTS + 200);
      assert.equal(JSON.parse(first.data!).counts.available, 4);
      again.close();
    }
  });

  test('a stream that sees live events were lost on the way ends at once, so the client resumes from the backlog', async () => {
    const offering = await createOffering(stack);
    const stream = await openSseStream(eventsUrl(stack.url, offering.id));
    const snapshot = await stream.next();
    const [epoch, seq] = snapshot!.id!.split('-');
    // Event seq + 1 never arrived: the next one the channel carries skips it.
    await stack.deps.redis.publish(unitEventsChannel(offering.id), `${epoch}-${Number(seq) + 2} {"units":[]}`);
    assert.deepEqual(await stream.next(), { retry: '0' });
    assert.equal(await stream.next(), undefined);
  });

  test('the 21st stream from one address gets a 429; the 20 open ones stay open', async () => {
    const url = await serveApi({ SSE_STREAMS_PER_IP: 20 });
    const offering = await createOffering(stack);
    const streams: SseStream[] = [];
    for (let i = 0; i < 20; i++) {
      const stream = await openSseStream(eventsUrl(url, offering.id));
      assert.equal(stream.status, 200);
      assert.equal((await stream.next())?.event, 'snapshot');
      streams.push(stream);
    }

    const refused = await openSseStream(eventsUrl(url, offering.id));
    assert.equal(refused.status, 429);
    assert.match(refused.headers.get('content-type') ?? '', /application\/problem\+json/);
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    assert.match((refused.problem as { detail: string }).detail, /At most 20 live streams/);

    await hold(offering.id, [offering.unitIds[0]]);
    for (const stream of streams) assert.deepEqual(unitsOf(await stream.next()), [{ id: offering.unitIds[0], status: 'held' }]);

    // A stream that closes makes room (the server hears of the hang-up a moment later).
    streams.pop()!.close();
    let admitted = await openSseStream(eventsUrl(url, offering.id));
    for (let attempt = 0; admitted.status === 429 && attempt < 100; attempt++) {
      await setTimeout(20);
      admitted = await openSseStream(eventsUrl(url, offering.id));
    }
    assert.equal(admitted.status, 200);
    for (const stream of [...streams, admitted]) stream.close();
  });

  test('a stream ends at SSE_STREAM_MAX_AGE with a retry hint; reconnecting misses nothing', async () => {
    const url = await serveApi({ SSE_STREAM_MAX_AGE: 'PT2S' });
    const offering = await createOffering(stack);
    const [u0, u1] = offering.unitIds;
    const stream = await openSseStream(eventsUrl(url, offering.id));
    const seen: SseMessage[] = [];
    await hold(offering.id, [u0]);
    let retry: string | undefined;
    for (let message = await stream.next(); message; message = await stream.next()) {
      if (message.id) seen.push(message);
      retry ??= message.retry;
    }
    assert.match(retry ?? '', /^\d+$/, 'the server said when to reconnect before it ended the stream');

    await hold(offering.id, [u1]);
    const resumed = await openSseStream(eventsUrl(url, offering.id), { 'last-event-id': seen.at(-1)!.id! });
    // The hold of u0 came before or after the end; the hold of u1 after it. Either way, each once.
    while (!seen.some((m) => unitsOf(m)?.[0]?.id === u1)) seen.push((await resumed.next())!);
    resumed.close();
    assert.deepEqual(seen.map(seqOf), [0, 1, 2]);
    assert.deepEqual(seen.slice(1).map(unitsOf), [[{ id: u0, status: 'held' }], [{ id: u1, status: 'held' }]]);
  });

  test('a client that stops reading is dropped rather than buffered for', async () => {
    const offering = await createOffering(stack);
    const { port } = new URL(stack.url);
    const socket = net.connect({ host: '127.0.0.1', port: Number(port) });
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.write(`GET /api/v1/offerings/${offering.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await new Promise<void>((resolve) => {
      let received = '';
      const onData = (chunk: Buffer) => {
        received += chunk.toString();
        if (!received.includes('event: snapshot')) return;
        // From here on the client reads nothing: the kernel's buffers fill, then the server's.
        socket.off('data', onData);
        socket.pause();
        resolve();
      };
      socket.on('data', onData);
    });

    const droppedSoFar = async () => {
      const metrics = await (await fetch(`${stack.url}/metrics`)).text();
      return Number(/^sse_slow_clients_dropped_total (\d+)/m.exec(metrics)?.[1] ?? 0);
    };
    const before = await droppedSoFar();
    const event = JSON.stringify({ offeringId: offering.id, units: [], at: new Date().toISOString(), padding: 'x'.repeat(256 * 1024) });
    // Far more than loopback buffers hold (a few MiB): the loop ends at the drop, long before its bound.
    for (let i = 0; i < 400 && (await droppedSoFar()) === before; i++) await appendUnitEvent(stack.deps.redis, offering.id, event);
    assert.equal(await droppedSoFar(), before + 1);

    socket.resume();
    if (!socket.destroyed) await once(socket, 'close');
  });
});
