import cors from 'cors';
import express, { type RequestHandler, type Router } from 'express';
import helmet from 'helmet';
import type { Config } from '../platform/config';
import type { AppDeps } from './deps';
import { adminBookingRoutes, adminSubscriptionRoutes } from './admin';
import { adminCheckInRoutes } from './admin-check-in';
import { adminOfferingCancelRoutes } from './admin-offering-cancel';
import { adminPaymentRoutes } from './admin-payments';
import { adminReconciliationRoutes } from './admin-reconciliation';
import { authRoutes } from './auth';
import { bookingRoutes } from './booking';
import { couponRoutes } from './coupon';
import { creditRoutes } from './credits';
import { methodGuard, routeTable } from './contract';
import { healthRoutes } from './health';
import { invoiceRoutes } from './invoice';
import { createMetrics, metricsApi } from './metrics';
import { adminOfferingRoutes, offeringRoutes } from './offering';
import { apiOperations, openApiRoutes } from './openapi';
import { paymentRoutes } from './payment';
import { referralRoutes } from './referral';
import { paymentMethodRoutes } from './payment-methods';
import { sandboxRoutes } from './sandbox';
import { adminPlanRoutes, planCatalogRoutes } from './plan';
import { notFoundHandler, problemHandler } from './problem';
import { ipRateLimit } from './rate-limit';
import { requestLogger } from './request-context';
import { enteredOnlyForItsPaths } from './route';
import { subscriptionRoutes } from './subscription';
import { subscriptionChangeRoutes } from './subscription-changes';
import { waitlistRoutes } from './waitlist';
import { webhookRoutes } from './webhook';

const JSON_BODY_LIMIT = '100kb';
// Webhook routers verify signatures over the exact bytes received, so they parse their own body.
const RAW_BODY_PATHS = /^\/api\/v1\/webhooks(\/|$)/;

export type { AppDeps } from './deps';

/**
 * The routers in the order Express tries them; a new domain adds its router here and its
 * operation table to `apiOperations`. Each route carries its full declared path (api/route.ts),
 * so every router is mounted at the root.
 */
const ROUTERS: Array<(deps: AppDeps) => Router> = [
  healthRoutes,
  authRoutes,
  paymentRoutes,
  paymentMethodRoutes,
  creditRoutes,
  invoiceRoutes,
  sandboxRoutes,
  webhookRoutes,
  // Before the subscription router, whose /{id} would otherwise claim "plans".
  planCatalogRoutes,
  subscriptionRoutes,
  subscriptionChangeRoutes,
  adminPlanRoutes,
  offeringRoutes,
  adminOfferingRoutes,
  waitlistRoutes,
  bookingRoutes,
  adminSubscriptionRoutes,
  adminBookingRoutes,
  adminCheckInRoutes,
  adminOfferingCancelRoutes,
  adminPaymentRoutes,
  adminReconciliationRoutes,
  couponRoutes,
  referralRoutes,
];

/** The API on PORT; its /metrics too unless API_METRICS_ADDRESS serves them apart (`createApiApps`). */
export function createApp(deps: AppDeps): express.Express {
  return createApiApps(deps).app;
}

export interface ApiApps {
  /** What PORT serves. */
  app: express.Express;
  /** GET /metrics alone, for API_METRICS_ADDRESS; absent when `app` serves them itself. */
  metricsApp?: express.Express;
}

/**
 * With API_METRICS_ADDRESS set the metrics (refund totals, aggregate queries on every scrape) are
 * served only by `metricsApp`, on a listener the load balancer does not reach: the public app
 * neither routes nor documents /metrics, and answers it 404 like any unknown path.
 */
export function createApiApps(deps: AppDeps): ApiApps {
  const metricsApart = deps.config.API_METRICS_ADDRESS !== undefined;
  const app = express();
  app.disable('x-powered-by');

  app.set('trust proxy', deps.config.TRUST_PROXY);
  const operations = apiOperations().filter((operation) => !(metricsApart && operation === metricsApi.metrics));
  const routes = routeTable(operations);
  const metrics = createMetrics(deps, routes);

  app.use(requestLogger(deps.logger));
  app.use(metrics.middleware);
  // Rejected requests are logged with their id and timed like any other.
  app.use(securityHeaders());
  app.use(corsFrom(deps.config));
  app.use(ipRateLimit(deps, routes));
  app.use(methodGuard(routes));

  app.use(jsonBodyExcept(RAW_BODY_PATHS));

  if (!metricsApart) app.use(metrics.router);
  app.use(openApiRoutes(operations));
  for (const routes of ROUTERS) app.use(enteredOnlyForItsPaths(routes(deps)));

  app.use(notFoundHandler());
  app.use(problemHandler(deps.logger));
  return { app, metricsApp: metricsApart ? metricsOnly(deps, metrics.router) : undefined };
}

function metricsOnly(deps: Pick<AppDeps, 'logger'>, router: Router): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(router);
  app.use(notFoundHandler());
  app.use(problemHandler(deps.logger));
  return app;
}

/**
 * helmet's defaults with a policy for an API: its answers are JSON that no page may frame or
 * run as a document. The /docs page sets its own policy.
 */
function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  });
}

/** Browsers may call the API from CORS_ORIGINS only; with none configured no CORS headers are sent. */
function corsFrom(config: Pick<Config, 'CORS_ORIGINS'>): RequestHandler {
  return cors({
    origin: config.CORS_ORIGINS.length > 0 ? config.CORS_ORIGINS : false,
    // Last-Event-ID: a fetch-based event stream client resuming (EventSource sends it without asking).
    allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-Request-Id', 'Last-Event-ID'],
    exposedHeaders: ['X-Request-Id', 'Retry-After', 'Idempotent-Replayed', 'Location'],
    maxAge: 600,
  });
}

function jsonBodyExcept(paths: RegExp): RequestHandler {
  const parseJson = express.json({ limit: JSON_BODY_LIMIT });
  return (req, res, next) => (paths.test(req.path) ? next() : parseJson(req, res, next));
}
