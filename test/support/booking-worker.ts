import { setTimeout } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import type { Redis } from 'ioredis';
import { activitiesFromConfig } from '../../activities';
import type { Database } from '../../db/client';
import type { Config } from '../../platform/config';
import type { Logger } from '../../platform/logger';

/** Every activity the workers register, built as the worker process builds them, on the given connections. */
export function createBookingTestActivities(deps: { db: Database; redis: Redis; config: Config; logger: Logger }) {
  const { db, redis, config, logger } = deps;
  return activitiesFromConfig(config, { db, redis, logger });
}

export type BookingTestActivities = ReturnType<typeof createBookingTestActivities>;

export const BOOKING_WORKFLOWS_PATH = require.resolve('./booking-workflows');

/**
 * Waits for a workflow to close without asking for its result: on the time-skipping server,
 * awaiting a result lets time jump to the next timer of any workflow (a booking waits for its
 * offering's end), so tests that must not skip time poll instead.
 */
export async function waitUntilClosed(handle: WorkflowHandle): Promise<void> {
  while ((await handle.describe()).status.name === 'RUNNING') await setTimeout(20);
}
