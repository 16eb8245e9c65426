/** The worker process: migrate, connect, serve every task queue; SIGTERM/SIGINT drain and exit. */
import { Redis } from 'ioredis';
import { activitiesFromConfig } from '../activities';
import { connectDatabase, migrateDatabase, poolOptions } from '../db/client';
import { RETENTION_DAYS } from '../domain/retention';
import { loadConfigOrExit } from '../platform/config';
import { createLogger } from '../platform/logger';
import { ensureRetentionSchedule } from '../platform/schedules';
import { registerSearchAttributes } from '../platform/search-attributes';
import { TASK_QUEUES } from '../platform/task-queues';
import { connectTemporal, temporalTransportOptions } from '../platform/temporal-connection';
import {
  bundleWorkflows,
  createWorkers,
  installTemporalRuntime,
  NativeConnection,
  runWorkers,
  shutdownWorkers,
  workerTuning,
} from '../platform/worker';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config);
  installTemporalRuntime(config, logger);

  await migrateDatabase(config.DATABASE_URL);
  const database = connectDatabase(config.DATABASE_URL, poolOptions(config));
  const connection = await NativeConnection.connect(temporalTransportOptions(config));
  // Workflows set these attributes; a server without them would fail their tasks.
  const registered = await registerSearchAttributes(connection, config.TEMPORAL_NAMESPACE);
  if (registered.length > 0) logger.info({ searchAttributes: registered }, 'custom search attributes registered');
  // Daily deletion of webhook payloads and idempotency records past their retention (created once).
  const temporal = await connectTemporal(config);
  const retentionWorkflow = {
    taskQueue: TASK_QUEUES.billing,
    workflowType: 'purgeExpiredRecordsWorkflow',
    args: [{ olderThanDays: RETENTION_DAYS }],
  };
  if (await ensureRetentionSchedule(temporal.client, retentionWorkflow)) logger.info('retention schedule created');
  await temporal.connection.close();
  const redis = new Redis(config.REDIS_URL);
  const workers = await createWorkers({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueues: Object.values(TASK_QUEUES),
    activities: activitiesFromConfig(config, { db: database.db, redis, logger }),
    workflowBundle: await bundleWorkflows(),
    tuning: workerTuning(config),
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'shutting down: draining workers');
      shutdownWorkers(workers);
    });
  }
  logger.info({ taskQueues: Object.values(TASK_QUEUES), namespace: config.TEMPORAL_NAMESPACE }, 'workers running');

  await runWorkers(workers);
  await Promise.allSettled([database.close(), connection.close(), redis.quit()]);
  logger.info('workers stopped');
}

main().catch((err: unknown) => {
  console.error('worker failed:', err);
  process.exit(1);
});
