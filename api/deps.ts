import type { Client } from '@temporalio/client';
import type { Redis } from 'ioredis';
import type postgres from 'postgres';
import type { Database } from '../db/client';
import type { PaymentGateway } from '../domain/payment';
import type { Config } from '../platform/config';
import type { Logger } from '../platform/logger';
import { TASK_QUEUES, type TaskQueues } from '../platform/task-queues';

/** Everything the HTTP layer talks to; tests pass real connections to loopback services. */
export interface AppDeps {
  config: Config;
  db: Database;
  sql: postgres.Sql;
  redis: Redis;
  temporal: Client;
  logger: Logger;
  /** The payment gateway the API itself calls: customers, saved cards, SetupIntents. */
  gateway: PaymentGateway;
  /** Task queues workflows are started on; tests pass unique ones. Default: TASK_QUEUES. */
  taskQueues?: TaskQueues;
}

/** The task queues workflows are started on and their gateway calls go to: the deps' own, else production's. */
export function taskQueuesOf(deps: Pick<AppDeps, 'taskQueues'>): TaskQueues {
  return deps.taskQueues ?? TASK_QUEUES;
}
