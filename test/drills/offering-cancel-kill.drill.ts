/**
 * Drill: the business cancels an offering with 100 bookings over HTTP, and the worker is
 * SIGKILLed once while the refunds are under way, then started again. Every booking must end
 * canceled, and the gateway's own record must hold exactly 100 refunds, one per checkout charge,
 * each of the whole charge: none twice.
 *
 * What makes it hold: each booking is canceled by one cancelByBusiness update with a fixed
 * updateId, so the activity the dead worker held (heartbeat timeout 10 s) is retried into the same
 * update instead of a second one; the update's refund key is the booking workflow's
 * (`<workflowId>/business-cancel/refund-<paymentId>`), so even a refund the gateway made and the
 * workflow never heard of is the same refund when it is asked again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { and, eq, inArray } from 'drizzle-orm';
import type { AppDeps } from '../../api/app';
import { readGatewayLog, type GatewayRefundCall } from '../../bench/recording-gateway';
import { bookings, payments } from '../../db/schema';
import { offeringCancellationProgressQuery, offeringCancellationWorkflowId } from '../../workflows/offering';
import { createTestUser, requestJson, type TestUser } from '../support/api';
import { offeringBody } from '../support/booking-stack';
import { assertBooksBalance } from '../support/reconciliation';
import { waitFor } from '../support/subscription-stack';
import { withDrill } from './drill-support';

const BOOKINGS = 100;
const KILL_AFTER_REFUNDS = 15;
const BOOKING_CONCURRENCY = 20;
const UNIT_AMOUNT = 2500;

test('SIGKILL of the worker while an offering is canceled: 100 refunds in the gateway, none twice', { timeout: 10 * 60_000 }, () =>
  withDrill({ api: true, env: { DATABASE_POOL_SIZE: '40' } }, async ({ stack, deps }) => {
    const apiUrl = stack.apiUrl!;
    const gatewayLog = stack.gatewayLogFile!;
    const staff = await createTestUser(deps, { role: 'staff' });
    const created = await requestJson(`${apiUrl}/api/v1/admin/offerings`, { body: offeringBody({}, BOOKINGS), headers: staff.headers });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const offeringId: string = created.body.offering.id;
    const unitIds: string[] = created.body.offering.units.map((u: { id: string }) => u.id);

    const startedAt = Date.now();
    const bookingIds = await bookEachUnit(deps, apiUrl, offeringId, unitIds);
    console.log(`${BOOKINGS} bookings confirmed over HTTP in ${Date.now() - startedAt} ms`);

    const canceling = Date.now();
    const res = await requestJson(`${apiUrl}/api/v1/admin/offerings/${offeringId}/cancel`, {
      body: { reason: 'Venue flooded' },
      headers: staff.headers,
    });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.offering.status, 'canceled');

    await waitFor(
      async () => businessRefunds(gatewayLog).length,
      (n) => n >= KILL_AFTER_REFUNDS,
      { timeoutMs: 2 * 60_000, intervalMs: 10, what: `${KILL_AFTER_REFUNDS} refunds at the gateway` },
    );
    await stack.worker.kill();
    const refundsAtKill = new Set(businessRefunds(gatewayLog).map((r) => r.idempotencyKey)).size;
    const canceledAtKill = (await rowsOf(deps, bookingIds)).filter((b) => b.status === 'canceled').length;
    console.log(
      `worker killed ${Date.now() - canceling} ms after the cancel: ${refundsAtKill} refunds at the gateway, ${canceledAtKill} bookings canceled`,
    );
    assert.ok(refundsAtKill < BOOKINGS, 'the kill landed while refunds were still to be made');

    await sleep(1000);
    await stack.worker.start();
    await waitFor(
      async () => (await rowsOf(deps, bookingIds)).filter((b) => b.status === 'canceled').length,
      (n) => n === BOOKINGS,
      { timeoutMs: 4 * 60_000, intervalMs: 500, what: 'every booking canceled after the restart' },
    );
    const progress = await waitFor(
      () => deps.temporal.workflow.getHandle(offeringCancellationWorkflowId(offeringId)).query(offeringCancellationProgressQuery),
      (p) => p.phase === 'done',
      { timeoutMs: 60_000, intervalMs: 500, what: 'the cancellation workflow done' },
    );
    console.log(`every booking canceled ${Date.now() - canceling} ms after the cancel; progress: ${JSON.stringify(progress)}`);
    assert.deepEqual([progress.total, progress.canceled, progress.skipped, progress.failed], [BOOKINGS, BOOKINGS, 0, 0]);

    // The gateway's own record: one refund per checkout charge, of all of it, under one key.
    const charges = await deps.db
      .select({ bookingId: payments.bookingId, gatewayPaymentId: payments.gatewayPaymentId, amount: payments.amount })
      .from(payments)
      .where(and(inArray(payments.bookingId, bookingIds), eq(payments.kind, 'booking')));
    assert.equal(charges.length, BOOKINGS, 'one charge per booking');
    const refunds = businessRefunds(gatewayLog);
    const keys = new Set(refunds.map((r) => r.idempotencyKey));
    assert.equal(keys.size, BOOKINGS, `${keys.size} refunds in the gateway's record`);
    for (const charge of charges) {
      const own = refunds.filter((r) => r.gatewayPaymentId === charge.gatewayPaymentId);
      assert.equal(new Set(own.map((r) => r.idempotencyKey)).size, 1, `booking ${charge.bookingId}: refunded under ${own.length} keys`);
      assert.ok(
        own.every((r) => r.amount === charge.amount && r.status === 'succeeded'),
        `booking ${charge.bookingId}: ${JSON.stringify(own)}`,
      );
    }
    const rows = await rowsOf(deps, bookingIds);
    assert.ok(
      rows.every((b) => b.refundedAmount === UNIT_AMOUNT),
      'every booking shows its whole price refunded',
    );
    console.log(
      `refunded once each: ${keys.size} refunds, ${refunds.length} gateway calls, ${refunds.length - keys.size} repeated a key after the kill`,
    );
    await assertBooksBalance(deps.db, { gatewayLog });
  }),
);

/** One customer per unit holds and books it over HTTP, BOOKING_CONCURRENCY at a time; answers the booking ids. */
async function bookEachUnit(deps: AppDeps, apiUrl: string, offeringId: string, unitIds: string[]): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  const lane = async () => {
    while (next < unitIds.length) {
      const unitId = unitIds[next++];
      const customer: TestUser = await createTestUser(deps);
      const held = await requestJson(`${apiUrl}/api/v1/bookings/holds`, { body: { offeringId, unitIds: [unitId] }, headers: customer.headers });
      assert.equal(held.status, 201, JSON.stringify(held.body));
      const booked = await requestJson(`${apiUrl}/api/v1/bookings/create`, {
        body: { holdId: held.body.hold.id, paymentMethod: 'pm_card_visa' },
        headers: customer.headers,
      });
      assert.equal(booked.status, 201, JSON.stringify(booked.body));
      ids.push(booked.body.booking.id);
    }
  };
  await Promise.all(Array.from({ length: BOOKING_CONCURRENCY }, lane));
  return ids;
}

function businessRefunds(gatewayLog: string): GatewayRefundCall[] {
  return readGatewayLog(gatewayLog).filter((e): e is GatewayRefundCall => e.type === 'refund' && e.idempotencyKey.includes('/business-cancel/'));
}

function rowsOf(deps: AppDeps, bookingIds: string[]) {
  return deps.db
    .select({ id: bookings.id, status: bookings.status, refundedAmount: bookings.refundedAmount })
    .from(bookings)
    .where(inArray(bookings.id, bookingIds));
}
