/**
 * The peer beside the ceiling (issue 15): the design the product's documents start from and
 * replace, a scheduled job that polls PostgreSQL for due subscriptions, measured in the same run
 * as the renewal storm so that a reader sees what durability costs against it. Bench code only:
 * it lives here, in tables of its own that the bench creates, and nothing in the product uses it.
 *
 * Each of `workers` loops: BEGIN; SELECT one due row FOR UPDATE SKIP LOCKED; charge it through
 * the same sandbox gateway the storm's worker uses (SandboxGateway, its intents in the same
 * PostgreSQL); INSERT the payment; UPDATE the row to its next period; COMMIT. Gateway calls are
 * held to the storm's own limit (the server's per-queue activity rate limit on `payments`,
 * GATEWAY_MAX_CALLS_PER_SECOND), so neither side may call the gateway faster than the other.
 *
 * It holds the row lock across the gateway call, as such jobs do: the product refuses that
 * (db/client.ts), and it is part of what the cron design gets cheaply and the durable one does not.
 * The idempotency key (subscription and cycle) makes a retried firing charge nothing twice.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type postgres from 'postgres';
import { SandboxGateway } from '../activities/gateway';
import { connectDatabase } from '../db/client';
import type { PaymentGateway } from '../domain/payment';
import { loadConfig } from '../platform/config';
import { TASK_QUEUES } from '../platform/task-queues';
import type { TestUser } from '../test/support/api';
import type { BenchContext, RenewalRunFigures } from './benchmarks';
import { cpuPerOperation, type CpuReading } from './cpu';
import { perSecond, runBounded, summarise, tally } from './stats';

export interface PeerOptions {
  databaseUrl: string;
  users: readonly TestUser[];
  count: number;
  workers: number;
  /** Gateway calls per second across all workers, as the storm's `payments` queue allows. */
  gatewayCallsPerSecond: number;
  readCpu(): CpuReading;
  progress(message: string): void;
}

/** The peer's lateness is its renewal's commit minus the due instant; its CPU is the bench process's. */
export interface PeerResult extends RenewalRunFigures {
  workers: number;
  gatewayCallsPerSecond: number;
}

// Tables of the bench's own, beside the product's schema (not a migration): the storm's rows
// and the reconciliation's books never see them. Their gateway intents are the sandbox's own rows.
const CREATE_TABLES = `
  CREATE TABLE IF NOT EXISTS bench_peer_subscriptions (
    id uuid PRIMARY KEY,
    run text NOT NULL,
    user_id uuid NOT NULL,
    customer_id text NOT NULL,
    payment_method text NOT NULL,
    amount integer NOT NULL,
    currency text NOT NULL,
    status text NOT NULL,
    cycle integer NOT NULL,
    next_billing_date timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
  );
  CREATE INDEX IF NOT EXISTS bench_peer_subscriptions_due ON bench_peer_subscriptions (run, next_billing_date) WHERE status = 'active';
  CREATE TABLE IF NOT EXISTS bench_peer_payments (
    id uuid PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES bench_peer_subscriptions (id),
    cycle integer NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    amount integer NOT NULL,
    currency text NOT NULL,
    status text NOT NULL,
    gateway_payment_id text,
    failure_code text,
    created_at timestamptz NOT NULL
  );
`;

// Timestamps go in as ISO strings: drizzle's postgres.js client sends date parameters as they are given.
const AMOUNT = 1999;
const CURRENCY = 'usd';
// Consecutive failed renewals after which a worker gives up (the bench reports, it does not loop for ever).
const MAX_CONSECUTIVE_ERRORS = 10;

/**
 * The peer as the bench runs it: as many subscriptions as the storm, as many workers as the
 * ceiling and subscribe runs keep in flight, and the gateway limit the worker reported for its
 * `payments` queue (the configured one if it reported none). It starts once the stack is quiet,
 * so that the Temporal server and the worker finishing earlier work are not billed to it.
 */
export async function runCronPeer(ctx: BenchContext): Promise<PeerResult> {
  const payments = ctx.stack.workerSettings().workers.find((w) => w.taskQueue === TASK_QUEUES.payments);
  const gatewayCallsPerSecond = payments?.maxTaskQueueActivitiesPerSecond ?? loadConfig(ctx.stack.env).GATEWAY_MAX_CALLS_PER_SECOND;
  await untilQuiet(ctx);
  return measureCronPeer({
    databaseUrl: ctx.stack.databaseUrl,
    users: ctx.users,
    count: ctx.sizes.storm,
    workers: ctx.sizes.concurrency,
    gatewayCallsPerSecond,
    readCpu: () => ctx.readCpu(),
    progress: (message) => ctx.progress(message),
  });
}

// Quiet: the stack's processes other than PostgreSQL use under 5 % of a core over a second.
const QUIET_MS_PER_SECOND = 50;
const QUIET_TIMEOUT_MS = 30_000;

async function untilQuiet(ctx: BenchContext): Promise<void> {
  const deadline = Date.now() + QUIET_TIMEOUT_MS;
  const busy = (r: CpuReading) => (r.temporal ?? 0) + (r.worker ?? 0) + (r.api ?? 0);
  for (;;) {
    const before = ctx.readCpu();
    await sleep(1000);
    const used = busy(ctx.readCpu()) - busy(before);
    if (used < QUIET_MS_PER_SECOND || Date.now() > deadline) return;
  }
}

/** Seeds `count` due subscriptions, then runs the job from their due instant until none is due. */
export async function measureCronPeer(options: PeerOptions): Promise<PeerResult> {
  // Each worker holds two connections at once: its own transaction and the gateway's.
  const database = connectDatabase(options.databaseUrl, { max: 2 * options.workers + 2 });
  try {
    const gateway = new SandboxGateway(database.db);
    await database.sql.unsafe(CREATE_TABLES);
    const run = randomUUID().slice(0, 8);
    const seedingStarted = performance.now();
    const dueAt = await seed(database.sql, gateway, options, run);
    options.progress(`peer: ${options.count} due subscriptions seeded in ${((performance.now() - seedingStarted) / 1000).toFixed(1)} s`);
    await sleep(Math.max(0, dueAt.getTime() - Date.now()));

    const takeGatewayCall = gatewayLimit(options.gatewayCallsPerSecond);
    const committedAt: number[] = [];
    const statuses: string[] = [];
    const cpuBefore = options.readCpu();
    await Promise.all(
      Array.from({ length: options.workers }, () =>
        renewUntilNoneDue(database.sql, gateway, { run, dueAt, takeGatewayCall }, (status) => {
          committedAt.push(Date.now());
          statuses.push(status);
        }),
      ),
    );
    const cpuAfter = options.readCpu();
    const lateness = committedAt.map((t) => t - dueAt.getTime());
    const drainMs = Math.max(0, ...lateness);
    return {
      count: options.count,
      workers: options.workers,
      gatewayCallsPerSecond: options.gatewayCallsPerSecond,
      renewed: statuses.filter((s) => s === 'succeeded').length,
      drainMs,
      renewalsPerSecond: perSecond(statuses.filter((s) => s === 'succeeded').length, drainMs),
      peakChargesPerSecond: Math.max(0, ...Object.values(tally(committedAt.map((t) => Math.floor(t / 1000))))),
      latenessMs: summarise(lateness),
      statuses: tally(statuses),
      cpuMsPerOperation: cpuPerOperation(cpuBefore, cpuAfter, committedAt.length),
    };
  } finally {
    await database.close();
  }
}

/** One sandbox customer per user (a key of the peer's own), then the rows, due two seconds after. */
async function seed(sql: postgres.Sql, gateway: PaymentGateway, options: PeerOptions, run: string): Promise<Date> {
  const customers = await Promise.all(
    options.users.map(async ({ user }) => {
      const { customerId } = await gateway.createCustomer({
        userId: user.id,
        email: user.email,
        name: user.name,
        idempotencyKey: `bench-peer/${user.id}`,
      });
      return { userId: user.id, customerId };
    }),
  );
  const farFuture = new Date(Date.now() + 3600_000);
  const rows = Array.from({ length: options.count }, (_, i) => {
    const { userId, customerId } = customers[i % customers.length];
    return {
      id: randomUUID(),
      run,
      user_id: userId,
      customer_id: customerId,
      payment_method: 'pm_card_visa',
      amount: AMOUNT,
      currency: CURRENCY,
      status: 'active',
      cycle: 1,
      next_billing_date: farFuture.toISOString(),
      updated_at: new Date().toISOString(),
    };
  });
  await runBounded(Math.ceil(rows.length / 500), 1, (i) => sql`INSERT INTO bench_peer_subscriptions ${sql(rows.slice(i * 500, (i + 1) * 500))}`);
  // All of them due at one instant, as the storm's are.
  const dueAt = new Date(Math.ceil((Date.now() + 2000) / 1000) * 1000);
  await sql`UPDATE bench_peer_subscriptions SET next_billing_date = ${dueAt.toISOString()} WHERE run = ${run}`;
  return dueAt;
}

interface DueRow {
  id: string;
  user_id: string;
  customer_id: string;
  payment_method: string;
  amount: number;
  currency: string;
  cycle: number;
}

/** One worker of the job: renews one due row per transaction until none is left to lock. */
async function renewUntilNoneDue(
  sql: postgres.Sql,
  gateway: PaymentGateway,
  job: { run: string; dueAt: Date; takeGatewayCall: () => Promise<void> },
  committed: (status: string) => void,
): Promise<void> {
  let consecutiveErrors = 0;
  for (;;) {
    let status: string | undefined;
    try {
      status = await sql.begin(async (tx) => {
        const [row] = await tx<DueRow[]>`
          SELECT id, user_id, customer_id, payment_method, amount, currency, cycle FROM bench_peer_subscriptions
          WHERE run = ${job.run} AND status = 'active' AND next_billing_date <= ${job.dueAt.toISOString()}
          ORDER BY next_billing_date LIMIT 1 FOR UPDATE SKIP LOCKED`;
        if (!row) return undefined;
        return renewLocked(tx, gateway, row, job.takeGatewayCall);
      });
      consecutiveErrors = 0;
    } catch (error) {
      // Rolled back: the row is due again and the same key charges nothing twice on the next pass.
      if (++consecutiveErrors >= MAX_CONSECUTIVE_ERRORS) throw error;
      continue;
    }
    if (status === undefined) return;
    committed(status);
  }
}

async function renewLocked(tx: postgres.TransactionSql, gateway: PaymentGateway, row: DueRow, takeGatewayCall: () => Promise<void>): Promise<string> {
  const cycle = row.cycle + 1;
  const idempotencyKey = `bench-peer/${row.id}/${cycle}`;
  await takeGatewayCall();
  const outcome = await gateway.charge({
    amount: row.amount,
    currency: row.currency,
    customerId: row.customer_id,
    paymentMethod: row.payment_method,
    session: 'off_session',
    idempotencyKey,
    customerRef: row.user_id,
    description: 'Renewal (bench cron peer)',
    metadata: { subscription_id: row.id, cycle: String(cycle) },
  });
  await tx`
    INSERT INTO bench_peer_payments (id, subscription_id, cycle, idempotency_key, amount, currency, status, gateway_payment_id, failure_code, created_at)
    VALUES (${randomUUID()}, ${row.id}, ${cycle}, ${idempotencyKey}, ${row.amount}, ${row.currency}, ${outcome.status},
            ${outcome.gatewayPaymentId}, ${'failureCode' in outcome ? (outcome.failureCode ?? null) : null}, ${new Date().toISOString()})
    ON CONFLICT (idempotency_key) DO NOTHING`;
  if (outcome.status === 'succeeded') {
    await tx`UPDATE bench_peer_subscriptions SET cycle = ${cycle}, next_billing_date = next_billing_date + interval '1 day', updated_at = ${new Date().toISOString()} WHERE id = ${row.id}`;
  } else {
    // Out of the job's way; a real one would start its dunning here.
    await tx`UPDATE bench_peer_subscriptions SET status = 'past_due', updated_at = ${new Date().toISOString()} WHERE id = ${row.id}`;
  }
  return outcome.status;
}

/**
 * At most `perSecond` calls in any second across every worker: each call takes the next slot,
 * 1000 / perSecond ms after the one before, with no burst. Stricter than a token bucket, so the
 * peer never calls the gateway faster than the storm may (whose peak, through the server's limit
 * on `payments`, has been at or just above the limit in every run: bench/README.md, Tuning).
 */
export function gatewayLimit(perSecond: number): () => Promise<void> {
  const gapMs = 1000 / perSecond;
  let nextAt = 0;
  return async () => {
    const now = performance.now();
    const at = Math.max(now, nextAt);
    nextAt = at + gapMs;
    if (at > now) await sleep(at - now);
  };
}
