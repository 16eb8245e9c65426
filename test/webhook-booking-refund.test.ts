/**
 * A refund made outside the booking's workflow (in Stripe's dashboard) reaches it through the
 * `charge.refunded` webhook, and a later cancel refunds only what is left of the charge.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { payments } from '../db/schema';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { createBooking, createOffering, placeHold, startBookingStack, type BookingStack } from './support/booking-stack';
import { deliverWebhook, stripeEvent } from './support/subscription-stack';

let stack: BookingStack;
let alice: TestUser;

before(async () => {
  stack = await startBookingStack();
  alice = await createTestUser(stack.deps);
});

after(() => stack?.close());

function deliver(event: object) {
  return deliverWebhook(stack, event);
}

test('after a dashboard refund of part of the charge, a cancel refunds only what is left and succeeds', async () => {
  const offering = await createOffering(stack, {}, 4);
  const held = await placeHold(stack, alice, offering.id, offering.unitIds.slice(0, 2));
  assert.equal(held.status, 201);
  const booked = await createBooking(stack, alice, held.body.hold.id);
  assert.equal(booked.status, 201, JSON.stringify(booked.body));
  const bookingId: string = booked.body.booking.id;
  const [charge] = await stack.deps.db
    .select()
    .from(payments)
    .where(and(eq(payments.bookingId, bookingId), eq(payments.kind, 'booking')));
  assert.deepEqual([charge.amount, charge.status], [5000, 'succeeded']);

  const refunded = stripeEvent('charge.refunded', {
    id: `ch_${randomUUID()}`,
    object: 'charge',
    payment_intent: charge.gatewayPaymentId,
    amount: 5000,
    currency: 'usd',
    amount_refunded: 2000,
  });
  assert.deepEqual((await deliver(refunded)).body, { received: true, duplicate: false });

  // Free cancellation: the policy gives back all 5000, of which 3000 are left to refund.
  const canceled = await requestJson(`${stack.url}/api/v1/bookings/cancel`, { body: { bookingId }, headers: alice.headers });
  assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
  assert.equal(canceled.body.booking.status, 'canceled');
  const refunds = await stack.deps.db.select().from(payments).where(eq(payments.refundOf, charge.id));
  assert.deepEqual(
    refunds.map((r) => [r.amount, r.status]),
    [[3000, 'succeeded']],
  );
  const [after] = await stack.deps.db.select().from(payments).where(eq(payments.id, charge.id));
  assert.deepEqual([after.refundedAmount, after.status], [5000, 'refunded']);
});
