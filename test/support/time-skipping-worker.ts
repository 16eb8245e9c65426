/**
 * A worker on a fresh time-skipping server, with the stores its activities use: the set-up of the
 * workflow tests that run the real workflow bundle against real activities (workflows/*.test.ts).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { bookingWorkflowId } from '../../domain/booking';
import { bundleWorkflows } from '../../platform/worker';
import { bookingDecisionUpdate, bookingWorkflow } from '../../workflows/booking';
import { openTestStores, type TestStores } from './stores';
import { createTimeSkippingEnv } from './temporal';

export interface TimeSkippingWorker extends TestStores {
  env: TestWorkflowEnvironment;
  /** Stops the worker (awaiting its last tasks), tears the server down, then closes the stores. */
  close(): Promise<void>;
}

export interface TimeSkippingWorkerOptions {
  taskQueue: string;
  /** The worker's activities, built on the stores: a test wraps real ones to inject faults or record calls. */
  activities: (deps: TestStores) => object;
}

export async function startTimeSkippingWorker(options: TimeSkippingWorkerOptions): Promise<TimeSkippingWorker> {
  const stores = await openTestStores();
  const env = await createTimeSkippingEnv();
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: options.taskQueue,
    workflowBundle: await bundleWorkflows(),
    activities: options.activities(stores),
  });
  const running = worker.run();
  return {
    ...stores,
    env,
    close: async () => {
      worker.shutdown();
      await running;
      await env.teardown();
      await stores.close();
    },
  };
}

/** Starts the booking of a held set of units, paid by a card that succeeds, and waits until it is confirmed. */
export async function startConfirmedBooking(env: TestWorkflowEnvironment, taskQueue: string, input: { holdId: string; userId: string }) {
  const bookingId = randomUUID();
  const handle = await env.client.workflow.start(bookingWorkflow, {
    workflowId: bookingWorkflowId(bookingId),
    taskQueue,
    args: [{ ...input, bookingId, paymentMethod: 'pm_card_visa', pendingPaymentTimeout: 'P1D', paymentsTaskQueue: taskQueue }],
  });
  assert.deepEqual(await handle.executeUpdate(bookingDecisionUpdate), { status: 'confirmed' });
  return { bookingId, handle };
}
