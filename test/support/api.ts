import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { Redis } from 'ioredis';
import { createPaymentGateway } from '../../activities/gateway';
import { createApp, type AppDeps } from '../../api/app';
import { hashPassword, issueToken } from '../../api/auth';
import { connectDatabase, migrateDatabase } from '../../db/client';
import { users } from '../../db/schema';
import { toUserView, type Role, type UserView } from '../../domain/user';
import { loadConfig, type Config } from '../../platform/config';
import { createLogger } from '../../platform/logger';
import { connectTemporal } from '../../platform/temporal-connection';

export interface TestDeps {
  deps: AppDeps;
  /** Closes the connections this helper opened (not the ones passed in as overrides). */
  close: () => Promise<void>;
}

// Tests send hundreds of requests from one address and many payments per user; the rate
// limits' own tests pass the production defaults in a config of their own.
const TEST_RATE_LIMITS = { RATE_LIMIT_IP_PER_MINUTE: '1000000', RATE_LIMIT_PAYMENTS_PER_USER_PER_MINUTE: '1000000' };

/**
 * The configuration the environment gives tests, with `settings` on top. Logs are silent unless
 * LOG_LEVEL is set, so test output stays readable. Rate limits are generous unless set.
 */
export function testConfig(settings: Record<string, string> = {}): Config {
  return loadConfig({ LOG_LEVEL: 'silent', ...TEST_RATE_LIMITS, ...process.env, ...settings });
}

/** Real connections to the services named by the environment, configured by `testConfig()` unless told. */
export async function connectTestDeps(overrides: Partial<AppDeps> = {}): Promise<TestDeps> {
  const config = overrides.config ?? testConfig();
  await migrateDatabase(config.DATABASE_URL);
  const closers: Array<() => Promise<unknown>> = [];
  const own = <T>(value: T, close: (value: T) => Promise<unknown>): T => {
    closers.push(() => close(value));
    return value;
  };
  const database =
    overrides.db && overrides.sql
      ? { db: overrides.db, sql: overrides.sql }
      : own(connectDatabase(config.DATABASE_URL, { max: 5 }), (d) => d.close());
  const logger = overrides.logger ?? createLogger(config);
  const deps: AppDeps = {
    config,
    logger,
    gateway: overrides.gateway ?? createPaymentGateway(config, { db: database.db, logger }),
    db: database.db,
    sql: database.sql,
    redis: overrides.redis ?? own(new Redis(config.REDIS_URL), (r) => r.quit()),
    temporal: overrides.temporal ?? own(await connectTemporal(config), (t) => t.connection.close()).client,
  };
  return { deps, close: async () => void (await Promise.all(closers.map((close) => close()))) };
}

export interface TestServer {
  /** e.g. http://127.0.0.1:41234, no trailing slash. */
  url: string;
  close: () => Promise<void>;
}

/** Serves `app` on a free loopback port. */
export async function listen(app: Express): Promise<TestServer> {
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

export interface TestApi extends TestServer {
  deps: AppDeps;
}

/** `createApp` on real services and a free port; `close()` stops the server and its connections. */
export async function startTestApi(overrides: Partial<AppDeps> = {}): Promise<TestApi> {
  const { deps, close: closeDeps } = await connectTestDeps(overrides);
  const server = await listen(createApp(deps));
  return {
    ...server,
    deps,
    close: async () => {
      await server.close();
      await closeDeps();
    },
  };
}

export interface TestUser {
  user: UserView;
  password: string;
  token: string;
  /** `{ authorization: 'Bearer …' }` for fetch. */
  headers: Record<string, string>;
}

/** A user of its own (unique email) with a valid token, written straight to the database. */
export async function createTestUser(deps: Pick<AppDeps, 'db' | 'config'>, options: { role?: Role; name?: string } = {}): Promise<TestUser> {
  const password = `pw-${randomUUID()}`;
  const [row] = await deps.db
    .insert(users)
    .values({
      email: `user-${randomUUID()}@example.test`,
      name: options.name ?? 'Test User',
      role: options.role ?? 'customer',
      passwordHash: await hashPassword(password),
    })
    .returning();
  const token = await issueToken(deps.config, row);
  return { user: toUserView(row), password, token, headers: { authorization: `Bearer ${token}` } };
}

/** fetch with a JSON body; answers the status, headers and parsed body (or undefined). */
export async function requestJson(
  url: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const response = await fetch(url, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: { ...(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...init.headers },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}
