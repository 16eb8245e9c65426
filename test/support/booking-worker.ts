import { setTimeout } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';

/**
 * Waits for a workflow to close without asking for its result: on the time-skipping server,
 * awaiting a result lets time jump to the next timer of any workflow (a booking waits for its
 * offering's end), so tests that must not skip time poll instead.
 */
export async function waitUntilClosed(handle: WorkflowHandle): Promise<void> {
  while ((await handle.describe()).status.name === 'RUNNING') await setTimeout(20);
}
