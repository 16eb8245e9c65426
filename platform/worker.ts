/**
 * Worker construction shared by the worker process, the bench harness, scripts and tests: the
 * workflow bundle, one worker per task queue with the same options everywhere, and the SDK's
 * runtime (logs and metrics). What the workers run (activities) is passed in, so this module
 * imports none of the rooms above it.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel, type WorkflowBundleOption } from '@temporalio/worker';
import type { Config } from './config';
import type { Logger } from './logger';
import { durationToMilliseconds } from '../domain/period';
import { TASK_QUEUES } from './task-queues';

// Below the usual 30 s between SIGTERM and SIGKILL: running activities get this long to finish.
const SHUTDOWN_GRACE = '20 seconds';

/** `workflows/index.ts`: every workflow type the workers run. */
export const WORKFLOWS_PATH = path.join(__dirname, '..', 'workflows');

/**
 * A bundle built ahead (`writeWorkflowBundle`), loaded instead of bundling at start-up: webpack
 * costs seconds of CPU per process, so `npm test` bundles once for every test file and process.
 */
export const PREBUILT_BUNDLE_VARIABLE = 'WORKFLOW_BUNDLE_FILE';

/**
 * The workflows as a bundle every worker of the process shares: all of them (`workflows/index.ts`)
 * unless `workflowsPath` names others; the prebuilt bundle when one is named and all are asked for.
 */
export async function bundleWorkflows(workflowsPath: string = WORKFLOWS_PATH): Promise<WorkflowBundleOption> {
  const prebuilt = process.env[PREBUILT_BUNDLE_VARIABLE];
  if (prebuilt && workflowsPath === WORKFLOWS_PATH) return { codePath: prebuilt };
  // WARN keeps webpack's build report out of the logs.
  const { code } = await bundleWorkflowCode(bundleOptions(workflowsPath));
  return { code };
}

/**
 * The workflow modules are preloaded: evaluated once in each workflow thread's shared V8 context
 * and shared by every workflow it runs, instead of evaluated again for each workflow (the SDK's
 * default), which held a copy of every module's functions and constants per cached workflow
 * (bench/README.md, "Worker memory"). Safe because they keep no per-workflow state at module scope
 * (their activity proxies and definitions find the running workflow when called); the SDK freezes
 * what they export.
 */
function bundleOptions(workflowsPath: string): Parameters<typeof bundleWorkflowCode>[0] {
  const entry = require.resolve(workflowsPath);
  return { workflowsPath: entry, preloadModules: [entry], logger: new DefaultLogger('WARN') };
}

/** Bundles every workflow into `file`, for `PREBUILT_BUNDLE_VARIABLE`. */
export async function writeWorkflowBundle(file: string): Promise<void> {
  const { code } = await bundleWorkflowCode(bundleOptions(WORKFLOWS_PATH));
  await writeFile(file, code);
}

export interface CreateWorkersOptions {
  connection: NativeConnection;
  namespace?: string;
  /** One worker per queue; tests pass unique names. */
  taskQueues: readonly string[];
  activities: object;
  workflowBundle: WorkflowBundleOption;
  /** From `workerTuning(config)`; the SDK's defaults when absent (tests). */
  tuning?: WorkerTuning;
}

/** Concurrency and sticky-cache size per worker, and activity rate limits per task queue. */
export interface WorkerTuning {
  maxConcurrentActivityTaskExecutions: number;
  maxConcurrentWorkflowTaskExecutions: number;
  /** In place of `maxConcurrentWorkflowTaskExecutions` for the workers of these queues (background work). */
  maxConcurrentWorkflowTaskExecutionsByQueue?: Readonly<Record<string, number>>;
  maxCachedWorkflows?: number;
  /**
   * How long a workflow task may wait on a worker's sticky queue (the worker that has the workflow
   * cached) before the server times it out and hands it to any worker, which must replay the whole
   * history to run it. Under a burst (a renewal storm) tasks wait for CPU, not for a dead worker:
   * the SDK's 10 s moved thousands of them, and each replay added to the wait that caused it
   * (bench/README.md, "The renewal storm's cliff"). A worker that has died stops polling and the
   * server sends new tasks elsewhere after 10 s whatever this is; only tasks already queued for it
   * wait this long.
   */
  stickyQueueScheduleToStartTimeoutMs?: number;
  /** Activities per second across all workers of a queue, by queue name; enforced by the server. */
  maxTaskQueueActivitiesPerSecond: Readonly<Record<string, number>>;
}

/** The gateway's request limit applies to the queue that carries every gateway call (`payments`). */
export function workerTuning(config: Config, paymentsQueue: string = TASK_QUEUES.payments): WorkerTuning {
  return {
    maxConcurrentActivityTaskExecutions: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    maxConcurrentWorkflowTaskExecutionsByQueue: { [TASK_QUEUES.renewals]: config.WORKER_RENEWALS_MAX_CONCURRENT_WORKFLOW_TASKS },
    maxCachedWorkflows: config.WORKER_MAX_CACHED_WORKFLOWS,
    stickyQueueScheduleToStartTimeoutMs: durationToMilliseconds(config.WORKER_STICKY_QUEUE_TIMEOUT),
    maxTaskQueueActivitiesPerSecond: { [paymentsQueue]: config.GATEWAY_MAX_CALLS_PER_SECOND },
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
        maxConcurrentWorkflowTaskExecutions:
          options.tuning?.maxConcurrentWorkflowTaskExecutionsByQueue?.[taskQueue] ?? options.tuning?.maxConcurrentWorkflowTaskExecutions,
        maxCachedWorkflows: options.tuning?.maxCachedWorkflows,
        // Absent, not undefined: the SDK reads an explicit undefined as a duration.
        ...(options.tuning?.stickyQueueScheduleToStartTimeoutMs
          ? { stickyQueueScheduleToStartTimeout: options.tuning.stickyQueueScheduleToStartTimeoutMs }
          : {}),
        maxTaskQueueActivitiesPerSecond: options.tuning?.maxTaskQueueActivitiesPerSecond[taskQueue],
      }),
    ),
  );
}

/** Runs the workers until each has shut down (see `createWorkers`). */
export async function runWorkers(workers: Worker[]): Promise<void> {
  await Promise.all(workers.map((worker) => worker.run()));
}

/** Asks every running worker to stop polling and drain; `runWorkers` then resolves. */
export function shutdownWorkers(workers: Worker[]): void {
  for (const worker of workers) {
    if (worker.getState() === 'RUNNING') worker.shutdown();
  }
}

/**
 * The SDK's runtime, once per process before any connection: its own logs (workers, workflow
 * `log`) as pino JSON lines too, and its metrics (task slots, poll and schedule-to-start
 * latencies, workflow and activity outcomes) served for Prometheus at WORKER_METRICS_ADDRESS.
 */
export function installTemporalRuntime(config: Pick<Config, 'WORKER_METRICS_ADDRESS'>, logger: Logger): void {
  const methods = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;
  const level = Object.entries(methods).find(([, method]) => method === logger.level)?.[0] as LogLevel | undefined;
  const metricsAddress = config.WORKER_METRICS_ADDRESS;
  Runtime.install({
    logger: new DefaultLogger(level ?? 'ERROR', (entry) => logger[methods[entry.level]]({ ...entry.meta }, entry.message)),
    ...(metricsAddress ? { telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress } } } } : {}),
  });
  if (metricsAddress) logger.info({ metricsAddress }, `Temporal worker metrics on http://${metricsAddress}/metrics`);
}

export { NativeConnection };
