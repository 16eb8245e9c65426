/**
 * Replays recorded subscription histories (test/histories, written by scripts/record-histories.ts)
 * against the current workflow code: a change that would break running subscriptions fails here.
 * Such a change needs `patched()` for the old path, not a re-recording.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import { bundleWorkflows } from '../platform/worker';

const HISTORIES_DIR = path.join(__dirname, 'histories');

describe('recorded workflow histories replay against the current code', async () => {
  const files = (await readdir(HISTORIES_DIR)).filter((file) => file.endsWith('.json')).sort();
  let workflowBundle: WorkflowBundle;

  before(async () => {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    workflowBundle = await bundleWorkflows();
  });

  test('there are histories to replay', () => {
    assert.ok(files.length >= 4, `expected recorded histories in ${HISTORIES_DIR}`);
  });

  for (const file of files) {
    test(file, async () => {
      // The files are protobufjs' JSON form of History (see the recording script), read back the same way.
      const history = temporal.api.history.v1.History.fromObject(JSON.parse(await readFile(path.join(HISTORIES_DIR, file), 'utf8')));
      await Worker.runReplayHistory({ workflowBundle }, history, `replay-${file}`);
    });
  }
});
