/**
 * What a booking tells the workflow of the hold it consumes (`hold-<id>`, workflows/hold.ts):
 * keep the units while the customer authenticates, and stop waiting once the booking settled it.
 */
import { getExternalWorkflowHandle, log, patched } from '@temporalio/workflow';
import { holdWorkflowId } from '../../domain/hold';
import { HOLD_KEPT_PATCH, holdKeptSignal, holdSettledSignal } from '../hold';

/**
 * The customer is authenticating the charge (3-D Secure): the hold's workflow keeps the units
 * past its TTL (up to HOLD_MAX_EXTENSION) until the booking settles the hold. Runs from before
 * this send nothing, as they did.
 */
export async function keepHold(holdId: string): Promise<void> {
  if (!patched(HOLD_KEPT_PATCH)) return;
  try {
    await getExternalWorkflowHandle(holdWorkflowId(holdId)).signal(holdKeptSignal);
  } catch (err) {
    // Already finished (its TTL fired): the confirm will find the hold gone and compensate.
    log.info('hold workflow not asked to keep the hold', { error: String(err) });
  }
}

/** The hold's own workflow stops waiting for its TTL: the booking has settled the hold. */
export async function tellHoldSettled(holdId: string): Promise<void> {
  try {
    await getExternalWorkflowHandle(holdWorkflowId(holdId)).signal(holdSettledSignal);
  } catch (err) {
    // Already finished (its TTL fired): there is nobody left to tell.
    log.info('hold workflow not signalled', { error: String(err) });
  }
}
