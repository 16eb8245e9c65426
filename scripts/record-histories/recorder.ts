/** What every history-recording scenario (scripts/record-histories.ts) gets and gives back. */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Redis } from 'ioredis';
import type { Database } from '../../db/client';

export interface Recorder {
  env: TestWorkflowEnvironment;
  db: Database;
  redis: Redis;
  /** The one task queue the recording worker polls; it runs every workflow type. */
  taskQueue: string;
}

/** One workflow run to keep, as `test/histories/<file>.json`; the file name starts with its workflow type. */
export interface RecordedRun {
  file: string;
  workflowId: string;
  runId?: string;
}

/** A scenario drives workflows through some branches and names the runs whose histories to keep. */
export type Scenario = (r: Recorder) => Promise<RecordedRun[]>;
