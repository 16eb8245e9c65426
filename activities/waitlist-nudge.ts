import { Context } from '@temporalio/activity';
import type { Database } from '../db/client';
import { hasWaitingEntries } from '../db/waitlist';
import { waitlistWorkflowId } from '../domain/waitlist';
import type { Logger } from '../platform/logger';
import { unitsFreedSignal, waitlistWorkflow } from '../workflows/waitlist';

/**
 * Tells the offering's waitlist workflow that units came back (a hold ended, a booking was
 * canceled or moved off some), starting it if it is not running — only when somebody waits,
 * which is one probe of an index for every other offering. Best-effort: a lost nudge only waits
 * for the workflow's periodic re-check, so a failure is logged and the caller goes on. Called
 * after the caller's commit, from an activity (the worker's client); elsewhere it does nothing.
 */
export async function nudgeWaitlist(deps: { db: Database; logger: Logger }, offeringId: string): Promise<void> {
  try {
    if (!(await hasWaitingEntries(deps.db, offeringId))) return;
    const context = currentActivity();
    if (!context) return;
    await context.client.workflow.signalWithStart(waitlistWorkflow, {
      workflowId: waitlistWorkflowId(offeringId),
      taskQueue: context.info.taskQueue,
      args: [{ offeringId }],
      signal: unitsFreedSignal,
      signalArgs: [],
    });
  } catch (err) {
    deps.logger.warn({ offeringId, err }, 'waitlist not told of freed units; its re-check will find them');
  }
}

function currentActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}
