import type { Request, Response } from 'express';
import { z } from 'zod';
import { createLiveHub } from '../availability/live-hub';
import { followsDirectly, formatEventId, isAfter, joinUnitEvents, parseEventId, type LoggedEvent } from '../availability/unit-event-log';
import { durationToMilliseconds } from '../domain/period';
import type { AppDeps } from './deps';
import { createStreamLimits, openEventStream } from './event-stream';
import { countSlowSseClientDropped } from './metrics';
import { HttpProblem } from './problem';
import { clientAddress } from './rate-limit';

export const eventsQuerySchema = z.strictObject({
  lastEventId: z.string().max(64).optional().meta({
    description: 'The id of the last event received, for clients that cannot send the `Last-Event-ID` header (which wins when both are sent).',
  }),
});

// Live events that may arrive while a stream is being joined; past this the client is asked to
// come back rather than buffered for.
const MAX_EVENTS_WHILE_JOINING = 1000;

export interface AvailabilityReader {
  /** The offering, or a 404 problem. */
  findOffering(id: string): Promise<{ id: string }>;
  /** Every unit's status now, as GET /availability answers it (its JSON text). */
  snapshotJson(offeringId: string): Promise<string>;
}

/**
 * GET /offerings/{id}/events. A new stream starts with a `snapshot`; a stream that resumes
 * (`Last-Event-ID`) starts with the `units` events after that id instead, or with a snapshot when
 * the backlog no longer holds them (or the id is not one this server sent). Then `units` events
 * as they are published. Every event carries its id (availability/unit-event-log.ts), and each
 * `units` event the database time its statuses were read at (`at`): clients keep the newest per
 * unit, as two processes may publish in the other order than they read.
 *
 * No gap, no duplicate: the stream subscribes to the live channel first, then asks Redis where it
 * stands (one script: the position, and the replay up to it), then reads the snapshot; live
 * events that arrived meanwhile are held, and only those after the position are written.
 */
export function availabilityStreams(deps: AppDeps, reader: AvailabilityReader) {
  const hub = createLiveHub(deps.redis, deps.logger);
  const limits = createStreamLimits({ perAddress: deps.config.SSE_STREAMS_PER_IP, max: deps.config.SSE_STREAMS_MAX });
  const maxAgeMs = durationToMilliseconds(deps.config.SSE_STREAM_MAX_AGE);

  return async function serve(req: Request, res: Response, offeringId: string, lastEventIdQuery: string | undefined): Promise<void> {
    // Counted before any work, and uncounted however the request ends.
    res.once('close', limits.admit(clientAddress(req)));
    const offering = await reader.findOffering(offeringId);
    if (deps.redis.status !== 'ready') {
      throw new HttpProblem(503, 'Service Unavailable', 'Live availability is unavailable right now; poll /availability instead.');
    }
    const lastSeen = parseEventId(req.get('last-event-id') ?? lastEventIdQuery);

    const early: LoggedEvent[] = [];
    let overflowed = false;
    let deliver = (event: LoggedEvent) => {
      if (early.length < MAX_EVENTS_WHILE_JOINING) early.push(event);
      else overflowed = true;
    };
    const unsubscribe = await hub.subscribe(offering.id, (event) => deliver(event));
    if (res.closed) return unsubscribe();
    res.once('close', unsubscribe);
    const joined = await joinUnitEvents(deps.redis, offering.id, lastSeen);
    const opening = joined.replay
      ? joined.replay.map((event) => ({ name: 'units', ...event }))
      : [{ name: 'snapshot', id: joined.position, data: await reader.snapshotJson(offering.id) }];
    if (overflowed) {
      throw new HttpProblem(503, 'Service Unavailable', 'Availability is changing too fast to join right now; retry.', {}, { 'Retry-After': '1' });
    }
    if (res.closed) return;

    const stream = openEventStream(res, {
      maxAgeMs,
      onSlowClient: (unreadBytes) => {
        req.log.warn({ offeringId: offering.id, unreadBytes }, 'event stream client dropped: it stopped reading');
        countSlowSseClientDropped();
      },
    });
    for (const event of opening) stream.send(event.name, formatEventId(event.id), event.data);
    stream.goLive();
    let last = joined.position;
    deliver = (event) => {
      if (!isAfter(event.id, last)) return;
      if (!followsDirectly(event.id, last)) {
        // The client resumes after `last` at once and is sent the lost events from the backlog.
        req.log.warn(
          { offeringId: offering.id, last: formatEventId(last), received: formatEventId(event.id) },
          'live unit events lost; stream ended',
        );
        stream.end(0);
        return;
      }
      last = event.id;
      stream.send('units', formatEventId(event.id), event.data);
    };
    early.forEach(deliver);
  };
}
