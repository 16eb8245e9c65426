import type { Redis } from 'ioredis';
import { unitEventsChannel } from '../domain/hold';

/**
 * Every unit status event of an offering gets an id, the same in every process, and is kept in
 * a bounded backlog, so that a client that reconnects to the event stream with the last id it
 * saw is sent exactly what it missed.
 *
 * An id is `<epoch>-<seq>`: `seq` counts the offering's events (1, 2, 3 …) and `epoch` is the
 * Redis time, in microseconds, at which that count started. The count and the backlog expire
 * after BACKLOG_RETENTION_MS without an event (and are gone after a Redis restart without
 * persistence); the count then starts again under a new epoch, so an id from before can never
 * be mistaken for one after, and its holder is sent a fresh snapshot instead of a replay.
 *
 * Per offering, in one hash slot (`{offeringId}`), so the scripts also run on a cluster:
 * `…:meta`, a hash of `epoch` and `seq`; `…:log`, a Redis Stream whose entry ids are the event
 * ids (`<epoch>-<seq>` is a valid stream id) and whose entries hold the event's JSON.
 */

/** At least this many of an offering's latest events are kept for replay (`MAXLEN ~`). */
export const BACKLOG_EVENTS = 1000;
/** An offering's count and backlog expire this long after its latest event or stream connect. */
export const BACKLOG_RETENTION_MS = 60 * 60 * 1000;

export interface EventId {
  epoch: number;
  seq: number;
}

/** An event as the log and the live channel carry it: its id and its JSON. */
export interface LoggedEvent {
  id: EventId;
  data: string;
}

const metaKey = (offeringId: string) => `unit-events:{${offeringId}}:meta`;
const logKey = (offeringId: string) => `unit-events:{${offeringId}}:log`;

// Starts the offering's count under a new epoch when it has none; answers the epoch. The backlog
// of an expired count is dropped with it, so a stream id is never reused. Shared by both scripts.
const ENSURE_EPOCH = `
local function ensure_epoch()
  local epoch = redis.call('HGET', KEYS[1], 'epoch')
  if epoch then return epoch end
  local now = redis.call('TIME')
  epoch = now[1] .. string.format('%06d', tonumber(now[2]))
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  return epoch
end`;

// Numbers, logs and publishes one event, atomically: the channel carries events in id order,
// and an event is in the backlog before any subscriber sees it.
// ARGV: channel, event JSON, backlog size, retention in ms.
const APPEND_SCRIPT = `${ENSURE_EPOCH}
local epoch = ensure_epoch()
local id = epoch .. '-' .. redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], id, 'data', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[1], id .. ' ' .. ARGV[2])
return id`;

// The position a new stream starts at (epoch, seq) and, when the client's last id (ARGV: epoch,
// seq) is of this epoch and the backlog still holds the event after it, the events after it.
// The third answer is 1 for a replay, 0 when the client needs a snapshot. ARGV[3]: retention.
const JOIN_SCRIPT = `${ENSURE_EPOCH}
local epoch = ensure_epoch()
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
if ARGV[1] ~= epoch then return {epoch, seq, 0, {}} end
local last = tonumber(ARGV[2])
if last == seq then return {epoch, seq, 1, {}} end
if last > seq then return {epoch, seq, 0, {}} end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
if not first or tonumber(string.match(first[1], '-(%d+)$')) > last + 1 then return {epoch, seq, 0, {}} end
return {epoch, seq, 1, redis.call('XRANGE', KEYS[2], '(' .. epoch .. '-' .. ARGV[2], '+')}`;

const ID_PATTERN = /^(\d{1,16})-(\d{1,15})$/;

export function formatEventId(id: EventId): string {
  return `${id.epoch}-${id.seq}`;
}

/** The id in an SSE `Last-Event-ID`; undefined for anything this server never sent. */
export function parseEventId(text: string | undefined): EventId | undefined {
  const match = text === undefined ? null : ID_PATTERN.exec(text.trim());
  if (!match) return undefined;
  const id = { epoch: Number(match[1]), seq: Number(match[2]) };
  return Number.isSafeInteger(id.epoch) && Number.isSafeInteger(id.seq) ? id : undefined;
}

/**
 * Whether `event` comes after `last`. An event of another epoch is new by definition: its count
 * started again, so its seq says nothing about `last`.
 */
export function isAfter(event: EventId, last: EventId): boolean {
  return event.epoch !== last.epoch || event.seq > last.seq;
}

/**
 * Whether `event` is the one right after `last`. The channel carries every event of an offering in
 * order, so a live event that is after `last` but not right after it means some were lost on the
 * way (the subscriber's connection dropped a while, say).
 */
export function followsDirectly(event: EventId, last: EventId): boolean {
  return event.epoch === last.epoch ? event.seq === last.seq + 1 : event.seq === 1;
}

/** A message of the live channel (`<id> <json>`); undefined for anything else. */
export function parseLiveMessage(message: string): LoggedEvent | undefined {
  const space = message.indexOf(' ');
  const id = space > 0 ? parseEventId(message.slice(0, space)) : undefined;
  return id && { id, data: message.slice(space + 1) };
}

/** Numbers, logs and publishes an offering's event (JSON); answers its id. */
export async function appendUnitEvent(redis: Redis, offeringId: string, data: string): Promise<EventId> {
  const id = (await redis.eval(
    APPEND_SCRIPT,
    2,
    metaKey(offeringId),
    logKey(offeringId),
    unitEventsChannel(offeringId),
    data,
    BACKLOG_EVENTS,
    BACKLOG_RETENTION_MS,
  )) as string;
  return parseEventId(id)!;
}

/**
 * The offering's position in its event log: the id of its latest event (`<epoch>-<seq>`, seq 0
 * before the first), or '' while it has no count (never joined nor published to, or expired). One
 * HMGET, no script: every publish changes it, so a copy of anything read after it was taken is
 * current for as long as it stays the same. An expired count restarts under a new epoch, so a
 * position never comes back.
 */
export async function currentPosition(redis: Redis, offeringId: string): Promise<string> {
  const [epoch, seq] = await redis.hmget(metaKey(offeringId), 'epoch', 'seq');
  return epoch === null ? '' : `${epoch}-${seq ?? 0}`;
}

export type JoinAnswer =
  /** The events after the client's id, up to `position`, in order. */
  | { position: EventId; replay: LoggedEvent[] }
  /** No replay possible: the client needs a snapshot, which reflects every event up to `position`. */
  | { position: EventId; replay: undefined };

/**
 * Where a new stream of the offering starts. Call it after subscribing to the live channel: every
 * event after `position` then arrives live, every event up to it is in the replay (or in a
 * snapshot read after this answer), so dropping live events not after `position` joins the two
 * with no gap and no duplicate.
 */
export async function joinUnitEvents(redis: Redis, offeringId: string, lastSeen: EventId | undefined): Promise<JoinAnswer> {
  const [epoch, seq, replayable, entries] = (await redis.eval(
    JOIN_SCRIPT,
    2,
    metaKey(offeringId),
    logKey(offeringId),
    lastSeen ? String(lastSeen.epoch) : '',
    lastSeen ? String(lastSeen.seq) : '0',
    BACKLOG_RETENTION_MS,
  )) as [string, number, number, Array<[string, string[]]>];
  const position = { epoch: Number(epoch), seq: Number(seq) };
  if (!lastSeen || replayable !== 1) return { position, replay: undefined };
  return { position, replay: entries.map(([id, fields]) => ({ id: parseEventId(id)!, data: fields[1] })) };
}
