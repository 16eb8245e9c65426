/**
 * The one set-up every HTTP test stack shares: the API on a free port and workers running the
 * production workflow bundle with the production activity wiring (PostgreSQL, Redis, sandbox
 * gateway, log mailer) on the shared dev server, on task queues of their own — the domain's
 * queue(s) and the payments queue its gateway calls go to. Real time: use short timers.
 */
import type { Redis } from 'ioredis';
import { activitiesFromConfig } from '../../activities';
import { createApp, type AppDeps } from '../../api/app';
import { connectDatabase } from '../../db/client';
import type { Config } from '../../platform/config';
import type { TaskQueues } from '../../platform/task-queues';
import type { Worker } from '@temporalio/worker';
import { bundleWorkflows, createWorkers, runWorkers } from '../../platform/worker';
import { connectTestDeps, createTestUser, listen, type TestUser } from './api';
import { connectDevServer, uniqueTaskQueues } from './temporal';

export interface TestStack {
  /** The API's base URL, e.g. http://127.0.0.1:41234. */
  url: string;
  deps: AppDeps;
  /** A staff user, for creating plans and offerings and reading anyone's data. */
  staff: TestUser;
  /** Starts the workers when the stack was started `withoutWorkers`; otherwise does nothing. */
  startWorkers: () => Promise<void>;
  close: () => Promise<void>;
}

export interface TestStackOptions {
  /** The queues whose workflows this stack runs; the payments queue is always served too. */
  serves: ReadonlyArray<Exclude<keyof TaskQueues, 'payments'>>;
  /** Replaces the Redis of both the API and the worker (an unreachable one, say). */
  redis?: Redis;
  /** Replaces the API's own database or Temporal client (one reached through a proxy, say); the worker keeps its own. */
  api?: Partial<Pick<AppDeps, 'db' | 'sql' | 'temporal'>>;
  /** Replaces the configuration the environment gives (another payment gateway, say). */
  config?: Config;
  /** Default: unique queues. The production ones serve an API process started apart from the stack. */
  taskQueues?: TaskQueues;
  /** Workflows started before `startWorkers()` wait: a request then stays in the middle of its update. */
  withoutWorkers?: boolean;
}

export async function startTestStack(options: TestStackOptions): Promise<TestStack> {
  const devServer = await connectDevServer();
  const { deps: baseDeps, close: closeDeps } = await connectTestDeps({
    temporal: devServer.client,
    ...(options.redis ? { redis: options.redis } : {}),
    ...(options.config ? { config: options.config } : {}),
    ...options.api,
  });
  const taskQueues = options.taskQueues ?? uniqueTaskQueues();
  const deps: AppDeps = { ...baseDeps, taskQueues };
  // The worker's own pool, as in production: claims must not queue behind API reads.
  const workerDatabase = connectDatabase(deps.config.DATABASE_URL, { max: 10 });
  // A paid subscription continues on `renewals`: whoever serves billing serves its renewals too.
  const renewals = options.serves.includes('billing') ? [taskQueues.renewals] : [];
  const served = [...options.serves.map((queue) => taskQueues[queue]), ...renewals, taskQueues.payments];
  // The production bundle (workflows/index.ts), so a workflow missing from it fails here.
  const workers: Worker[] = [];
  let running: Promise<unknown> = Promise.resolve();
  const startWorkers = async () => {
    if (workers.length > 0) return;
    workers.push(
      ...(await createWorkers({
        connection: devServer.nativeConnection,
        taskQueues: served,
        activities: activitiesFromConfig(deps.config, { db: workerDatabase.db, redis: deps.redis, logger: deps.logger }),
        workflowBundle: await bundleWorkflows(),
      })),
    );
    running = runWorkers(workers);
  };
  if (!options.withoutWorkers) await startWorkers();
  const server = await listen(createApp(deps));
  const staff = await createTestUser(deps, { role: 'staff', name: 'Test Staff' });
  return {
    url: server.url,
    deps,
    staff,
    startWorkers,
    close: async () => {
      await server.close();
      // Subscriptions renew for ever and holds and bookings wait on timers: none may be left
      // running on the shared server.
      for (const queue of served) await terminateRunningWorkflows(deps, queue);
      for (const worker of workers) worker.shutdown();
      await running;
      await workerDatabase.close();
      await closeDeps();
      await devServer.close();
    },
  };
}

async function terminateRunningWorkflows(deps: AppDeps, taskQueue: string): Promise<void> {
  const query = `TaskQueue = "${taskQueue}" AND ExecutionStatus = "Running"`;
  const ids: string[] = [];
  for await (const workflow of deps.temporal.workflow.list({ query })) ids.push(workflow.workflowId);
  await Promise.all(
    ids.map((id) =>
      deps.temporal.workflow
        .getHandle(id)
        .terminate('test finished')
        .catch(() => undefined),
    ),
  );
}
