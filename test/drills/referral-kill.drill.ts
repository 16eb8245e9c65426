/**
 * Drill: SIGKILL the worker while referral rewards are being granted, then start it again. Every
 * referrer must be credited once per customer they referred: one `referral/<id>` ledger entry
 * each, a balance of that count × REFERRAL_CREDIT, and every subscription charged once.
 *
 * The referred customers subscribe over HTTP all at once, as customers do: the API gives each
 * workflow its referralCredit because the customer has an unrewarded referral. The worker reaches
 * PostgreSQL through a proxy that delays every query by LATENCY_MS, so a reward step (about seven
 * round trips) lasts long enough for the kill to land inside many of them, some between the grant
 * and the referral's rewarded_at. The steps the dead worker held time out on the server (30 s) and
 * run again on the new worker; the ledger key makes a repeated grant change nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { temporal } from '@temporalio/proto';
import { inArray } from 'drizzle-orm';
import type { AppDeps } from '../../api/app';
import { issueToken } from '../../api/auth';
import { tally } from '../../bench/stats';
import { balanceOf } from '../../db/credits';
import { recordReferral, referralCodeOf } from '../../db/referrals';
import { creditEntries, referrals, subscriptions } from '../../db/schema';
import { referralRewardKey } from '../../domain/referral';
import { subscriptionWorkflowId } from '../../domain/subscription';
import { requestJson } from '../support/api';
import { insertTestUser } from '../support/payment-fixtures';
import { insertTestPlan } from '../support/subscription-fixtures';
import { waitFor } from '../support/subscription-stack';
import { auditChargedOnce, insertUsers, withDrill } from './drill-support';
import { startTcpProxy } from './tcp-proxy';

const REFERRED = 150;
const REFERRERS = 5;
const LATENCY_MS = 50;
const KILL_AFTER_REWARDED = 30;
const STARTED = temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED;

test('SIGKILL of the worker mid-reward: every referral credited once', { timeout: 10 * 60_000 }, () =>
  withDrill({ api: true, env: { DATABASE_POOL_SIZE: '60' } }, async ({ stack, deps }) => {
    const credit = deps.config.REFERRAL_CREDIT;
    const plan = await insertTestPlan(deps.db);
    const referrers = await insertUsers(deps, REFERRERS);
    const codes = await Promise.all(referrers.map((id) => referralCodeOf(deps.db, id)));
    const referred = await Promise.all(
      Array.from({ length: REFERRED }, async (_, i) => {
        const user = await insertTestUser(deps.db);
        const referrerId = referrers[i % REFERRERS];
        await deps.db.transaction((tx) => recordReferral(tx, { referrerId, referredUserId: user.id, code: codes[i % REFERRERS] }));
        const token = await issueToken(deps.config, { ...user, role: 'customer' });
        return { id: user.id, referrerId, headers: { authorization: `Bearer ${token}` } };
      }),
    );
    const referredIds = referred.map((r) => r.id);

    const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(stack.databaseUrl).port) });
    try {
      const proxied = new URL(stack.databaseUrl);
      proxied.port = String(proxy.port);
      stack.env.DATABASE_URL = proxied.toString();
      await stack.worker.stop();
      await stack.worker.start();
      proxy.setLatency(LATENCY_MS);

      const startedAt = Date.now();
      const subscribing = Promise.all(
        referred.map((r) =>
          requestJson(`${stack.apiUrl}/api/v1/subscriptions/subscribe`, {
            headers: r.headers,
            body: { planId: plan.planId, paymentMethod: 'pm_card_visa' },
          }),
        ),
      );
      await waitFor(
        async () => (await rewardProgress(deps, referrers)).rewarded,
        (n) => n >= KILL_AFTER_REWARDED,
        { timeoutMs: 3 * 60_000, intervalMs: 20, what: `${KILL_AFTER_REWARDED} referrals rewarded` },
      );
      await stack.worker.kill();
      const killedAt = Date.now();
      // The new worker runs at full speed: the drill is about the steps the dead one left halfway.
      proxy.setLatency(0);
      const atKill = await rewardProgress(deps, referrers);
      const steps = await rewardSteps(deps, await subscriptionsOf(deps, referredIds));
      console.log(
        `worker killed ${killedAt - startedAt} ms after the subscribes: ${atKill.rewarded} of ${REFERRED} referrals rewarded, ` +
          `${atKill.grantedNotMarked} granted but not yet marked rewarded, ${atKill.untouched} not granted; ` +
          `reward steps in flight on the killed worker: ${steps.started}, scheduled and waiting: ${steps.scheduled}`,
      );
      assert.ok(atKill.rewarded < REFERRED && steps.started > 0, 'the kill landed while reward steps were in flight');

      await stack.worker.start();
      await waitFor(
        () => rewardProgress(deps, referrers),
        (p) => p.rewarded === REFERRED,
        { timeoutMs: 4 * 60_000, intervalMs: 500, what: 'every referral rewarded after the restart' },
      );
      const subscriptionIds = await waitFor(
        () => subscriptionsOf(deps, referredIds, 'active'),
        (ids) => ids.length === REFERRED,
        { timeoutMs: 2 * 60_000, intervalMs: 500, what: 'every subscription active' },
      );
      console.log(`every referral rewarded ${Date.now() - killedAt} ms after the kill, ${Date.now() - startedAt} ms after the subscribes`);
      const answers = await subscribing;
      console.log('subscribe answers:', tally(answers.map((a) => a.status)));
      for (const a of answers) assert.ok(a.status === 201 || a.status === 202, `subscribe answered ${a.status}: ${JSON.stringify(a.body)}`);

      const entries = await deps.db.select().from(creditEntries).where(inArray(creditEntries.userId, referrers));
      assert.equal(entries.length, REFERRED, 'one ledger entry per referred customer, no other credit for the referrers');
      for (const r of referred) {
        const own = entries.filter((e) => e.idempotencyKey === referralRewardKey(r.id));
        assert.equal(own.length, 1, `referred customer ${r.id}: ${own.length} referral entries`);
        assert.deepEqual(
          [own[0].userId, own[0].kind, own[0].amount, own[0].currency],
          [r.referrerId, 'referral', credit.amount, credit.currency],
          `referred customer ${r.id}: the entry`,
        );
      }
      for (const referrerId of referrers) {
        const earned = referred.filter((r) => r.referrerId === referrerId).length;
        assert.equal(
          await balanceOf(deps.db, referrerId, credit.currency),
          earned * credit.amount,
          `referrer ${referrerId}: balance for ${earned} referrals`,
        );
      }
      const rows = await deps.db.select().from(referrals).where(inArray(referrals.referredUserId, referredIds));
      assert.deepEqual(
        rows.filter((row) => row.rewardedAt === null),
        [],
        'every referral marked rewarded',
      );
      console.log(
        `credited once each: ${REFERRED} ledger entries, ${REFERRERS} referrers at ${REFERRED / REFERRERS} × ${credit.amount} ${credit.currency}`,
      );

      const audit = await auditChargedOnce(deps, stack.gatewayLogFile!, subscriptionIds, 1);
      console.log(
        `charged once each: ${audit.subscriptions} subscriptions, ${audit.gatewayCalls} gateway calls, ${audit.repeatedCalls} repeated a key`,
      );
    } finally {
      await proxy.close();
    }
  }),
);

/** Referrals of these referrers: rewarded (rewarded_at set), granted but not yet marked, untouched. */
async function rewardProgress(deps: AppDeps, referrers: string[]) {
  const [rows, entries] = await Promise.all([
    deps.db
      .select({ id: referrals.referredUserId, rewardedAt: referrals.rewardedAt })
      .from(referrals)
      .where(inArray(referrals.referrerId, referrers)),
    deps.db.select({ key: creditEntries.idempotencyKey }).from(creditEntries).where(inArray(creditEntries.userId, referrers)),
  ]);
  const granted = new Set(entries.map((e) => e.key));
  const rewarded = rows.filter((row) => row.rewardedAt !== null).length;
  const grantedNotMarked = rows.filter((row) => row.rewardedAt === null && granted.has(referralRewardKey(row.id))).length;
  return { rewarded, grantedNotMarked, untouched: rows.length - rewarded - grantedNotMarked };
}

/** Ids of these customers' subscriptions (in `status`, if given). */
async function subscriptionsOf(deps: AppDeps, userIds: string[], status?: string): Promise<string[]> {
  const rows = await deps.db
    .select({ id: subscriptions.id, status: subscriptions.status })
    .from(subscriptions)
    .where(inArray(subscriptions.userId, userIds));
  return rows.filter((row) => status === undefined || row.status === status).map((row) => row.id);
}

/** The workflows' pending reward steps: started (a worker holds them) or scheduled. */
async function rewardSteps(deps: AppDeps, subscriptionIds: string[]): Promise<{ started: number; scheduled: number }> {
  const described = await Promise.all(subscriptionIds.map((id) => deps.temporal.workflow.getHandle(subscriptionWorkflowId(id)).describe()));
  const pending = described.flatMap((d) => d.raw.pendingActivities ?? []).filter((a) => a.activityType?.name === 'rewardReferral');
  const started = pending.filter((a) => a.state === STARTED).length;
  return { started, scheduled: pending.length - started };
}
