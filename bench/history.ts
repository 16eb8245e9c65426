/**
 * Where a request's time goes, read from its workflow's history: every event carries the
 * server's timestamp (same machine, same clock as the bench), so the time between sending a
 * request and its answer splits into the API before Temporal, workflow tasks waiting for and
 * running on the worker, activities waiting and running, and the API after the workflow answered.
 */
import type { temporal } from '@temporalio/proto';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export interface Stages {
  /** Request sent → workflow started (auth, validation, reads, the start call). */
  apiBeforeWorkflow: number;
  /** Workflow tasks scheduled → picked up by the worker. */
  workflowTaskWait: number;
  /** Workflow tasks picked up → completed (workflow code, local activities, replay on a cache miss). */
  workflowTaskRun: number;
  /** Activities scheduled → picked up. */
  activityWait: number;
  /** Activities picked up → completed (PostgreSQL, the gateway). */
  activityRun: number;
  /** The rest of the workflow's part: the server between one task and the next. */
  serverBetweenTasks: number;
  /** Workflow answered (update completed) → response received (the API's reads and the reply). */
  apiAfterAnswer: number;
  total: number;
}

export const STAGE_NAMES: ReadonlyArray<keyof Stages> = [
  'apiBeforeWorkflow',
  'workflowTaskWait',
  'workflowTaskRun',
  'activityWait',
  'activityRun',
  'serverBetweenTasks',
  'apiAfterAnswer',
];

/** One request's stages; the workflow's part ends at its first completed update (the answer). */
export function stagesOf(events: readonly HistoryEvent[], sentAtMs: number, receivedAtMs: number): Stages {
  const started = events.find((e) => e.workflowExecutionStartedEventAttributes);
  if (!started) throw new Error('history without a start event');
  const startedAt = timeOf(started);
  const answer = events.find((e) => e.workflowExecutionUpdateCompletedEventAttributes);
  const answeredAt = answer ? timeOf(answer) : receivedAtMs;
  const clip = (from: number, to: number) => Math.max(0, Math.min(to, answeredAt) - Math.max(from, startedAt));

  const byScheduledId = new Map<string, { started?: number; closed?: number }>();
  const note = (scheduledId: unknown, field: 'started' | 'closed', at: number) => {
    const key = String(scheduledId);
    byScheduledId.set(key, { ...byScheduledId.get(key), [field]: at });
  };
  for (const e of events) {
    const at = timeOf(e);
    if (e.workflowTaskStartedEventAttributes) note(e.workflowTaskStartedEventAttributes.scheduledEventId, 'started', at);
    if (e.workflowTaskCompletedEventAttributes) note(e.workflowTaskCompletedEventAttributes.scheduledEventId, 'closed', at);
    if (e.workflowTaskFailedEventAttributes) note(e.workflowTaskFailedEventAttributes.scheduledEventId, 'closed', at);
    if (e.activityTaskStartedEventAttributes) note(e.activityTaskStartedEventAttributes.scheduledEventId, 'started', at);
    if (e.activityTaskCompletedEventAttributes) note(e.activityTaskCompletedEventAttributes.scheduledEventId, 'closed', at);
    if (e.activityTaskFailedEventAttributes) note(e.activityTaskFailedEventAttributes.scheduledEventId, 'closed', at);
  }

  const stages: Stages = {
    apiBeforeWorkflow: Math.max(0, startedAt - sentAtMs),
    workflowTaskWait: 0,
    workflowTaskRun: 0,
    activityWait: 0,
    activityRun: 0,
    serverBetweenTasks: 0,
    apiAfterAnswer: Math.max(0, receivedAtMs - answeredAt),
    total: receivedAtMs - sentAtMs,
  };
  for (const e of events) {
    const isWorkflowTask = Boolean(e.workflowTaskScheduledEventAttributes);
    if (!isWorkflowTask && !e.activityTaskScheduledEventAttributes) continue;
    const scheduledAt = timeOf(e);
    const task = byScheduledId.get(String(e.eventId));
    const pickedUp = task?.started ?? answeredAt;
    const done = task?.closed ?? answeredAt;
    if (isWorkflowTask) {
      stages.workflowTaskWait += clip(scheduledAt, pickedUp);
      stages.workflowTaskRun += clip(pickedUp, done);
    } else {
      stages.activityWait += clip(scheduledAt, pickedUp);
      stages.activityRun += clip(pickedUp, done);
    }
  }
  const workflowPart = Math.max(0, answeredAt - startedAt);
  stages.serverBetweenTasks = Math.max(0, workflowPart - stages.workflowTaskWait - stages.workflowTaskRun - stages.activityWait - stages.activityRun);
  return stages;
}

/** Mean of each stage over several requests. */
export function meanStages(all: readonly Stages[]): Stages {
  const mean = (key: keyof Stages) => all.reduce((sum, s) => sum + s[key], 0) / Math.max(1, all.length);
  return {
    apiBeforeWorkflow: mean('apiBeforeWorkflow'),
    workflowTaskWait: mean('workflowTaskWait'),
    workflowTaskRun: mean('workflowTaskRun'),
    activityWait: mean('activityWait'),
    activityRun: mean('activityRun'),
    serverBetweenTasks: mean('serverBetweenTasks'),
    apiAfterAnswer: mean('apiAfterAnswer'),
    total: mean('total'),
  };
}

/** Workflow tasks and activities in a history, by kind: what one run cost the server. */
export function countTasks(events: readonly HistoryEvent[]): { events: number; workflowTasks: number; activities: number; timers: number } {
  return {
    events: events.length,
    workflowTasks: events.filter((e) => e.workflowTaskScheduledEventAttributes).length,
    activities: events.filter((e) => e.activityTaskScheduledEventAttributes).length,
    timers: events.filter((e) => e.timerStartedEventAttributes).length,
  };
}

function timeOf(event: HistoryEvent): number {
  const time = event.eventTime;
  if (!time) throw new Error(`event ${String(event.eventId)} has no time`);
  // seconds is a Long: its decimal string is exact.
  return Number(String(time.seconds ?? 0)) * 1000 + (time.nanos ?? 0) / 1e6;
}
