import {
  bundleWorkflowCode,
  DefaultLogger,
  NativeConnection,
  Runtime,
  Worker,
  type LogLevel,
  type WorkflowBundle,
} from '@temporalio/worker';
import { Redis } from 'ioredis';
import { createActivities } from '../activities';
import { createMailer } from '../activities/notification';
import { createPaymentGateway } from '../activities/payment-gateway';
import { connectDatabase, migrateDatabase } from '../db/client';
import { loadConfigOrExit, type Config } from './config';
import { createLogger, type Logger } from './logger';
import { registerSearchAttributes } from './search-attributes';
import { TASK_QUEUES } from './task-queues';
import { temporalTransportOptions } from './temporal-connection';

// Below the usual 30 s between SIGTERM and SIGKILL: running activities get this long to finish.
const SHUTDOWN_GRACE = '20 seconds';

/** Bundles `workflows/index.ts` once; every worker of the process shares the bundle. */
export function bundleWorkflows(): Promise<WorkflowBundle> {
  // WARN keeps webpack's build report out of the logs.
  return bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: new DefaultLogger('WARN') });
}

export interface CreateWorkersOptions {
  connection: NativeConnection;
  namespace?: string;
  /** One worker per queue; tests pass unique names. */
  taskQueues: readonly string[];
  activities: object;
  workflowBundle: WorkflowBundle;
  /** From `workerTuning(config)`; the SDK's defaults when absent (tests). */
  tuning?: WorkerTuning;
}

/** Concurrency and sticky-cache size per worker, and activity rate limits per task queue. */
export interface WorkerTuning {
  maxConcurrentActivityTaskExecutions: number;
  maxConcurrentWorkflowTaskExecutions: number;
  maxCachedWorkflows?: number;
  /** Activities per second across all workers of a queue, by queue name; enforced by the server. */
  maxTaskQueueActivitiesPerSecond: Readonly<Record<string, number>>;
}

export function workerTuning(config: Config, billingQueue: string = TASK_QUEUES.billing): WorkerTuning {
  return {
    maxConcurrentActivityTaskExecutions: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    maxCachedWorkflows: config.WORKER_MAX_CACHED_WORKFLOWS,
    maxTaskQueueActivitiesPerSecond: { [billingQueue]: config.BILLING_MAX_ACTIVITIES_PER_SECOND },
  };
}

/** Workers ready to `run()`; `shutdown()` on each stops polling and lets running work drain. */
export function createWorkers(options: CreateWorkersOptions): Promise<Worker[]> {
  return Promise.all(
    options.taskQueues.map((taskQueue) =>
      Worker.create({
        connection: options.connection,
        namespace: options.namespace,
        taskQueue,
        workflowBundle: options.workflowBundle,
        activities: options.activities,
        shutdownGraceTime: SHUTDOWN_GRACE,
        maxConcurrentActivityTaskExecutions: options.tuning?.maxConcurrentActivityTaskExecutions,
        maxConcurrentWorkflowTaskExecutions: options.tuning?.maxConcurrentWorkflowTaskExecutions,
        maxCachedWorkflows: options.tuning?.maxCachedWorkflows,
        maxTaskQueueActivitiesPerSecond: options.tuning?.maxTaskQueueActivitiesPerSecond[taskQueue],
      }),
    ),
  );
}

/** Runs the workers until each has shut down (see `createWorkers`). */
export async function runWorkers(workers: Worker[]): Promise<void> {
  await Promise.all(workers.map((worker) => worker.run()));
}

/** The worker process: migrate, connect, serve both task queues; SIGTERM/SIGINT drain and exit. */
async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config);
  installTemporalRuntime(config, logger);

  await migrateDatabase(config.DATABASE_URL);
  const database = connectDatabase(config.DATABASE_URL, { max: config.DATABASE_POOL_SIZE });
  const connection = await NativeConnection.connect(temporalTransportOptions(config));
  // Workflows set these attributes; a server without them would fail their tasks.
  const registered = await registerSearchAttributes(connection, config.TEMPORAL_NAMESPACE);
  if (registered.length > 0) logger.info({ searchAttributes: registered }, 'custom search attributes registered');
  const redis = new Redis(config.REDIS_URL);
  const activities = createActivities({
    db: database.db,
    redis,
    gateway: createPaymentGateway(config, logger),
    mailer: createMailer(config, logger),
    logger,
  });
  const workers = await createWorkers({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueues: Object.values(TASK_QUEUES),
    activities,
    workflowBundle: await bundleWorkflows(),
    tuning: workerTuning(config),
  });
  stopOnSignals(workers, logger);
  logger.info({ taskQueues: Object.values(TASK_QUEUES), namespace: config.TEMPORAL_NAMESPACE }, 'workers running');

  await runWorkers(workers);
  await Promise.allSettled([database.close(), connection.close(), redis.quit()]);
  logger.info('workers stopped');
}

/**
 * The SDK's runtime, once per process before any connection: its own logs (workers, workflow
 * `log`) as pino JSON lines too, and its metrics (task slots, poll and schedule-to-start
 * latencies, workflow and activity outcomes) served for Prometheus at WORKER_METRICS_ADDRESS.
 */
function installTemporalRuntime(config: Config, logger: Logger): void {
  const methods = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;
  const level = Object.entries(methods).find(([, method]) => method === logger.level)?.[0] as LogLevel | undefined;
  const metricsAddress = config.WORKER_METRICS_ADDRESS;
  Runtime.install({
    logger: new DefaultLogger(level ?? 'ERROR', (entry) => logger[methods[entry.level]]({ ...entry.meta }, entry.message)),
    ...(metricsAddress ? { telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress } } } } : {}),
  });
  if (metricsAddress) logger.info({ metricsAddress }, `Temporal worker metrics on http://${metricsAddress}/metrics`);
}

function stopOnSignals(workers: Worker[], logger: Logger): void {
  const stop = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'shutting down: draining workers');
    for (const worker of workers) {
      if (worker.getState() === 'RUNNING') worker.shutdown();
    }
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error('worker failed:', err);
    process.exit(1);
  });
}
