import type { Client } from '@temporalio/client';

/** How long a route waits for a workflow's answer unless told: well inside a client's usual 30 s timeout. */
export const ANSWER_WITHIN_MS = 20_000;

export interface WorkflowRouteOptions {
  /**
   * How long a route waits for a workflow's answer. Past it the work goes on durably and the
   * route answers without it: a 202 with what it started as it stands, or a 503 to retry a
   * change (each router says which).
   */
  answerWithinMs?: number;
}

/** Runs a Temporal call under a gRPC deadline; past it the call fails. */
export type AnswerDeadline = <T>(call: () => Promise<T>) => Promise<T>;

/** Runs a Temporal call under a gRPC deadline `answerWithinMs` from now; past it the call fails. */
export function answerDeadline(temporal: Client, options: WorkflowRouteOptions = {}): AnswerDeadline {
  const answerWithinMs = options.answerWithinMs ?? ANSWER_WITHIN_MS;
  return (call) => temporal.connection.withDeadline(Date.now() + answerWithinMs, call);
}
