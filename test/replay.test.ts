/**
 * Replays every recorded workflow history (test/histories, written by scripts/record-histories.ts)
 * against the current workflow bundle: a change that would break running subscriptions, payments,
 * holds or bookings fails here with the nondeterminism it causes. Such a change needs `patched()`
 * for the old path, not a re-recording. Every workflow type the worker runs must have histories.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import { bundleWorkflows } from '../platform/worker';
import * as workerWorkflows from '../workflows';

const HISTORIES_DIR = path.join(__dirname, 'histories');

/** The files are protobufjs' JSON form of History (see the recording script), read back the same way. */
function readHistory(file: string): temporal.api.history.v1.History {
  return temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(path.join(HISTORIES_DIR, file), 'utf8')));
}

function workflowTypeOf(history: temporal.api.history.v1.IHistory): string {
  const name = history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name;
  if (!name) throw new Error('the history does not start with a workflow execution started event');
  return name;
}

/** The workflow types of the worker's bundle: the functions workflows/index.ts exports named `…Workflow`. */
const WORKFLOW_TYPES = Object.entries(workerWorkflows)
  .filter(([name, value]) => typeof value === 'function' && name.endsWith('Workflow'))
  .map(([name]) => name)
  .sort();

/** A history file's name starts with the kind of workflow it holds. */
const FILE_PREFIXES: Record<string, string> = {
  booking: 'bookingWorkflow',
  hold: 'holdWorkflow',
  offering: 'offeringCancellationWorkflow',
  payment: 'oneTimePaymentWorkflow',
  paymentrefund: 'paymentRefundWorkflow',
  refund: 'refundOrphanedPaymentWorkflow',
  retention: 'purgeExpiredRecordsWorkflow',
  staff: 'staffAlertWorkflow',
  subscription: 'subscriptionWorkflow',
  waitlist: 'waitlistWorkflow',
};

describe('recorded workflow histories replay against the current code', () => {
  const files = readdirSync(HISTORIES_DIR)
    .filter((file) => file.endsWith('.json'))
    .sort();
  let workflowBundle: WorkflowBundleOption;

  before(async () => {
    if (!Runtime.instantiator) Runtime.install({ logger: new DefaultLogger('WARN') });
    workflowBundle = await bundleWorkflows();
  });

  test('every workflow type the worker runs has recorded histories, named after it', () => {
    assert.ok(WORKFLOW_TYPES.length >= 5, `workflows/index.ts exports only ${WORKFLOW_TYPES.join(', ')}`);
    const covered = new Map<string, number>();
    for (const file of files) {
      const type = workflowTypeOf(readHistory(file));
      assert.equal(type, FILE_PREFIXES[file.split('-')[0]], `${file} holds a ${type} history`);
      covered.set(type, (covered.get(type) ?? 0) + 1);
    }
    for (const type of WORKFLOW_TYPES) {
      assert.ok((covered.get(type) ?? 0) >= 2, `expected at least two recorded histories of ${type} in ${HISTORIES_DIR}`);
    }
    assert.deepEqual(
      [...covered.keys()].filter((type) => !WORKFLOW_TYPES.includes(type)),
      [],
      'histories of workflow types the worker no longer runs',
    );
  });

  for (const file of files) {
    test(file, async () => {
      const history = readHistory(file);
      await Worker.runReplayHistory({ workflowBundle }, history, `replay-${file}`);
    });
  }
});
