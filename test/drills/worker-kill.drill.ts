/**
 * Drill: SIGKILL the worker while renewal charges are in flight, then start it again. Every due
 * subscription must be charged exactly once, in PostgreSQL and in the gateway's record.
 *
 * The gateway's answers arrive 200 ms after it made the charge, so at the kill many charges are
 * made at the gateway but not yet recorded in PostgreSQL. Their activities time out on the server
 * (30 s) and run again on the new worker with the same idempotency key: the gateway sees the key
 * twice and charges once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { seedDueSubscriptions } from '../../bench/seed';
import { assertBooksBalance } from '../support/reconciliation';
import { insertTestPlan } from '../support/subscription-fixtures';
import { waitFor } from '../support/subscription-stack';
import { answeredCharges, auditChargedOnce, chargesOfCycle, insertUsers, projectedCycles, secondsFromNow, withDrill } from './drill-support';

const SUBSCRIPTIONS = 300;
const KILL_AFTER_ANSWERED = 30;

test('SIGKILL of the worker during a renewal storm: every subscription renewed once', { timeout: 10 * 60_000 }, () =>
  withDrill({ gatewayDelayMs: 200 }, async ({ stack, deps }) => {
    const plan = await insertTestPlan(deps.db, { interval: 'P1D' });
    const dueAt = secondsFromNow(20);
    const seeded = await seedDueSubscriptions(deps, { plan, userIds: await insertUsers(deps, 10), count: SUBSCRIPTIONS, dueAt });
    const ids = seeded.map((s) => s.subscriptionId);
    assert.ok(Date.now() < dueAt.getTime(), 'every subscription was armed before the due instant');

    const answered = async () => (await answeredCharges(deps, ids, 2)).length;
    const beforeKill = await waitFor(answered, (n) => n >= KILL_AFTER_ANSWERED, {
      timeoutMs: 60_000,
      intervalMs: 20,
      what: `${KILL_AFTER_ANSWERED} renewals charged`,
    });
    await stack.worker.kill();
    const rowsAtKill = await chargesOfCycle(deps, ids, 2);
    const answeredAtKill = rowsAtKill.filter((row) => row.status !== 'pending').length;
    const inFlightAtKill = rowsAtKill.length - answeredAtKill;
    console.log(
      `worker killed: ${answeredAtKill} of ${SUBSCRIPTIONS} renewals answered (${beforeKill} a moment before), ${inFlightAtKill} charges in flight`,
    );
    assert.ok(answeredAtKill < SUBSCRIPTIONS && inFlightAtKill > 0, 'the kill landed while charges were in flight');

    await sleep(2000);
    await stack.worker.start();
    await waitFor(answered, (n) => n === SUBSCRIPTIONS, {
      timeoutMs: 4 * 60_000,
      intervalMs: 500,
      what: 'every renewal charged after the restart',
    });
    await waitFor(
      () => projectedCycles(deps, ids),
      (cycles) => cycles['2'] === SUBSCRIPTIONS,
      {
        timeoutMs: 60_000,
        what: 'every subscription projected in cycle 2',
      },
    );

    const audit = await auditChargedOnce(deps, stack.gatewayLogFile!, ids, 2);
    console.log(
      `charged once each: ${audit.subscriptions} subscriptions, ${audit.gatewayCalls} gateway calls, ${audit.repeatedCalls} repeated a key after the kill`,
    );
    assert.ok(audit.repeatedCalls > 0, 'the kill caught charges the gateway had made and PostgreSQL had not recorded');
    await assertBooksBalance(deps.db, { gatewayLog: stack.gatewayLogFile });
  }),
);
