/**
 * The Temporal-restart drill's timeline, shared by the dev server's (temporal-restart.drill.ts,
 * state in a SQLite file) and the cluster's (cluster-temporal-restart.drill.ts, the Temporal
 * server on PostgreSQL): stop the server in the middle of dunning timelines and start it again on
 * the same data. Every reminder, retry and expiry must still happen once, and never before its
 * time; those due while the server was down happen as soon as it is back.
 *
 * Timeline of each subscription, from the failed renewal: reminder +4 s, retry +6 s, reminder
 * +10 s, retry +12 s, expiry +16 s. The server is down from +2 s to +8 s (and for as long as its
 * own clean stop takes).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { inArray } from 'drizzle-orm';
import { readGatewayCalls, type GatewayCall } from '../../bench/recording-gateway';
import { seedDueSubscriptions } from '../../bench/seed';
import { summarise } from '../../bench/stats';
import { notifications } from '../../db/schema';
import type { SubscriptionSnapshot } from '../../domain/subscription';
import { assertBooksBalance } from '../support/reconciliation';
import { insertTestPlan } from '../support/subscription-fixtures';
import { waitFor } from '../support/subscription-stack';
import { answeredCharges, chargesOfCycle, insertUsers, secondsFromNow, type Drill } from './drill-support';

const SUBSCRIPTIONS = 20;
const DUNNING = { retryOffsets: ['PT6S', 'PT12S'], reminderOffsets: ['PT4S', 'PT10S'], gracePeriod: 'PT16S' };
const RETRY_AT_MS = [6000, 12_000];
const REMINDER_AT_MS = [4000, 10_000];
const GRACE_MS = 16_000;
const DOWN_FROM_MS = 2000;
const DOWN_FOR_MS = 6000;

/** Runs the drill on `drill`'s stack; its Temporal server must keep its state across a stop. */
export async function restartTemporalMidDunning({ stack, deps }: Drill): Promise<void> {
  const plan = await insertTestPlan(deps.db, { interval: 'P1D', dunning: DUNNING });
  const seeded = await seedDueSubscriptions(deps, {
    plan,
    userIds: await insertUsers(deps, 5),
    count: SUBSCRIPTIONS,
    dueAt: secondsFromNow(10),
    paymentMethod: 'pm_card_chargeDeclined',
  });
  const ids = seeded.map((s) => s.subscriptionId);

  const lastFailure = (await waitFor(
    async () => {
      const rows = await answeredCharges(deps, ids, 2);
      return rows.length === SUBSCRIPTIONS ? Math.max(...rows.map((row) => row.updatedAt.getTime())) : null;
    },
    (at) => at !== null,
    { timeoutMs: 60_000, intervalMs: 100, what: 'every renewal declined' },
  )) as number;
  await sleep(Math.max(0, lastFailure + DOWN_FROM_MS - Date.now()));
  await stack.temporal.stop();
  console.log(`temporal stopped ${Date.now() - lastFailure} ms after the last declined renewal`);
  await sleep(DOWN_FOR_MS);
  await stack.temporal.start();
  const restartedAt = Date.now();
  console.log('temporal started again on the same data');

  const outcomes = await Promise.all(seeded.map((s) => deps.temporal.workflow.getHandle(s.workflowId).result() as Promise<SubscriptionSnapshot>));
  const charges = await chargesOfCycle(deps, ids, 2);
  const notes = await deps.db.select().from(notifications).where(inArray(notifications.subscriptionId, ids));
  const gatewayKeys = readGatewayCalls(stack.gatewayLogFile!).filter((call) => ids.includes(call.metadata.subscription_id));
  const happened = outcomes.flatMap((outcome, i) => checkTimeline(ids[i], outcome, { charges, notes, gatewayKeys }));
  const describe = (events: TimelineEvent[]) => {
    const late = summarise(events.map((e) => e.lateMs));
    return `${late.count} events, late by p50 ${late.p50} ms, max ${late.max} ms`;
  };
  console.log(`${SUBSCRIPTIONS} timelines complete, every event once and none early.`);
  console.log(`  due while the server was down: ${describe(happened.filter((e) => e.dueMs < restartedAt))}`);
  console.log(`  due after it was back: ${describe(happened.filter((e) => e.dueMs >= restartedAt))}`);
  await assertBooksBalance(deps.db, { gatewayLog: stack.gatewayLogFile });
}

interface TimelineEvent {
  dueMs: number;
  lateMs: number;
}

interface TimelineRecords {
  charges: Awaited<ReturnType<typeof chargesOfCycle>>;
  notes: Array<typeof notifications.$inferSelect>;
  gatewayKeys: GatewayCall[];
}

/**
 * One subscription's timeline: three declined charges whose keys are the only ones the gateway
 * saw, each notice once and delivered once, the dunning log's entries once each, and no event
 * before its time. Answers each timed event's due instant and how late it came.
 */
function checkTimeline(id: string, outcome: SubscriptionSnapshot, records: TimelineRecords): TimelineEvent[] {
  const { charges, notes, gatewayKeys } = records;
  const happened: TimelineEvent[] = [];
  assert.equal(outcome.status, 'expired', `subscription ${id}`);
  const failedAt = new Date(outcome.dunning!.failedAt).getTime();
  const notLate = (what: string, at: Date | string, offsetMs: number) => {
    const dueMs = failedAt + offsetMs;
    const lateMs = new Date(at).getTime() - dueMs;
    assert.ok(lateMs >= 0, `subscription ${id}: ${what} happened ${-lateMs} ms before its time`);
    happened.push({ dueMs, lateMs });
  };

  const own = charges.filter((row) => row.subscriptionId === id).sort((a, b) => (a.attempt ?? 0) - (b.attempt ?? 0));
  assert.deepEqual(
    own.map((row) => [row.attempt, row.status]),
    [
      [1, 'failed'],
      [2, 'failed'],
      [3, 'failed'],
    ],
    `subscription ${id}: charges`,
  );
  own.slice(1).forEach((row, retry) => notLate(`retry ${retry + 1}`, row.createdAt, RETRY_AT_MS[retry]));
  const keys = gatewayKeys.filter((call) => call.metadata.subscription_id === id).map((call) => call.idempotencyKey);
  assert.deepEqual(new Set(keys), new Set(own.map((row) => row.idempotencyKey)), `subscription ${id}: keys the gateway saw`);

  const kinds = notes.filter((n) => n.subscriptionId === id);
  const ofKind = (kind: string) => kinds.filter((n) => n.kind === kind).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  assert.equal(ofKind('payment_failed').length, 1, `subscription ${id}: payment_failed notices`);
  assert.equal(ofKind('grace_reminder').length, 2, `subscription ${id}: reminders`);
  assert.equal(ofKind('subscription_expired').length, 1, `subscription ${id}: expiry notices`);
  for (const note of kinds) assert.ok(note.sentAt !== null && note.attempts === 1, `subscription ${id}: ${note.kind} delivered once`);
  ofKind('grace_reminder').forEach((note, n) => notLate(`reminder ${n + 1}`, note.createdAt, REMINDER_AT_MS[n]));
  notLate('expiry', outcome.endedAt!, GRACE_MS);

  const log = outcome.dunning!.log.map((entry) => entry.kind);
  assert.deepEqual(
    ['failed', 'retry', 'reminder', 'expired'].map((kind) => log.filter((k) => k === kind).length),
    [1, 2, 2, 1],
    `subscription ${id}: dunning log ${log.join(', ')}`,
  );
  return happened;
}
