import path from 'node:path';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import * as schema from './schema';

export type Database = PostgresJsDatabase<typeof schema>;

/** What `db.transaction` hands its callback. */
export type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0];

export interface DatabaseHandle {
  db: Database;
  /** The raw postgres.js client, for health checks and shutdown. */
  sql: postgres.Sql;
  close: () => Promise<void>;
}

export const MIGRATIONS_FOLDER = path.join(__dirname, 'migrations');

/**
 * Seconds before the pool's next connection attempt after `retries` failed ones. postgres.js's own
 * backoff grows to 20 s, and queries wait for it: while PostgreSQL is down requests would hang
 * instead of failing fast (503), and after it is back they would wait that long to reconnect.
 */
export function reconnectBackoffSeconds(retries: number): number {
  return Math.min(0.05 * 2 ** retries, 1);
}

export interface PoolOptions {
  max?: number;
  /** PostgreSQL ends a statement running longer (ms). */
  statementTimeoutMs?: number;
  /** PostgreSQL ends a session idle inside a transaction longer (ms), releasing its locks. */
  idleInTransactionTimeoutMs?: number;
}

/**
 * The pool. Every session gets a statement timeout and an idle-in-transaction timeout, so a
 * stuck query or a transaction left open cannot hold rows or connections: no code path keeps a
 * transaction open across a network call (gateway, SMTP, Temporal), and these make sure of it.
 */
export function connectDatabase(url: string, options: PoolOptions = {}): DatabaseHandle {
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    backoff: reconnectBackoffSeconds,
    connection: {
      statement_timeout: options.statementTimeoutMs ?? 15_000,
      idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? 10_000,
    },
  });
  return { db: drizzle(sql, { schema }), sql, close: () => sql.end({ timeout: 5 }) };
}

/** Applies the committed SQL migrations; safe to run from several processes at once. */
export async function migrateDatabase(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    // A session advisory lock serialises concurrent start-ups (api and worker both migrate).
    await sql`select pg_advisory_lock(7233001)`;
    await migrate(drizzle(sql), { migrationsFolder: MIGRATIONS_FOLDER });
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The pool's settings from the configuration (its size and the two session timeouts). */
export function poolOptions(config: {
  DATABASE_POOL_SIZE: number;
  DATABASE_STATEMENT_TIMEOUT_MS: number;
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: number;
}): PoolOptions {
  return {
    max: config.DATABASE_POOL_SIZE,
    statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
    idleInTransactionTimeoutMs: config.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
  };
}

/**
 * Whether `err` is PostgreSQL refusing a row by the unique index or constraint `constraint`, as
 * postgres.js reports it (drizzle may wrap it as the cause, so a few causes deep are looked at).
 */
export function isUniqueViolation(err: unknown, constraint: string): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 3 && typeof e === 'object' && e !== null; depth++) {
    const { code, constraint_name, cause } = e as { code?: unknown; constraint_name?: unknown; cause?: unknown };
    if (code === '23505' && constraint_name === constraint) return true;
    e = cause;
  }
  return false;
}
