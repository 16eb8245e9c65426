import type { Redis } from 'ioredis';
import { unitEventsChannel } from '../domain/hold';
import type { Logger } from '../platform/logger';
import { parseLiveMessage, type LoggedEvent } from './unit-event-log';

export type LiveHub = ReturnType<typeof createLiveHub>;

/**
 * The receiving end of `unit-events`: one Redis subscriber connection per app for every open
 * event stream, opened with the first stream and closed with the last, fanning each offering's
 * events (JSON `UnitStatusEvent`s with their ids, read once per message) out to its streams.
 */
export function createLiveHub(redis: Redis, logger: Logger) {
  let subscriber: Redis | undefined;
  const listeners = new Map<string, Set<(event: LoggedEvent) => void>>();
  // Per channel, its SUBSCRIBE: every listener waits for it, not only the first, since a stream
  // that goes on before the server has the subscription could miss an event.
  const subscribed = new Map<string, Promise<unknown>>();

  function connection(): Redis {
    if (subscriber) return subscriber;
    const created = redis.duplicate();
    created.on('message', (channel: string, message: string) => {
      const event = parseLiveMessage(message);
      if (event) listeners.get(channel)?.forEach((listener) => listener(event));
      else logger.warn({ channel }, 'unit event without an id ignored');
    });
    created.on('error', (err) => logger.warn({ err }, 'unit event subscriber error'));
    subscriber = created;
    return created;
  }

  return {
    /** Calls `listener` with each status event of the offering until the answered function is called. */
    async subscribe(offeringId: string, listener: (event: LoggedEvent) => void): Promise<() => void> {
      const channel = unitEventsChannel(offeringId);
      const conn = connection();
      let channelListeners = listeners.get(channel);
      if (!channelListeners) {
        channelListeners = new Set();
        listeners.set(channel, channelListeners);
      }
      channelListeners.add(listener);
      let active = true;
      const unsubscribe = () => {
        if (!active) return;
        active = false;
        channelListeners.delete(listener);
        if (channelListeners.size > 0) return;
        listeners.delete(channel);
        subscribed.delete(channel);
        if (listeners.size === 0) {
          subscriber = undefined;
          conn.quit().catch(() => conn.disconnect());
        } else {
          conn.unsubscribe(channel).catch((err: unknown) => logger.warn({ err, channel }, 'unsubscribe failed'));
        }
      };
      let subscription = subscribed.get(channel);
      if (!subscription) {
        subscription = conn.subscribe(channel);
        subscribed.set(channel, subscription);
      }
      try {
        await subscription;
      } catch (err) {
        unsubscribe();
        throw err;
      }
      return unsubscribe;
    },
  };
}
