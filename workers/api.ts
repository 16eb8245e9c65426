import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { createPaymentGateway } from '../activities/gateway';
import { createApp } from '../api/app';
import { connectDatabase, migrateDatabase, poolOptions } from '../db/client';
import { loadConfigOrExit } from '../platform/config';
import { createLogger } from '../platform/logger';
import { waitForSearchAttributes } from '../platform/search-attributes';
import { connectTemporal } from '../platform/temporal-connection';

// Below the usual 30 s between SIGTERM and SIGKILL, leaving time to close connections.
const SHUTDOWN_GRACE_MS = 20_000;
// An API started beside its worker gives the worker this long to register the search attributes.
const SEARCH_ATTRIBUTES_WAIT_MS = 30_000;

/** The API process: migrate, connect, serve; on SIGTERM/SIGINT finish in-flight requests and close. */
async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config);

  await migrateDatabase(config.DATABASE_URL);
  const database = connectDatabase(config.DATABASE_URL, poolOptions(config));
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2 });
  redis.on('error', (err) => logger.warn({ err }, 'redis connection error'));
  const temporal = await connectTemporal(config);
  // Starts set them and staff search by them: without them every start would fail.
  await waitForSearchAttributes(temporal.connection, config.TEMPORAL_NAMESPACE, SEARCH_ATTRIBUTES_WAIT_MS);

  const gateway = createPaymentGateway(config, { db: database.db, logger });
  const app = createApp({ config, db: database.db, sql: database.sql, redis, temporal: temporal.client, logger, gateway });
  const server = app.listen(config.PORT);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  logger.info({ url: `http://localhost:${port}` }, `API listening on http://localhost:${port}`);

  let stopping = false;
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    // close() stops accepting and resolves once in-flight requests are answered; a request
    // that never ends must not keep the process alive past the orchestrator's kill deadline.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS).unref();
    await closed;
    await Promise.allSettled([redis.quit(), database.close(), temporal.connection.close()]);
    logger.info('stopped');
    process.exit(0);
  };
  process.once('SIGTERM', (signal) => void stop(signal));
  process.once('SIGINT', (signal) => void stop(signal));
}

main().catch((err: unknown) => {
  console.error('API failed to start:', err);
  process.exit(1);
});
