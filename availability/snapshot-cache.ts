import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../platform/logger';
import { currentPosition } from './unit-event-log';

/** An offering's availability as answered: the JSON's bytes, and their ETag. */
export interface RenderedSnapshot {
  body: Buffer;
  etag: string;
}

interface Entry extends RenderedSnapshot {
  /** The offering's event-log position, read before the snapshot: it reflects every event up to it. */
  position: string;
  /** When its PostgreSQL read started (ms since the epoch). */
  readFromMs: number;
}

/**
 * A cached snapshot is read again from PostgreSQL after this long, whatever the event log says:
 * the bound on how long a change whose event was never published (the publisher lost Redis
 * between its commit and its publish) can stay unseen.
 */
export const SNAPSHOT_MAX_AGE_MS = 1000;
/** The cache holds at most this many bytes of JSON (an offering of 2,000 units is ~300 kB). */
export const SNAPSHOT_CACHE_MAX_BYTES = 32 * 1024 * 1024;

export interface SnapshotCacheOptions {
  redis: Redis;
  logger: Logger;
  /** The offering's availability as GET /availability answers it, read from PostgreSQL (throws a 404 problem). */
  read: (offeringId: string) => Promise<unknown>;
  maxAgeMs?: number;
  maxBytes?: number;
}

export type SnapshotCache = ReturnType<typeof createSnapshotCache>;

/**
 * The API process's copy of each offering's availability, rendered once (JSON bytes and ETag),
 * so that a read that hits costs one Redis HMGET and a socket write instead of two PostgreSQL
 * queries, their rows and a JSON.stringify.
 *
 * Never stale, precisely: every change to a unit's claim is published, after its commit, as an
 * event that moves the offering's position in its event log (availability/unit-event-log.ts). A
 * snapshot is tagged with the position read *before* its PostgreSQL read, so it reflects at least
 * every event up to its tag, and every read compares the tag with the position in Redis now. So a
 * read that starts after an event's publish has returned (e.g. after the 201 of the hold that
 * caused it) reflects that event, exactly as a PostgreSQL read would; between a change's commit
 * and its publish (a few ms) a read may show the state before it, as the live stream does. A
 * change whose publish failed moves no position: it shows within SNAPSHOT_MAX_AGE_MS.
 *
 * Why a Redis read on every request rather than trusting invalidations from the live hub's
 * subscription: a pub/sub message can still be on its way when the next read arrives, and is lost
 * outright while the subscriber reconnects, so the cache would be stale by an amount nobody can
 * bound. One HMGET costs the API ~0.07 ms of CPU under load (its socket write, mostly) against
 * ~0.8 ms for the PostgreSQL read it saves (bench/README.md), and reads of one offering that
 * arrive together share one (positionChecks): strict is cheap enough.
 *
 * With Redis not ready, or the HMGET failing, every read goes to PostgreSQL (as before the cache)
 * and the cache is emptied: events that could not be published meanwhile must not leave a
 * snapshot looking current once Redis is back.
 */
export function createSnapshotCache(options: SnapshotCacheOptions) {
  const { redis, logger, read } = options;
  const positionOf = positionChecks(redis);
  const maxAgeMs = options.maxAgeMs ?? SNAPSHOT_MAX_AGE_MS;
  const maxBytes = options.maxBytes ?? SNAPSHOT_CACHE_MAX_BYTES;
  // Least recently used first (a Map iterates in insertion order; a hit re-inserts its entry).
  const entries = new Map<string, Entry>();
  let bytes = 0;
  // Reads under way, by offering and position: readers that arrive together share one.
  const reading = new Map<string, Promise<Entry>>();

  function remove(offeringId: string): void {
    const entry = entries.get(offeringId);
    if (!entry) return;
    entries.delete(offeringId);
    bytes -= entry.body.length;
  }

  function clear(): void {
    entries.clear();
    bytes = 0;
  }

  function store(offeringId: string, entry: Entry): void {
    remove(offeringId);
    if (entry.body.length > maxBytes) return;
    entries.set(offeringId, entry);
    bytes += entry.body.length;
    for (const [oldest] of entries) {
      if (bytes <= maxBytes) break;
      remove(oldest);
    }
  }

  async function readTagged(offeringId: string, position: string): Promise<Entry> {
    const key = `${offeringId} ${position}`;
    // Sharing is sound: a reader with the same position has no event to see that this read misses.
    const underWay = reading.get(key);
    if (underWay) return underWay;
    const readFromMs = Date.now();
    const pending = read(offeringId).then((json) => ({ ...render(json), position, readFromMs }));
    reading.set(key, pending);
    try {
      const entry = await pending;
      store(offeringId, entry);
      return entry;
    } finally {
      reading.delete(key);
    }
  }

  return {
    /** The offering's availability, current as of this call (see above); a 404 problem for no such offering. */
    async get(offeringId: string): Promise<RenderedSnapshot> {
      if (redis.status !== 'ready') {
        clear();
        return render(await read(offeringId));
      }
      let position: string;
      try {
        position = await positionOf(offeringId);
      } catch (err) {
        logger.warn({ err, offeringId }, 'availability cache: event-log position unreadable; read from PostgreSQL');
        clear();
        return render(await read(offeringId));
      }
      const cached = entries.get(offeringId);
      if (cached && cached.position === position && Date.now() - cached.readFromMs < maxAgeMs) {
        entries.delete(offeringId);
        entries.set(offeringId, cached);
        return cached;
      }
      return readTagged(offeringId, position);
    },
    /** What the cache holds, for tests and metrics. */
    stats: () => ({ offerings: entries.size, bytes }),
  };
}

/** The JSON's bytes and a weak ETag of them (the form Express gives its own). */
function render(json: unknown): RenderedSnapshot {
  const body = Buffer.from(JSON.stringify(json));
  const digest = createHash('sha1').update(body).digest('base64').slice(0, 27);
  return { body, etag: `W/"${body.length.toString(16)}-${digest}"` };
}

/** A position read not sent yet: only such a check may be joined, never one already on its way. */
interface PositionCheck {
  promise: Promise<string>;
  resolve: (position: string) => void;
  reject: (err: unknown) => void;
}

/**
 * The offering's position, read from Redis after this call: each call joins a check that has not
 * been sent yet, or starts one. At most one HMGET per offering is on its way; the readers that
 * arrive meanwhile share the next, sent when it answers. So under load one HMGET serves every read
 * of a loop turn or two, and no reader is ever answered with a position read before it asked.
 */
export function positionChecks(redis: Redis): (offeringId: string) => Promise<string> {
  const inFlight = new Set<string>();
  const waiting = new Map<string, PositionCheck>();

  function send(offeringId: string, check: PositionCheck): void {
    inFlight.add(offeringId);
    currentPosition(redis, offeringId)
      .then(check.resolve, check.reject)
      .finally(() => {
        inFlight.delete(offeringId);
        const next = waiting.get(offeringId);
        if (next) {
          waiting.delete(offeringId);
          send(offeringId, next);
        }
      });
  }

  return (offeringId) => {
    const queued = waiting.get(offeringId);
    if (queued) return queued.promise;
    let resolve!: (position: string) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<string>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const check: PositionCheck = { promise, resolve, reject };
    if (inFlight.has(offeringId)) waiting.set(offeringId, check);
    else send(offeringId, check);
    return promise;
  };
}
