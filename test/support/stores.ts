/**
 * The stores a test talks to directly (PostgreSQL, migrated, and Redis), named by the environment
 * `npm test` sets up, with a silent logger. For tests that call activities or run a worker
 * themselves; HTTP tests use test/support/api.ts.
 */
import { Redis } from 'ioredis';
import { connectDatabase, migrateDatabase, type Database, type DatabaseHandle } from '../../db/client';
import { loadConfig, type Config } from '../../platform/config';
import { createLogger, type Logger } from '../../platform/logger';

export interface TestStores {
  config: Config;
  database: DatabaseHandle;
  db: Database;
  redis: Redis;
  logger: Logger;
  /** Quits Redis and closes the database pool. */
  close(): Promise<void>;
}

/** `max` is the database pool's size: 4 unless told. */
export async function openTestStores(options: { max?: number } = {}): Promise<TestStores> {
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' });
  await migrateDatabase(config.DATABASE_URL);
  const database = connectDatabase(config.DATABASE_URL, { max: options.max ?? 4 });
  const redis = new Redis(config.REDIS_URL);
  return {
    config,
    database,
    db: database.db,
    redis,
    logger: createLogger(config),
    close: async () => {
      await redis.quit();
      await database.close();
    },
  };
}
