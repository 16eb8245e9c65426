import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { createStreamLimits, EventStream, MAX_UNREAD_BYTES, type StreamSink } from './event-stream';
import { HttpProblem } from './problem';

/**
 * A response whose client reads nothing unless told: every byte written stays unread, and
 * write() answers false past a high-water mark, as a socket's does.
 */
class FakeSink implements StreamSink {
  written: string[] = [];
  writableLength = 0;
  ended = false;
  destroyed = false;
  private listeners: Record<string, Array<() => void>> = {};

  write(chunk: string): boolean {
    this.written.push(chunk);
    this.writableLength += Buffer.byteLength(chunk);
    return this.writableLength < 16 * 1024;
  }

  end(): void {
    this.ended = true;
    this.emit('close');
  }

  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }

  on(event: 'close' | 'drain', listener: () => void): void {
    (this.listeners[event] ??= []).push(listener);
  }

  /** The client reads everything written so far. */
  drain(): void {
    this.writableLength = 0;
    this.emit('drain');
  }

  private emit(event: string): void {
    for (const listener of this.listeners[event] ?? []) listener();
  }
}

const KIB = 1024;
const event = (bytes: number) => 'x'.repeat(bytes);

describe('an event stream', () => {
  let dropped: number[];
  const open = (sink: FakeSink, maxAgeMs = 60_000) => new EventStream(sink, { maxAgeMs, onSlowClient: (unread) => dropped.push(unread) });

  beforeEach(() => {
    dropped = [];
    mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  });

  afterEach(() => mock.timers.reset());

  test('writes events with their id, name and data', () => {
    const sink = new FakeSink();
    open(sink).send('units', '17-3', '{"a":1}');
    assert.deepEqual(sink.written, ['id: 17-3\nevent: units\ndata: {"a":1}\n\n']);
  });

  test('a client that leaves more than the bound unread once live is dropped, once', () => {
    const sink = new FakeSink();
    const stream = open(sink);
    stream.goLive();
    for (let i = 0; i < 100 && !sink.destroyed; i++) stream.send('units', `1-${i}`, event(4 * KIB));
    assert.equal(sink.destroyed, true);
    assert.equal(dropped.length, 1);
    assert.ok(dropped[0] > MAX_UNREAD_BYTES, `${dropped[0]} bytes unread`);
    const writes = sink.written.length;
    stream.send('units', '1-999', 'late');
    assert.equal(sink.written.length, writes, 'nothing is written after the drop');
    assert.ok(sink.writableLength <= MAX_UNREAD_BYTES + 4 * KIB + 100, 'it never held much more than the bound');
  });

  test('a large opening (snapshot, replay) is not held against the client; what follows it is bounded', () => {
    const sink = new FakeSink();
    const stream = open(sink);
    stream.send('snapshot', '1-0', event(300 * KIB));
    stream.goLive();
    stream.send('units', '1-1', event(32 * KIB));
    assert.equal(sink.destroyed, false, 'the opening is still unread, and the client is not dropped for it');
    stream.send('units', '1-2', event(40 * KIB));
    assert.equal(sink.destroyed, true, 'but 72 KiB more unread is too much');
  });

  test('once the client caught up, the bound counts from nothing again', () => {
    const sink = new FakeSink();
    const stream = open(sink);
    stream.send('snapshot', '1-0', event(300 * KIB));
    stream.goLive();
    sink.drain();
    stream.send('units', '1-1', event(60 * KIB));
    assert.equal(sink.destroyed, false);
    stream.send('units', '1-2', event(8 * KIB));
    assert.equal(sink.destroyed, true, 'the opening no longer widens the bound');
  });

  test('a client that keeps reading is never dropped', () => {
    const sink = new FakeSink();
    const stream = open(sink);
    stream.goLive();
    for (let i = 0; i < 1000; i++) {
      stream.send('units', `1-${i}`, event(2 * KIB));
      if (i % 10 === 0) sink.drain();
    }
    assert.equal(sink.destroyed, false);
    assert.deepEqual(dropped, []);
  });

  test('at its maximum age it says when to reconnect, then ends', () => {
    const sink = new FakeSink();
    open(sink, 30 * 60_000);
    mock.timers.tick(15_000);
    assert.deepEqual(sink.written, [': keep-alive\n\n']);
    mock.timers.tick(30 * 60_000);
    assert.equal(sink.ended, true);
    assert.match(sink.written.at(-1)!, /^retry: \d+\n\n$/);
    const writes = sink.written.length;
    mock.timers.tick(60_000);
    assert.equal(sink.written.length, writes, 'no heartbeat after the end');
  });
});

describe('stream limits', () => {
  const problemOf = (fn: () => unknown): HttpProblem => {
    try {
      fn();
    } catch (err) {
      if (err instanceof HttpProblem) return err;
      throw err;
    }
    assert.fail('no problem thrown');
  };

  test('per address: one more than allowed is a 429 with Retry-After; closing one makes room', () => {
    const limits = createStreamLimits({ perAddress: 2, max: 10 });
    const first = limits.admit('10.0.0.1');
    limits.admit('10.0.0.1');
    const refused = problemOf(() => limits.admit('10.0.0.1'));
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers['Retry-After']) > 0);
    limits.admit('10.0.0.2');
    first();
    first();
    limits.admit('10.0.0.1');
    assert.equal(problemOf(() => limits.admit('10.0.0.1')).status, 429, 'a release counts once');
  });

  test('per process: past the maximum every address gets a 503 with Retry-After', () => {
    const limits = createStreamLimits({ perAddress: 5, max: 2 });
    const release = limits.admit('10.0.0.1');
    limits.admit('10.0.0.2');
    const refused = problemOf(() => limits.admit('10.0.0.3'));
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers['Retry-After']) > 0);
    release();
    limits.admit('10.0.0.3');
  });
});
