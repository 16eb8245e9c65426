import type { RequestHandler, Router } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { z } from 'zod';
import type { AppDeps } from './deps';
import type { ApiOperation, RouteTable } from './contract';
import { apiRouter } from './route';

// Routes wait up to 20 s for a workflow's answer, so the buckets reach past that.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30];
const UNMATCHED_ROUTE = 'unmatched';

export const metricsApi = {
  metrics: {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics: HTTP latency by route and status, business counts from PostgreSQL, process metrics',
    auth: 'public',
    unlimited: true,
    responses: { 200: { description: 'Prometheus text exposition format', contentType: 'text/plain', schema: z.string() } },
  },
} satisfies Record<string, ApiOperation>;

/**
 * Gateway events ignored because they do not match what they name (a foreign intent, a wrong
 * amount or currency, an unknown customer), by reason. Counted in memory as they happen, unlike
 * the business metrics below: the rows that record them are deleted after 30 days, and a count
 * read from them would fall. One counter per process, shown by every app's registry in it.
 */
const webhookMismatches = new Counter({
  name: 'webhook_mismatches_total',
  help: 'Gateway webhook events ignored as not matching the payment, customer or card they name, by reason',
  labelNames: ['reason'] as const,
  registers: [],
});

/** Counts one ignored gateway event (api/webhook-events.ts). */
export function countWebhookMismatch(reason: string): void {
  webhookMismatches.inc({ reason });
}

/** Live availability streams open in this process, and those dropped for not reading (api/event-stream.ts). */
const sseStreamsOpen = new Gauge({ name: 'sse_streams_open', help: 'Server-Sent Event streams open in this process', registers: [] });
const sseSlowClientsDropped = new Counter({
  name: 'sse_slow_clients_dropped_total',
  help: 'Server-Sent Event streams ended because the client left too many bytes unread',
  registers: [],
});

/** Counts a stream as open; the answer counts it closed. */
export function countSseStream(): () => void {
  sseStreamsOpen.inc();
  return () => sseStreamsOpen.dec();
}

export function countSlowSseClientDropped(): void {
  sseSlowClientsDropped.inc();
}

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
  registry.registerMetric(webhookMismatches);
  registry.registerMetric(sseStreamsOpen);
  registry.registerMetric(sseSlowClientsDropped);

  const middleware: RequestHandler = (req, res, next) => {
    const route = routes.match(req.path)?.path ?? UNMATCHED_ROUTE;
    const stopTimer = httpDuration.startTimer({ method: req.method, route });
    // `close` also ends an event stream or a request the client abandoned.
    res.once('close', () => stopTimer({ status_code: String(res.statusCode) }));
    next();
  };

  const { router, route } = apiRouter();
  route(metricsApi.metrics, async (_req, res) => {
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
/** Booking statuses only a confirmed booking reaches. */
const CONFIRMED_ONCE = new Set(['confirmed', 'canceled', 'checked_in', 'no_show']);

/**
 * Every metric is labelled, so none is exposed before the tables were read once: a counter
 * must not show 0 and then its total. When a read fails the last values stay, and
 * `billing_projection_metrics_up` says they are stale.
 */
function registerBusinessMetrics(registry: Registry, deps: Pick<AppDeps, 'sql' | 'logger'>): void {
  const readCounts = oncePerScrape(() => projectionCounts(deps));
  new Gauge({
    name: 'billing_projection_metrics_up',
    help: '1 when the billing_* metrics could be read from PostgreSQL at this scrape, else 0 (they keep their last values)',
    registers: [registry],
    async collect() {
      this.set((await readCounts()) ? 1 : 0);
    },
  });

  /** A collect() that refills its metric from this scrape's one read of the tables. */
  function fromCounts<M extends { reset(): void }>(fill: (this: M, counts: ProjectionCounts) => void) {
    return async function (this: M): Promise<void> {
      const counts = await readCounts();
      if (!counts) return;
      this.reset();
      fill.call(this, counts);
    };
  }

  new Counter({
    name: 'billing_events_total',
    help:
      'Business events so far: renewal_succeeded and renewal_failed (charges for a second or later period), ' +
      'dunning_recovery (a period paid on a retry or a new payment method), subscription_expired, hold_expired, ' +
      'booking_confirmed (including bookings canceled, checked in or no-shows since), refund (paid back)',
    labelNames: ['event'] as const,
    registers: [registry],
    collect: fromCounts(function (this: Counter<'event'>, { payments, subscriptions, holds, bookings }) {
      const subscriptionCharges = payments.filter((p) => p.kind === 'subscription');
      const events: Record<string, number> = {
        renewal_succeeded: sum(subscriptionCharges.filter((p) => p.renewal && PAID.has(p.status))),
        renewal_failed: sum(subscriptionCharges.filter((p) => p.renewal && p.status === 'failed')),
        dunning_recovery: sum(subscriptionCharges.filter((p) => p.retry && PAID.has(p.status))),
        subscription_expired: sum(subscriptions.filter((s) => s.status === 'expired')),
        hold_expired: sum(holds.filter((h) => h.status === 'expired')),
        // Only a confirmed booking can be canceled, checked in or a no-show: a counter never goes down.
        booking_confirmed: sum(bookings.filter((b) => CONFIRMED_ONCE.has(b.status))),
        refund: sum(payments.filter((p) => p.kind === 'refund' && p.status === 'succeeded')),
      };
      for (const [event, count] of Object.entries(events)) this.inc({ event }, count);
    }),
  });
  new Counter({
    name: 'billing_refunded_amount_minor_total',
    help: 'Money refunded, in minor units, by currency',
    labelNames: ['currency'] as const,
    registers: [registry],
    collect: fromCounts(function (this: Counter<'currency'>, { payments }) {
      for (const p of payments.filter((p) => p.kind === 'refund' && p.status === 'succeeded')) {
        this.inc({ currency: p.currency }, p.amount);
      }
    }),
  });
  new Gauge({
    name: 'billing_payments',
    help: 'Payments by kind (subscription, one_time, booking, refund) and current status',
    labelNames: ['kind', 'status'] as const,
    registers: [registry],
    collect: fromCounts(function (this: Gauge<'kind' | 'status'>, { payments }) {
      for (const p of payments) this.inc({ kind: p.kind, status: p.status }, p.count);
    }),
  });
  const byStatus = (name: string, help: string, table: 'subscriptions' | 'holds' | 'bookings') =>
    new Gauge({
      name,
      help,
      labelNames: ['status'] as const,
      registers: [registry],
      collect: fromCounts(function (this: Gauge<'status'>, counts) {
        for (const row of counts[table]) this.set({ status: row.status }, row.count);
      }),
    });
  byStatus('billing_subscriptions', 'Subscriptions by status (incomplete, trialing, active, past_due, canceled, expired)', 'subscriptions');
  byStatus('billing_holds', 'Holds by status (active, consumed, released, expired)', 'holds');
  byStatus('billing_bookings', 'Bookings by status (pending, confirmed, failed, canceled)', 'bookings');
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
