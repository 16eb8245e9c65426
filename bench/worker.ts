/**
 * The worker process of a bench run or a drill: the production wiring (platform/worker.ts's
 * createWorkers and workerTuning, activitiesFromConfig, configured from the environment) on the
 * `billing` and `bookings` queues, with two differences. Its bundle adds the ceiling's no-op
 * workflow (bench/workflows.ts), and with `--gateway-log FILE` the gateway records every charge
 * it answers (bench/recording-gateway.ts). `--ready-file FILE` is written once it polls: JSON
 * with its pid and effective per-queue settings; then each SIGWINCH reads its memory by isolate
 * (bench/worker-memory.ts).
 *
 *   node --import tsx bench/worker.ts --ready-file F [--gateway-log F] [--gateway-delay-ms N]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { activitiesFromConfig } from '../activities';
import { createPaymentGateway } from '../activities/gateway';
import { connectDatabase, poolOptions } from '../db/client';
import { loadConfig } from '../platform/config';
import { createLogger } from '../platform/logger';
import { TASK_QUEUES } from '../platform/task-queues';
import { temporalTransportOptions } from '../platform/temporal-connection';
import {
  bundleWorkflows,
  createWorkers,
  installTemporalRuntime,
  NativeConnection,
  runWorkers,
  shutdownWorkers,
  workerTuning,
} from '../platform/worker';
import { recordingGateway } from './recording-gateway';
import { answerMemoryRequests } from './worker-memory';

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      'ready-file': { type: 'string' },
      'gateway-log': { type: 'string' },
      'gateway-delay-ms': { type: 'string' },
    },
  });
  const config = loadConfig(process.env);
  const logger = createLogger(config);
  installTemporalRuntime(config, logger);

  const database = connectDatabase(config.DATABASE_URL, poolOptions(config));
  const connection = await NativeConnection.connect(temporalTransportOptions(config));
  const redis = new Redis(config.REDIS_URL);
  // A drill stops Redis on purpose; the unit gate already logs what it skips.
  redis.on('error', () => undefined);
  const sandbox = createPaymentGateway(config, { db: database.db, logger });
  const gatewayLog = args['gateway-log'];
  const gateway = gatewayLog ? recordingGateway(sandbox, gatewayLog, Number(args['gateway-delay-ms'] ?? 0)) : sandbox;
  const workers = await createWorkers({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueues: Object.values(TASK_QUEUES),
    activities: activitiesFromConfig(config, { db: database.db, redis, gateway, logger }),
    workflowBundle: await bundleWorkflows(require.resolve('./workflows')),
    tuning: workerTuning(config),
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => shutdownWorkers(workers));
  }
  const running = runWorkers(workers);
  // The effective settings, SDK defaults included, for the bench's report.
  const settings = workers.map(({ options }) => ({
    taskQueue: options.taskQueue,
    maxCachedWorkflows: options.maxCachedWorkflows,
    maxTaskQueueActivitiesPerSecond: options.maxTaskQueueActivitiesPerSecond ?? null,
  }));
  if (args['ready-file']) {
    answerMemoryRequests(args['ready-file']);
    writeFileSync(args['ready-file'], JSON.stringify({ pid: process.pid, workers: settings }));
  }
  await running;
  await Promise.allSettled([database.close(), connection.close(), redis.quit()]);
}

main().catch((error: unknown) => {
  console.error('bench worker failed:', error);
  process.exit(1);
});
