import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { createPaymentGateway } from '../activities/gateway';
import { createApiApps } from '../api/app';
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
  const { app, metricsApp } = createApiApps({ config, db: database.db, sql: database.sql, redis, temporal: temporal.client, logger, gateway });
  // The internal listener first: an orchestrator routes traffic once PORT answers.
  const metricsAt = config.API_METRICS_ADDRESS;
  const metricsServer = metricsApp && metricsAt ? await listening(metricsApp.listen(metricsAt.port, metricsAt.host)) : undefined;
  if (!metricsServer && config.NODE_ENV === 'production') {
    logger.warn('API_METRICS_ADDRESS is unset: /metrics is served on PORT, to whoever reaches it');
  }
  if (metricsServer) {
    const { address, port } = metricsServer.address() as AddressInfo;
    const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}/metrics`;
    logger.info({ metricsUrl: url }, `API metrics on ${url}, not on the API's port`);
  }
  const server = await listening(app.listen(config.PORT));
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
    // Scraped until the API has drained, so the last requests are counted.
    await closed;
    metricsServer?.closeAllConnections();
    await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
    await Promise.allSettled([redis.quit(), database.close(), temporal.connection.close()]);
    logger.info('stopped');
    process.exit(0);
  };
  process.once('SIGTERM', (signal) => void stop(signal));
  process.once('SIGINT', (signal) => void stop(signal));
}

function listening(server: Server): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('listening', () => resolve(server));
    server.once('error', reject);
  });
}

main().catch((err: unknown) => {
  console.error('API failed to start:', err);
  process.exit(1);
});
