/**
 * Drill: stop the Redis server during hold traffic, then start it again. Holds and bookings go on
 * through PostgreSQL alone: no double booking, and no 500 from any request.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findDoubleBookings } from '../../bench/invariants';
import { tally } from '../../bench/stats';
import { createTestUser } from '../support/api';
import { insertTestOffering } from '../support/booking-fixtures';
import { assertBooksBalance } from '../support/reconciliation';
import { withDrill } from './drill-support';
import { runHoldTraffic } from './hold-traffic';

const REDIS_DOWN_FROM_MS = 4000;
const REDIS_DOWN_UNTIL_MS = 14_000;
const TRAFFIC_MS = 20_000;

test('Redis stopped during hold traffic: no double booking, no 500', { timeout: 5 * 60_000 }, () =>
  withDrill({ api: true }, async ({ stack, deps }) => {
    // Bookings stay for the whole drill: no customer may run into their units limit before the units run out.
    const offering = await insertTestOffering(deps.db, { unitCount: 60, maxUnitsPerCustomer: 60 });
    const customers = await Promise.all(Array.from({ length: 6 }, () => createTestUser(deps)));

    const answers = await runHoldTraffic({
      apiUrl: stack.apiUrl!,
      offering,
      customers,
      lanes: 12,
      durationMs: TRAFFIC_MS,
      faults: [
        { atMs: REDIS_DOWN_FROM_MS, run: () => stack.redis.stop() },
        { atMs: REDIS_DOWN_UNTIL_MS, run: () => stack.redis.start() },
      ],
    });

    const during = answers.filter((a) => a.atMs >= REDIS_DOWN_FROM_MS && a.atMs < REDIS_DOWN_UNTIL_MS);
    console.log('answers:', tally(answers.map((a) => `${a.request} ${a.status}`)));
    console.log('while Redis was down:', tally(during.map((a) => `${a.request} ${a.status}`)));
    assert.deepEqual(
      answers.filter((a) => a.status === 500 || a.status === 0),
      [],
      'no 500 and no dropped request',
    );
    assert.ok(
      during.some((a) => a.request === 'hold' && a.status === 201),
      'holds were still granted while Redis was down',
    );
    assert.deepEqual(await findDoubleBookings(deps.db, offering.id), {
      unitsClaimedTwice: 0,
      unitsInTwoLiveHolds: 0,
      unitsInTwoConfirmedBookings: 0,
    });
    await assertBooksBalance(deps.db, { gatewayLog: stack.gatewayLogFile });
  }),
);
