/**
 * The Temporal UI as the support console, on the dev server in real time: custom search
 * attributes set at start and kept current, readable summaries and details, a `state` query on
 * every workflow, and a link from every API object to its workflow.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { subscriptionDetails } from '../domain/workflow-descriptions';
import { createTestUser, requestJson, type TestUser } from './support/api';
import { createBooking, createOffering, placeHold, startBookingStack, type BookingStack } from './support/booking-stack';
import { activeSubscription, createDunningPlan, createMonthlyPlan, pastDueSubscription, VISA, waitForListing } from './support/staff-fixtures';
import { getSubscription, startSubscriptionStack, waitFor, type SubscriptionStack } from './support/subscription-stack';

/** What `setCurrentDetails` last said, as the UI reads it (the SDK's built-in metadata query). */
async function currentDetails(client: Client, workflowId: string): Promise<string | null | undefined> {
  const metadata = await client.workflow.getHandle(workflowId).query<{ currentDetails?: string | null }>('__temporal_workflow_metadata');
  return metadata.currentDetails;
}

describe('the Temporal UI as the support console', () => {
  let subscriptions: SubscriptionStack;
  let bookings: BookingStack;
  let customer: TestUser;
  let dunningPlan: { id: string; code: string };
  let monthlyPlan: { id: string; code: string };
  let pastDue: Record<string, any>;
  let active: Record<string, any>;

  before(async () => {
    [subscriptions, bookings] = await Promise.all([startSubscriptionStack(), startBookingStack()]);
    customer = await createTestUser(subscriptions.deps);
    [dunningPlan, monthlyPlan] = await Promise.all([createDunningPlan(subscriptions), createMonthlyPlan(subscriptions)]);
    [pastDue, active] = await Promise.all([
      pastDueSubscription(subscriptions, customer, dunningPlan.id),
      activeSubscription(subscriptions, customer, monthlyPlan.id),
    ]);
  });

  after(async () => {
    await Promise.all([subscriptions?.close(), bookings?.close()]);
  });

  const uiUrl = (workflowId: string) =>
    `${subscriptions.deps.config.TEMPORAL_UI_URL}/namespaces/${subscriptions.deps.config.TEMPORAL_NAMESPACE}/workflows/${encodeURIComponent(workflowId)}`;

  describe('subscriptions', () => {
    test('SubscriptionStatus="past_due" finds exactly the customer’s subscription in dunning', async () => {
      const client = subscriptions.deps.temporal;
      const userId = customer.user.id;
      await waitForListing(client, `SubscriptionStatus="past_due" AND CustomerId="${userId}"`, [pastDue.workflowId]);
      await waitForListing(client, `SubscriptionStatus="active" AND CustomerId="${userId}"`, [active.workflowId]);
      await waitForListing(client, `CustomerEmail="${customer.user.email}"`, [pastDue.workflowId, active.workflowId]);
      await waitForListing(client, `PlanCode="${dunningPlan.code}"`, [pastDue.workflowId]);
    });

    test('the status follows the workflow to its end', async () => {
      const user = await createTestUser(subscriptions.deps);
      const subscription = await activeSubscription(subscriptions, user, monthlyPlan.id);
      const canceled = await requestJson(`${subscriptions.url}/api/v1/subscriptions/cancel`, {
        body: { subscriptionId: subscription.id, atPeriodEnd: false },
        headers: user.headers,
      });
      assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
      await waitForListing(subscriptions.deps.temporal, `SubscriptionStatus="canceled" AND CustomerId="${user.user.id}"`, [subscription.workflowId]);
    });

    test('a summary names plan and customer, static details the terms; the details line says what comes next', async () => {
      const client = subscriptions.deps.temporal;
      const description = await client.workflow.getHandle(pastDue.workflowId).describe();
      assert.equal(await description.staticSummary(), `${dunningPlan.code} · ${customer.user.email}`);
      assert.equal(await description.staticDetails(), 'Quick · $5.00 every PT4S · retries after PT50S · grace PT60S');

      const details = await currentDetails(client, pastDue.workflowId);
      const state = await client.workflow.getHandle(pastDue.workflowId).query('state');
      assert.equal(details, subscriptionDetails(state as Parameters<typeof subscriptionDetails>[0]));
      assert.match(
        details,
        new RegExp(`^past_due · ${dunningPlan.code} · retry 1 of 1 on \\d{4}-\\d\\d-\\d\\d .+ UTC · expires \\d{4}-\\d\\d-\\d\\d .+ UTC$`),
      );
      assert.match((await currentDetails(client, active.workflowId))!, new RegExp(`^active · ${monthlyPlan.code} · renews `));
    });
  });

  describe('bookings and holds', () => {
    test('OfferingId and CustomerId from the start; BookingStatus and details follow the booking', async () => {
      const client = bookings.deps.temporal;
      const user = await createTestUser(bookings.deps);
      const offering = await createOffering(bookings);
      const held = await placeHold(bookings, user, offering.id, offering.unitIds.slice(0, 2));
      assert.equal(held.status, 201, JSON.stringify(held.body));
      const booked = await createBooking(bookings, user, held.body.hold.id);
      assert.equal(booked.status, 201, JSON.stringify(booked.body));
      const { booking } = booked.body;
      const { hold } = held.body;

      await waitForListing(client, `OfferingId="${offering.id}" AND CustomerId="${user.user.id}"`, [hold.workflowId, booking.workflowId]);
      await waitForListing(client, `OfferingId="${offering.id}" AND BookingStatus="confirmed"`, [booking.workflowId]);
      const description = await client.workflow.getHandle(booking.workflowId).describe();
      assert.equal(await description.staticSummary(), `2 unit(s) of Evening show · ${user.user.email}`);
      assert.equal(await currentDetails(client, booking.workflowId), 'confirmed · 2 unit(s) of Evening show · $50.00');

      const canceled = await requestJson(`${bookings.url}/api/v1/bookings/cancel`, { body: { bookingId: booking.id }, headers: user.headers });
      assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
      await waitForListing(client, `OfferingId="${offering.id}" AND BookingStatus="canceled"`, [booking.workflowId]);
      await waitForListing(client, `CustomerEmail="${user.user.email}" AND ExecutionStatus="Completed"`, [hold.workflowId, booking.workflowId]);
      assert.equal(await currentDetails(client, booking.workflowId), 'canceled · 2 unit(s) of Evening show · $50.00 · $50.00 refunded');
    });
  });

  test('every workflow answers a state query', async () => {
    const billing = subscriptions.deps.temporal;
    const subscription = await billing.workflow.getHandle(pastDue.workflowId).query<{ status: string; dunning: { retriesTotal: number } }>('state');
    assert.equal(subscription.status, 'past_due');
    assert.equal(subscription.dunning.retriesTotal, 1);

    const paid = await requestJson(`${subscriptions.url}/api/v1/payments/process`, {
      body: { amount: 1250, currency: 'usd', paymentMethod: VISA, description: 'Gift card' },
      headers: customer.headers,
    });
    assert.equal(paid.status, 201, JSON.stringify(paid.body));
    const payment = await waitFor(
      () => billing.workflow.getHandle(paid.body.payment.workflowId).query<Record<string, unknown>>('state'),
      (state) => state.phase === 'succeeded',
      { what: 'the one-time payment succeeded' },
    );
    assert.deepEqual(
      { ...payment, gatewayPaymentId: undefined },
      {
        paymentId: paid.body.payment.id,
        phase: 'succeeded',
        amount: 1250,
        currency: 'usd',
        description: 'Gift card',
        gatewayPaymentId: undefined,
        failureCode: null,
      },
    );

    const user = await createTestUser(bookings.deps);
    const offering = await createOffering(bookings);
    const held = await placeHold(bookings, user, offering.id, offering.unitIds.slice(0, 1));
    const hold = await bookings.deps.temporal.workflow.getHandle(held.body.hold.workflowId).query<Record<string, unknown>>('state');
    assert.equal(hold.phase, 'active');
    const booked = await createBooking(bookings, user, held.body.hold.id);
    const booking = await bookings.deps.temporal.workflow.getHandle(booked.body.booking.workflowId).query<Record<string, unknown>>('state');
    assert.equal(booking.status, 'confirmed');
  });

  test('every API object carries its workflowId and a link to it in the Temporal UI', async () => {
    assert.equal(pastDue.workflowId, `subscription-${pastDue.id}`);
    assert.equal(pastDue.temporalUiUrl, uiUrl(pastDue.workflowId));
    const detail = await getSubscription(subscriptions, customer, pastDue.id);
    assert.ok(detail.body.payments.length >= 2);
    for (const payment of detail.body.payments) {
      assert.equal(payment.workflowId, pastDue.workflowId);
      assert.equal(payment.temporalUiUrl, uiUrl(pastDue.workflowId));
    }

    const history = await requestJson(`${subscriptions.url}/api/v1/payments/history?limit=200`, { headers: customer.headers });
    const oneTime = history.body.payments.find((p: { kind: string }) => p.kind === 'one_time');
    assert.equal(oneTime.workflowId, `payment-${oneTime.id}`);
    assert.equal(oneTime.temporalUiUrl, uiUrl(oneTime.workflowId));

    const user = await createTestUser(bookings.deps);
    const offering = await createOffering(bookings);
    const held = await placeHold(bookings, user, offering.id, offering.unitIds.slice(0, 1));
    assert.equal(held.body.hold.workflowId, `hold-${held.body.hold.id}`);
    assert.equal(held.body.hold.temporalUiUrl, uiUrl(held.body.hold.workflowId));
    const booked = await createBooking(bookings, user, held.body.hold.id);
    const { booking } = booked.body;
    assert.equal(booking.workflowId, `booking-${booking.id}`);
    assert.equal(booking.temporalUiUrl, uiUrl(booking.workflowId));
    const bookingDetail = await requestJson(`${bookings.url}/api/v1/bookings/${booking.id}`, { headers: user.headers });
    assert.deepEqual(
      bookingDetail.body.payments.map((p: { workflowId: string; temporalUiUrl: string }) => [p.workflowId, p.temporalUiUrl]),
      [[booking.workflowId, uiUrl(booking.workflowId)]],
    );

    // The link opens the Web UI (a page of its single-page app).
    const page = await fetch(pastDue.temporalUiUrl);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  });
});
