import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';

/** The schedule that deletes records past their retention, once a day. */
export const RETENTION_SCHEDULE_ID = 'retention-purge';

export interface RetentionScheduleOptions {
  taskQueue: string;
  /** The workflow type's name: platform/ knows no workflow code. */
  workflowType: string;
  args?: unknown[];
}

/**
 * Creates the retention schedule unless it exists: every worker process calls this at start, so
 * the first one creates it and the rest find it (a schedule already there is left as it is; to
 * change it, update or delete it in the Web UI or with the CLI). Daily; a purge still running
 * when the next is due makes the next one skip. Answers whether this call created it.
 */
export async function ensureRetentionSchedule(client: Client, options: RetentionScheduleOptions): Promise<boolean> {
  try {
    await client.schedule.create({
      scheduleId: RETENTION_SCHEDULE_ID,
      spec: { intervals: [{ every: '1 day' }] },
      action: {
        type: 'startWorkflow',
        workflowType: options.workflowType,
        workflowId: RETENTION_SCHEDULE_ID,
        taskQueue: options.taskQueue,
        args: options.args ?? [],
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
    });
    return true;
  } catch (error) {
    if (error instanceof ScheduleAlreadyRunning) return false;
    throw error;
  }
}
