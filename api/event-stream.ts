import type { Response } from 'express';
import { countSseStream } from './metrics';
import { HttpProblem } from './problem';

/**
 * Server-Sent Event plumbing that is not about availability: how many streams may be open, and a
 * writer that ends a stream at its maximum age and drops a client that stops reading.
 */

/** What a live stream may leave unread in memory, on top of what it opened with (a snapshot, a replay). */
export const MAX_UNREAD_BYTES = 64 * 1024;
// Comments keep proxies from closing an idle stream; well under the usual 60 s idle timeouts.
const HEARTBEAT_MS = 15_000;
// Streams opened together (after a deploy, say) end spread over the last tenth of their age, and
// reconnect spread over a few seconds, rather than all at once.
const AGE_SPREAD = 0.1;
const RECONNECT_MIN_MS = 1000;
const RECONNECT_SPREAD_MS = 4000;
const RETRY_AFTER_PER_ADDRESS_S = 30;
const RETRY_AFTER_PROCESS_FULL_S = 5;

export interface StreamLimits {
  /** Counts a stream of `address`, or throws 429 (the address has its share) or 503 (the process is full); the answer uncounts it, once. */
  admit(address: string): () => void;
}

/**
 * Counts open streams per client address and in all, in this process: a client spread over
 * several API processes by a load balancer gets a share in each.
 */
export function createStreamLimits(limits: { perAddress: number; max: number }): StreamLimits {
  const byAddress = new Map<string, number>();
  let open = 0;
  return {
    admit(address) {
      const mine = byAddress.get(address) ?? 0;
      if (mine >= limits.perAddress) {
        throw new HttpProblem(
          429,
          'Too Many Requests',
          `At most ${limits.perAddress} live streams may be open per client address; close one first.`,
          {},
          { 'Retry-After': String(RETRY_AFTER_PER_ADDRESS_S) },
        );
      }
      if (open >= limits.max) {
        throw new HttpProblem(
          503,
          'Service Unavailable',
          'This server has as many live streams open as it serves; retry shortly, or poll /availability.',
          {},
          { 'Retry-After': String(RETRY_AFTER_PROCESS_FULL_S) },
        );
      }
      byAddress.set(address, mine + 1);
      open += 1;
      const uncount = countSseStream();
      let counted = true;
      return () => {
        if (!counted) return;
        counted = false;
        open -= 1;
        uncount();
        const left = (byAddress.get(address) ?? 1) - 1;
        if (left > 0) byAddress.set(address, left);
        else byAddress.delete(address);
      };
    },
  };
}

/** The part of a response a stream writes to (a fake one in unit tests). */
export interface StreamSink {
  write(chunk: string): boolean;
  /** Bytes written but not yet taken by the kernel. */
  readonly writableLength: number;
  end(): unknown;
  destroy(): unknown;
  on(event: 'close' | 'drain', listener: () => void): unknown;
}

export interface EventStreamOptions {
  maxAgeMs: number;
  /** Called once when the client is dropped for leaving `unreadBytes` unread. */
  onSlowClient: (unreadBytes: number) => void;
}

/**
 * Writes events to one client. What the client leaves unread stays in this process's memory, so
 * once `goLive()` says the opening events are written, a write that leaves more than
 * MAX_UNREAD_BYTES unread (beyond what was still unread of the opening ones, until that drains)
 * drops the client: its connection is destroyed, it reconnects with its last id and misses nothing.
 * At its maximum age the stream says when to reconnect (`retry:`) and ends.
 */
export class EventStream {
  private unreadLimit = Number.POSITIVE_INFINITY;
  private live = false;
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly ageTimer: NodeJS.Timeout;

  constructor(
    private readonly sink: StreamSink,
    private readonly options: EventStreamOptions,
  ) {
    this.heartbeat = setInterval(() => this.write(': keep-alive\n\n'), HEARTBEAT_MS);
    this.ageTimer = setTimeout(() => this.expire(), options.maxAgeMs * (1 - AGE_SPREAD * Math.random()));
    sink.on('close', () => this.stop());
    sink.on('drain', () => {
      if (this.live) this.unreadLimit = MAX_UNREAD_BYTES;
    });
  }

  /** One event; `data` is a single line (JSON). */
  send(event: string, id: string, data: string): void {
    this.write(`id: ${id}\nevent: ${event}\ndata: ${data}\n\n`);
  }

  /** The opening events are written: from now on what the client leaves unread is bounded. */
  goLive(): void {
    this.live = true;
    this.unreadLimit = this.sink.writableLength + MAX_UNREAD_BYTES;
  }

  private write(chunk: string): void {
    if (this.closed) return;
    // write() answers false once the kernel's buffer is full and bytes queue up here.
    if (this.sink.write(chunk) || this.sink.writableLength <= this.unreadLimit) return;
    const unread = this.sink.writableLength;
    this.stop();
    this.options.onSlowClient(unread);
    this.sink.destroy();
  }

  /** Ends the stream, telling the client to reconnect after `retryMs`. */
  end(retryMs: number): void {
    if (this.closed) return;
    this.write(`retry: ${retryMs}\n\n`);
    if (this.closed) return;
    this.stop();
    this.sink.end();
  }

  private expire(): void {
    this.end(RECONNECT_MIN_MS + Math.floor(Math.random() * RECONNECT_SPREAD_MS));
  }

  private stop(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.ageTimer);
  }
}

/** Answers 200 with an event stream's headers, sent at once, and a writer for it. */
export function openEventStream(res: Response, options: EventStreamOptions): EventStream {
  res.status(200).set({
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();
  return new EventStream(res, options);
}
