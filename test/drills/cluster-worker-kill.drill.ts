/**
 * Drill on the cluster: SIGKILL one of the two worker processes during a renewal storm of 1000,
 * and leave it dead. Either worker can pick up any workflow, so the other carries on: every
 * renewal is charged exactly once, in PostgreSQL and in the gateway's record.
 *
 * Both workers poll every task queue. The gateway's answers arrive 200 ms after it made the
 * charge, so at the kill the dead worker held charges made at the gateway and not yet recorded in
 * PostgreSQL: their activities time out on the server (30 s) and run again on the other worker
 * with the same idempotency key, and the workflows it had cached are rebuilt there from their
 * histories (its sticky queues time out to the shared ones).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sumMetricOver } from '../../bench/metrics';
import { seedDueSubscriptions } from '../../bench/seed';
import { assertBooksBalance } from '../support/reconciliation';
import { insertTestPlan } from '../support/subscription-fixtures';
import { waitFor } from '../support/subscription-stack';
import {
  answeredCharges,
  auditChargedOnce,
  chargesOfCycle,
  CLUSTER_TOPOLOGY,
  waitForEveryRenewal,
  insertUsers,
  secondsFromNow,
  withDrill,
} from './drill-support';

const SUBSCRIPTIONS = 1000;
const KILL_AFTER_ANSWERED = 100;
// Starting 1000 workflows on a busy 2-core machine: time enough that every timer is set before it.
const DUE_IN_SECONDS = 60;
// Activity tasks a worker has started (charges, projections, notices): its own SDK metric.
const ACTIVITIES_STARTED = 'temporal_activity_schedule_to_start_latency_count';

test(
  'cluster: SIGKILL of one of two workers during a renewal storm of 1000: every renewal charged once, the other carries on',
  { timeout: 15 * 60_000 },
  () =>
    withDrill({ ...CLUSTER_TOPOLOGY, gatewayDelayMs: 200 }, async ({ stack, deps }) => {
      assert.equal(stack.workers.length, 2, 'two worker processes');
      const [victim, survivor] = stack.workers;
      const [victimMetrics, survivorMetrics] = stack.metricsUrls.workers;
      const plan = await insertTestPlan(deps.db, { interval: 'P1D' });
      const dueAt = secondsFromNow(DUE_IN_SECONDS);
      const seeded = await seedDueSubscriptions(deps, { plan, userIds: await insertUsers(deps, 20), count: SUBSCRIPTIONS, dueAt });
      const ids = seeded.map((s) => s.subscriptionId);
      assert.ok(Date.now() < dueAt.getTime(), 'every subscription was armed before the due instant');

      const answered = async () => (await answeredCharges(deps, ids, 2)).length;
      await waitFor(answered, (n) => n >= KILL_AFTER_ANSWERED, {
        timeoutMs: DUE_IN_SECONDS * 1000 + 60_000,
        intervalMs: 20,
        what: `${KILL_AFTER_ANSWERED} renewals charged`,
      });
      const activitiesOf = (url: string) => sumMetricOver([url], ACTIVITIES_STARTED);
      const [victimActivities, survivorBefore] = await Promise.all([activitiesOf(victimMetrics), activitiesOf(survivorMetrics)]);
      await victim.kill();
      const rowsAtKill = await chargesOfCycle(deps, ids, 2);
      const answeredAtKill = rowsAtKill.filter((row) => row.status !== 'pending').length;
      console.log(
        `worker ${victim.name} killed: ${answeredAtKill} of ${SUBSCRIPTIONS} renewals answered, ${rowsAtKill.length - answeredAtKill} charges in flight; ` +
          `activities started so far: ${victim.name} ${victimActivities}, ${survivor.name} ${survivorBefore}`,
      );
      assert.ok(answeredAtKill < SUBSCRIPTIONS, 'the kill landed during the storm');
      assert.ok(victimActivities > 0 && survivorBefore > 0, 'both workers were renewing before the kill');

      await waitForEveryRenewal(deps, ids, answered, 'every renewal charged by the other worker');
      assert.ok(!victim.isRunning(), 'the killed worker stayed down: the other did the rest');
      const survivorAfter = await activitiesOf(survivorMetrics);
      console.log(`${survivor.name} started ${survivorAfter - survivorBefore} activities after the kill (${survivorAfter} in all)`);
      assert.ok(survivorAfter > survivorBefore, 'the other worker carried on after the kill');

      const audit = await auditChargedOnce(deps, stack.gatewayLogFile!, ids, 2);
      console.log(
        `charged once each: ${audit.subscriptions} subscriptions, ${audit.gatewayCalls} gateway calls, ${audit.repeatedCalls} repeated a key after the kill`,
      );
      assert.ok(audit.repeatedCalls > 0, 'the kill caught charges the gateway had made and PostgreSQL had not recorded');
      await assertBooksBalance(deps.db, { gatewayLog: stack.gatewayLogFile });
    }),
);
