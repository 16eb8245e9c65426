import { WorkflowNotFoundError } from '@temporalio/client';
import type { SignalDefinition } from '@temporalio/common';
import type { WebhookOutcome } from '../db/webhook-events';
import type { Logger } from '../platform/logger';
import type { AppDeps } from './deps';
import { HttpProblem } from './problem';

/**
 * What the handlers of gateway events share (api/webhook-payments.ts, api/webhook-cards.ts):
 * their outcomes and the one way they reach Temporal.
 */

// Well inside Stripe's wait for an answer: an unreachable Temporal becomes a 503 it will retry.
export const TEMPORAL_CALL_DEADLINE_MS = 5_000;

export type WebhookLog = Logger;

export const PROCESSED: WebhookOutcome = { outcome: 'processed' };

/** Reasons an event is ignored because it does not match what it names: counted and logged at warn. */
export type MismatchReason = 'foreign_intent' | 'amount_mismatch' | 'currency_mismatch' | 'unknown_customer';

const MISMATCHES = new Set<string>(['foreign_intent', 'amount_mismatch', 'currency_mismatch', 'unknown_customer']);

export function ignored(reason: MismatchReason | 'unhandled_type' | 'unknown_payment_method' | 'payment_method_not_attached'): WebhookOutcome {
  return { outcome: 'ignored', reason };
}

export function isMismatch(outcome: WebhookOutcome): outcome is { outcome: 'ignored'; reason: MismatchReason } {
  return outcome.outcome === 'ignored' && MISMATCHES.has(outcome.reason);
}

/** The event cannot be acted on yet (it outran our own write): 503, and the gateway retries it. */
export function retryLater(detail: string): HttpProblem {
  return new HttpProblem(503, 'Service Unavailable', detail, {}, { 'Retry-After': '5' });
}

/** A Temporal call that gives up (and throws) within the deadline, so the answer is a 503 in time. */
export function withTemporalDeadline<T>(deps: Pick<AppDeps, 'temporal'>, call: () => Promise<T>): Promise<T> {
  return deps.temporal.connection.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, call);
}

/**
 * Signals a workflow; false when it has ended (or never ran), so nothing received the signal.
 * Any other failure (Temporal unreachable) is thrown: the event stays `received` for the retry.
 */
export async function signalIfRunning<T extends unknown[]>(
  deps: Pick<AppDeps, 'temporal'>,
  workflowId: string,
  signal: SignalDefinition<T>,
  ...args: T
): Promise<boolean> {
  try {
    await withTemporalDeadline(deps, () => deps.temporal.workflow.getHandle(workflowId).signal(signal, ...args));
    return true;
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return false;
    throw error;
  }
}
