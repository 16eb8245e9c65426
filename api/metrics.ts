import type { RequestHandler } from 'express';
import { Router } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { z } from 'zod';
import type { AppDeps } from './app';
import type { ApiOperation, RouteTable } from './contract';

// Routes wait up to 20 s for a workflow's answer, so the buckets reach past that.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30];
const UNMATCHED_ROUTE = 'unmatched';

export const metricsOperations: ApiOperation[] = [
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics: HTTP latency by route and status, business counts from PostgreSQL, process metrics',
    auth: 'public',
    unlimited: true,
    responses: { 200: { description: 'Prometheus text exposition format', contentType: 'text/plain', schema: z.string() } },
  },
];

export interface AppMetrics {
  registry: Registry;
  /** Times every request; label `route` is its declared path template, so cardinality stays bounded. */
  middleware: RequestHandler;
  /** GET /metrics. */
  router: Router;
}

/**
 * One registry per app (tests build many apps in one process). Business metrics are read from
 * PostgreSQL when scraped, not counted in memory: renewals, recoveries, expirations and expired
 * holds happen in worker processes, and the projection tables hold every one of them, so the
 * numbers are exact whichever API process is scraped and however many processes run.
 */
export function createMetrics(deps: Pick<AppDeps, 'sql' | 'logger'>, routes: RouteTable): AppMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route template and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  registerBusinessMetrics(registry, deps);

  const middleware: RequestHandler = (req, res, next) => {
    const route = routes.match(req.path)?.path ?? UNMATCHED_ROUTE;
    const stopTimer = httpDuration.startTimer({ method: req.method, route });
    // `close` also ends an event stream or a request the client abandoned.
    res.once('close', () => stopTimer({ status_code: String(res.statusCode) }));
    next();
  };

  const router = Router();
  router.get('/metrics', async (_req, res) => {
    const body = await registry.metrics();
    res.type(registry.contentType).send(body);
  });
  return { registry, middleware, router };
}

interface ProjectionCounts {
  payments: Array<{ kind: string; status: string; renewal: boolean; retry: boolean; currency: string; count: number; amount: number }>;
  subscriptions: Array<{ status: string; count: number }>;
  holds: Array<{ status: string; count: number }>;
  bookings: Array<{ status: string; count: number }>;
}

// A charge counts as paid whether or not it was refunded later.
const PAID = new Set(['succeeded', 'refunded']);

function registerBusinessMetrics(registry: Registry, deps: Pick<AppDeps, 'sql' | 'logger'>): void {
  const readCounts = oncePerScrape(() => projectionCounts(deps));
  new Gauge({
    name: 'billing_projection_metrics_up',
    help: '1 when the business metrics below could be read from PostgreSQL at this scrape, else 0',
    registers: [registry],
    async collect() {
      this.set((await readCounts()) ? 1 : 0);
    },
  });

  /** A collect() that resets its metric and fills it from the one read of the tables of this scrape. */
  function fromCounts<M extends { reset(): void }>(fill: (this: M, counts: ProjectionCounts) => void) {
    return async function (this: M): Promise<void> {
      this.reset();
      const counts = await readCounts();
      if (counts) fill.call(this, counts);
    };
  }

  new Gauge({
    name: 'billing_payments',
    help: 'Payments by kind (subscription, one_time, booking, refund) and current status',
    labelNames: ['kind', 'status'] as const,
    registers: [registry],
    collect: fromCounts(function (this: Gauge, { payments }) {
      for (const p of payments) this.inc({ kind: p.kind, status: p.status }, p.count);
    }),
  });
  new Counter({
    name: 'billing_subscription_renewals_total',
    help: "Charges for a subscription's second or later period that were paid or failed",
    labelNames: ['outcome'] as const,
    registers: [registry],
    collect: fromCounts(function (this: Counter, { payments }) {
      this.inc({ outcome: 'succeeded' }, 0);
      this.inc({ outcome: 'failed' }, 0);
      for (const p of payments.filter((p) => p.kind === 'subscription' && p.renewal)) {
        if (PAID.has(p.status)) this.inc({ outcome: 'succeeded' }, p.count);
        if (p.status === 'failed') this.inc({ outcome: 'failed' }, p.count);
      }
    }),
  });
  new Counter({
    name: 'billing_dunning_recoveries_total',
    help: 'Subscription charges paid on a retry (a dunning retry or a new payment method), i.e. recovered periods',
    registers: [registry],
    collect: fromCounts(function (this: Counter, { payments }) {
      const recovered = payments.filter((p) => p.kind === 'subscription' && p.retry && PAID.has(p.status));
      this.inc(sum(recovered));
    }),
  });
  new Counter({
    name: 'billing_refunds_total',
    help: 'Refunds paid back',
    registers: [registry],
    collect: fromCounts(function (this: Counter, { payments }) {
      this.inc(sum(payments.filter((p) => p.kind === 'refund' && p.status === 'succeeded')));
    }),
  });
  new Counter({
    name: 'billing_refunded_amount_minor_total',
    help: 'Money refunded, in minor units, by currency',
    labelNames: ['currency'] as const,
    registers: [registry],
    collect: fromCounts(function (this: Counter, { payments }) {
      for (const p of payments.filter((p) => p.kind === 'refund' && p.status === 'succeeded')) {
        this.inc({ currency: p.currency }, p.amount);
      }
    }),
  });
  new Gauge({
    name: 'billing_subscriptions',
    help: 'Subscriptions by status (incomplete, trialing, active, past_due, canceled, expired)',
    labelNames: ['status'] as const,
    registers: [registry],
    collect: fromCounts(function (this: Gauge, { subscriptions }) {
      for (const s of subscriptions) this.set({ status: s.status }, s.count);
    }),
  });
  new Counter({
    name: 'billing_subscription_expirations_total',
    help: 'Subscriptions that expired after dunning',
    registers: [registry],
    collect: fromCounts(function (this: Counter, { subscriptions }) {
      this.inc(sum(subscriptions.filter((s) => s.status === 'expired')));
    }),
  });
  new Gauge({
    name: 'billing_holds',
    help: 'Holds by status (active, consumed, released, expired)',
    labelNames: ['status'] as const,
    registers: [registry],
    collect: fromCounts(function (this: Gauge, { holds }) {
      for (const h of holds) this.set({ status: h.status }, h.count);
    }),
  });
  new Counter({
    name: 'billing_holds_expired_total',
    help: 'Holds released by their TTL',
    registers: [registry],
    collect: fromCounts(function (this: Counter, { holds }) {
      this.inc(sum(holds.filter((h) => h.status === 'expired')));
    }),
  });
  new Gauge({
    name: 'billing_bookings',
    help: 'Bookings by status (pending, confirmed, failed, canceled)',
    labelNames: ['status'] as const,
    registers: [registry],
    collect: fromCounts(function (this: Gauge, { bookings }) {
      for (const b of bookings) this.set({ status: b.status }, b.count);
    }),
  });
  new Counter({
    name: 'billing_bookings_confirmed_total',
    help: 'Bookings that were confirmed (including those canceled since: only a confirmed booking can be canceled)',
    registers: [registry],
    collect: fromCounts(function (this: Counter, { bookings }) {
      this.inc(sum(bookings.filter((b) => b.status === 'confirmed' || b.status === 'canceled')));
    }),
  });
}

function sum(rows: Array<{ count: number }>): number {
  return rows.reduce((total, row) => total + row.count, 0);
}

/**
 * A scrape calls every collect() at once; they share one read, and the next scrape reads anew.
 * Answers undefined (after logging) when PostgreSQL cannot be read.
 */
function oncePerScrape(read: () => Promise<ProjectionCounts>): () => Promise<ProjectionCounts | undefined> {
  let inFlight: Promise<ProjectionCounts | undefined> | undefined;
  return () => {
    inFlight ??= read()
      .catch(() => undefined)
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
}

async function projectionCounts({ sql, logger }: Pick<AppDeps, 'sql' | 'logger'>): Promise<ProjectionCounts> {
  try {
    const [payments, subscriptions, holds, bookings] = await Promise.all([
      sql<ProjectionCounts['payments']>`
        select kind, status, coalesce(cycle, 0) > 1 as renewal, attempt > 1 as retry, currency,
               count(*)::int as count, coalesce(sum(amount), 0)::float8 as amount
        from payments group by 1, 2, 3, 4, 5`,
      sql<ProjectionCounts['subscriptions']>`select status, count(*)::int as count from subscriptions group by status`,
      sql<ProjectionCounts['holds']>`select status, count(*)::int as count from holds group by status`,
      sql<ProjectionCounts['bookings']>`select status, count(*)::int as count from bookings group by status`,
    ]);
    return { payments, subscriptions, holds, bookings };
  } catch (err) {
    logger.warn({ err }, 'business metrics could not be read from PostgreSQL');
    throw err;
  }
}
