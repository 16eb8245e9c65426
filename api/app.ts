import type { Client } from '@temporalio/client';
import express, { type RequestHandler } from 'express';
import type { Redis } from 'ioredis';
import type postgres from 'postgres';
import type { Database } from '../db/client';
import type { Config } from '../workers/config';
import type { Logger } from '../workers/logger';
import { authRoutes } from './auth';
import { bookingRoutes } from './booking';
import { healthRoutes } from './health';
import { adminOfferingRoutes, offeringRoutes } from './offering';
import { paymentRoutes } from './payment';
import { adminPlanRoutes, planCatalogRoutes } from './plan';
import { notFoundHandler, problemHandler } from './problem';
import { requestLogger } from './request-context';
import { subscriptionRoutes } from './subscription';
import { webhookRoutes } from './webhook';

/** Everything the HTTP layer talks to; tests pass real connections to loopback services. */
export interface AppDeps {
  config: Config;
  db: Database;
  sql: postgres.Sql;
  redis: Redis;
  temporal: Client;
  logger: Logger;
  /** Task queues workflows are started on; tests pass unique ones. Default: billing, bookings. */
  taskQueues?: TaskQueues;
}

export interface TaskQueues {
  billing: string;
  bookings: string;
}

const JSON_BODY_LIMIT = '100kb';
// Webhook routers verify signatures over the exact bytes received, so they parse their own body.
const RAW_BODY_PATHS = /^\/api\/v1\/webhooks(\/|$)/;

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');

  app.use(requestLogger(deps.logger));

  // ── Cross-cutting security middleware goes here (helmet, CORS, per-IP rate limits), ──
  // ── after the request logger so rejected requests are logged with their id.         ──

  app.use(jsonBodyExcept(RAW_BODY_PATHS));

  app.use(healthRoutes(deps));
  app.use('/api/v1/auth', authRoutes(deps));

  // ── Domain routers: one line each, e.g. app.use('/api/v1/payments', paymentRoutes(deps)); ──
  app.use('/api/v1/payments', paymentRoutes(deps));
  app.use('/api/v1/webhooks', webhookRoutes(deps));
  // Before the subscription router, whose /:id would otherwise claim "plans".
  app.use('/api/v1/subscriptions/plans', planCatalogRoutes(deps));
  app.use('/api/v1/subscriptions', subscriptionRoutes(deps));
  app.use('/api/v1/admin/plans', adminPlanRoutes(deps));
  app.use('/api/v1/offerings', offeringRoutes(deps));
  app.use('/api/v1/admin/offerings', adminOfferingRoutes(deps));
  app.use('/api/v1/bookings', bookingRoutes(deps));
  // ── end of domain routers ──

  app.use(notFoundHandler());
  app.use(problemHandler(deps.logger));
  return app;
}

function jsonBodyExcept(paths: RegExp): RequestHandler {
  const parseJson = express.json({ limit: JSON_BODY_LIMIT });
  return (req, res, next) => (paths.test(req.path) ? next() : parseJson(req, res, next));
}
