/**
 * A renewal storm of 500 subscriptions' charges on the real payment path: 550 `chargePayment`
 * activity calls at once (500 cards that pay, 50 that decline, shuffled together), with
 * PostgreSQL and the sandbox gateway behind them, some customers paying part from their credit
 * balance. The 500 successes are invoiced with 500 consecutive numbers (1..500 of the year: no
 * gap, no duplicate), the declines take none, and after a few refunds the reconciliation against
 * the gateway's record (bench/recording-gateway.ts wraps the gateway) finds nothing.
 *
 * The activities are called directly, not from 550 subscription workflows: through Temporal (the
 * same subscriptions seeded due at one instant, as the drills do) the storm took almost two
 * minutes in the test environment, against about ten seconds this way; the workflows' own part of
 * a storm is what test/drills/worker-kill.drill.ts drills. The storm has a database of its own
 * on the runner's PostgreSQL server: other files number invoices on the shared one meanwhile, and
 * their numbers would fall between these.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { SandboxGateway } from '../activities/gateway';
import { createPaymentActivities, type PaymentActivities } from '../activities/payment';
import { recordingGateway } from '../bench/recording-gateway';
import { connectDatabase, migrateDatabase, type DatabaseHandle } from '../db/client';
import { grantCredit } from '../db/credits';
import { invoices, invoiceSequences } from '../db/schema';
import { formatInvoiceNumber } from '../domain/invoice';
import { chargeIdempotencyKey, type ChargeInput } from '../domain/payment';
import { subscriptionWorkflowId } from '../domain/subscription';
import { createLogger } from '../platform/logger';
import { insertTestUser } from './support/payment-fixtures';
import { assertBooksBalance } from './support/reconciliation';

const SUCCEEDING = 500;
const DECLINING = 50;
const CUSTOMERS = 50;
// Customers with credit: each one's first renewals pay part of the price from it.
const WITH_CREDIT = 10;
const CREDIT = 500;
const PRICE = 1999;
const REFUNDS = 20;

let shared: DatabaseHandle;
let database: string | undefined;
let storm: DatabaseHandle;
let logDir: string;
let gatewayLog: string;
let activities: PaymentActivities;

before(async () => {
  shared = connectDatabase(process.env.DATABASE_URL!, { max: 1 });
  const name = `billing_storm_${randomBytes(6).toString('hex')}`;
  await shared.sql.unsafe(`create database ${name}`);
  database = name;
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${name}`;
  await migrateDatabase(url.toString());
  // The worker's pool size by default: the storm queues for connections as it would there.
  storm = connectDatabase(url.toString(), { max: 10 });
  logDir = mkdtempSync(path.join(os.tmpdir(), 'billing-storm-'));
  gatewayLog = path.join(logDir, 'gateway-calls.jsonl');
  const gateway = recordingGateway(new SandboxGateway(storm.db), gatewayLog);
  activities = createPaymentActivities({ db: storm.db, gateway, logger: createLogger({ LOG_LEVEL: 'silent', NODE_ENV: 'test' }) });
});

after(async () => {
  await storm?.close();
  if (database) await shared.sql.unsafe(`drop database if exists ${database} with (force)`);
  await shared?.close();
  if (logDir) rmSync(logDir, { recursive: true, force: true });
});

/** A subscription's cycle-2 renewal charge, as its workflow asks for it (off-session, credit first). */
function renewal(userId: string, paymentMethod: string): ChargeInput {
  return {
    kind: 'subscription',
    userId,
    amount: PRICE,
    currency: 'usd',
    paymentMethod,
    session: 'off_session',
    idempotencyKey: chargeIdempotencyKey(subscriptionWorkflowId(randomUUID()), 2, 1),
    cycle: 2,
    attempt: 1,
    description: 'Pro renewal',
    applyCredit: true,
  };
}

test(`a renewal storm of ${SUCCEEDING} charges (and ${DECLINING} declines): consecutive invoice numbers, the books balance`, async () => {
  const { db } = storm;
  const userIds = await Promise.all(Array.from({ length: CUSTOMERS }, async () => (await insertTestUser(db)).id));
  for (const userId of userIds.slice(0, WITH_CREDIT)) {
    await grantCredit(db, { userId, currency: 'usd', amount: CREDIT, kind: 'goodwill', idempotencyKey: `storm/${userId}` });
  }
  const charges = shuffled([
    ...Array.from({ length: SUCCEEDING }, (_, i) => renewal(userIds[i % CUSTOMERS], 'pm_card_visa')),
    ...Array.from({ length: DECLINING }, (_, i) => renewal(userIds[i % CUSTOMERS], 'pm_card_chargeDeclined')),
  ]);

  const started = Date.now();
  const results = await Promise.all(charges.map((charge) => activities.chargePayment(charge)));
  console.log(`${charges.length} charges at once answered in ${Date.now() - started} ms`);
  const paid = results.filter((r) => r.status === 'succeeded');
  assert.equal(paid.length, SUCCEEDING);
  assert.equal(results.filter((r) => r.status === 'failed').length, DECLINING);
  assert.ok(
    paid.some((r) => r.creditApplied > 0),
    'some renewals paid part from credit',
  );

  // The storm's database holds these invoices only: one per success, none for a decline.
  const issued = await db.select().from(invoices);
  assert.equal(issued.length, SUCCEEDING);
  assert.deepEqual(new Set(issued.map((invoice) => invoice.paymentId)), new Set(paid.map((r) => r.paymentId)));
  assertConsecutive(issued, 'invoice');
  for (const counter of await db.select().from(invoiceSequences)) {
    const numbered = issued.filter((i) => i.kind === counter.kind && i.year === counter.year).length;
    assert.equal(counter.lastNumber, numbered, `the ${counter.kind} counter of ${counter.year}`);
  }

  // A few refunds, so the gateway's refunds and the credit notes are reconciled too.
  const refunded = paid.filter((r) => r.creditApplied === 0).slice(0, REFUNDS);
  await Promise.all(
    refunded.map((r, i) =>
      activities.refundPayment({
        paymentId: r.paymentId,
        amount: i % 2 === 0 ? PRICE : 700,
        idempotencyKey: `storm-refund/${r.paymentId}`,
        reason: 'storm',
      }),
    ),
  );
  const books = await assertBooksBalance(db, { gatewayLog });
  assert.deepEqual(books.checked, { customers: CUSTOMERS, payments: SUCCEEDING + DECLINING + REFUNDS, invoices: SUCCEEDING + REFUNDS });
  assert.deepEqual(books.gateway, { source: 'the recording gateway’s log', charges: SUCCEEDING + DECLINING, refunds: REFUNDS });
});

/** Per year (a storm across New Year's Eve numbers into both), the numbers are 1..n: consecutive, no gap, no duplicate. */
function assertConsecutive(issued: Array<typeof invoices.$inferSelect>, kind: 'invoice'): void {
  for (const year of new Set(issued.map((invoice) => invoice.year))) {
    const ofYear = issued.filter((invoice) => invoice.year === year).sort((a, b) => a.sequence - b.sequence);
    assert.deepEqual(
      ofYear.map((invoice) => invoice.sequence),
      ofYear.map((_, i) => i + 1),
      `the invoice numbers of ${year}`,
    );
    for (const invoice of ofYear) {
      assert.equal(invoice.kind, kind);
      assert.equal(invoice.number, formatInvoiceNumber(kind, year, invoice.sequence));
    }
  }
}

function shuffled<T>(items: T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}
