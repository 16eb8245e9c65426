import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SubscriptionSnapshot } from './subscription';
import {
  bookingDetails,
  bookingSummary,
  formatInstant,
  oneTimePaymentDetails,
  paymentRefundSummary,
  paymentSummary,
  planTermsDetails,
  subscriptionDetails,
  subscriptionSummary,
  type BookingDescription,
} from './workflow-descriptions';

function snapshot(overrides: Partial<SubscriptionSnapshot> = {}): SubscriptionSnapshot {
  return {
    subscriptionId: 'sub-1',
    userId: 'user-1',
    status: 'active',
    plan: { planId: 'plan-1', code: 'pro-monthly', name: 'Pro', amount: 1999, currency: 'usd', interval: 'P1M', price: '$19.99' },
    quantity: 1,
    periodAmount: 1999,
    scheduledChange: null,
    pauseAt: null,
    pausedAt: null,
    resumesAt: null,
    refundedTotal: 0,
    discount: null,
    paymentMethod: 'pm_card_visa',
    anchorDate: '2026-11-25T00:00:00.000Z',
    trialEnd: null,
    cycle: 1,
    currentPeriodStart: '2026-11-25T00:00:00.000Z',
    currentPeriodEnd: '2026-12-25T00:00:00.000Z',
    nextBillingDate: '2026-12-25T00:00:00.000Z',
    cancelAtPeriodEnd: false,
    canceledAt: null,
    endedAt: null,
    pendingPayment: null,
    dunning: null,
    lastPayment: null,
    ...overrides,
  };
}

const dunning: NonNullable<SubscriptionSnapshot['dunning']> = {
  cycle: 2,
  failedAt: '2026-12-22T00:00:00.000Z',
  graceEndsAt: '2026-12-29T00:00:00.000Z',
  attempts: 2,
  retriesDone: 1,
  retriesTotal: 3,
  nextRetryAt: '2026-12-25T00:00:00.000Z',
  nextReminderAt: null,
  automaticRetriesStopped: false,
  lastFailureCode: 'card_declined',
  lastDecline: 'soft',
  log: [],
};

describe('formatInstant', () => {
  test('a midnight is a day; other instants name the time, to the second when it is not whole minutes', () => {
    assert.equal(formatInstant('2026-12-25T00:00:00.000Z'), '2026-12-25');
    assert.equal(formatInstant('2026-12-25T14:03:00.000Z'), '2026-12-25 14:03 UTC');
    assert.equal(formatInstant('2026-12-25T14:03:07.250Z'), '2026-12-25 14:03:07 UTC');
    assert.equal(formatInstant('2026-12-25T00:00:00.500Z'), '2026-12-25 00:00 UTC');
  });
});

describe('subscription summary and details', () => {
  test('the summary names the plan and the customer', () => {
    assert.equal(subscriptionSummary('pro-monthly', { userId: 'u-1', email: 'ada@example.com' }), 'pro-monthly · ada@example.com');
    assert.equal(subscriptionSummary('pro-monthly', { userId: 'u-1' }), 'pro-monthly · user u-1');
  });

  test('the static details state the plan’s terms', () => {
    const plan = {
      planId: 'p',
      code: 'pro-monthly',
      name: 'Pro',
      amount: 1999,
      currency: 'usd',
      interval: 'P1M',
      trialPeriod: 'P14D',
      dunning: { retryOffsets: ['P1D', 'P3D'], reminderOffsets: ['P2D'], gracePeriod: 'P7D' },
    };
    assert.equal(planTermsDetails(plan), 'Pro · $19.99 every P1M · trial P14D · retries after P1D, P3D · grace P7D');
    assert.equal(
      planTermsDetails({ ...plan, trialPeriod: null, dunning: { ...plan.dunning, retryOffsets: [] } }),
      'Pro · $19.99 every P1M · no retries · grace P7D',
    );
  });

  test('past due: the next retry of the total and the expiry', () => {
    assert.equal(
      subscriptionDetails(snapshot({ status: 'past_due', nextBillingDate: null, dunning })),
      'past_due · pro-monthly · retry 2 of 3 on 2026-12-25 · expires 2026-12-29',
    );
  });

  test('past due without automatic retries says why', () => {
    const stopped = { ...dunning, nextRetryAt: null, automaticRetriesStopped: true, lastFailureCode: 'stolen_card' };
    assert.equal(
      subscriptionDetails(snapshot({ status: 'past_due', dunning: stopped })),
      'past_due · pro-monthly · retries stopped after a hard decline (stolen_card) · expires 2026-12-29',
    );
    const exhausted = { ...dunning, nextRetryAt: null, retriesDone: 3 };
    assert.equal(
      subscriptionDetails(snapshot({ status: 'past_due', dunning: exhausted })),
      'past_due · pro-monthly · no retries left (card_declined) · expires 2026-12-29',
    );
  });

  test('a charge awaiting the customer shows until when', () => {
    const pendingPayment = { paymentId: 'p', cycle: 2, attempt: 3, since: '2026-12-25T00:00:00.000Z', expiresAt: '2026-12-26T09:30:00.000Z' };
    assert.equal(
      subscriptionDetails(snapshot({ status: 'past_due', dunning, pendingPayment })),
      'past_due · pro-monthly · payment awaiting confirmation until 2026-12-26 09:30 UTC · expires 2026-12-29',
    );
    assert.equal(
      subscriptionDetails(snapshot({ status: 'incomplete', cycle: 0, pendingPayment })),
      'incomplete · pro-monthly · payment awaiting confirmation until 2026-12-26 09:30 UTC',
    );
    assert.equal(
      subscriptionDetails(snapshot({ pendingPayment })),
      'active · pro-monthly · renewal payment awaiting confirmation until 2026-12-26 09:30 UTC',
    );
  });

  test('active, trialing and ended subscriptions', () => {
    assert.equal(subscriptionDetails(snapshot()), 'active · pro-monthly · renews 2026-12-25');
    assert.equal(subscriptionDetails(snapshot({ cancelAtPeriodEnd: true, nextBillingDate: null })), 'active · pro-monthly · ends 2026-12-25');
    assert.equal(
      subscriptionDetails(snapshot({ status: 'trialing', cycle: 0, trialEnd: '2026-12-09T00:00:00.000Z' })),
      'trialing · pro-monthly · trial ends 2026-12-09',
    );
    assert.equal(
      subscriptionDetails(snapshot({ status: 'canceled', nextBillingDate: null, endedAt: '2026-12-01T10:00:00.000Z' })),
      'canceled · pro-monthly · ended 2026-12-01 10:00 UTC',
    );
    assert.equal(
      subscriptionDetails(snapshot({ status: 'expired', nextBillingDate: null, endedAt: '2026-12-29T00:00:00.000Z' })),
      'expired · pro-monthly · ended 2026-12-29',
    );
  });

  test('a first payment under way, declined', () => {
    assert.equal(
      subscriptionDetails(snapshot({ status: 'incomplete', cycle: 0, nextBillingDate: null })),
      'incomplete · pro-monthly · first payment under way',
    );
    const lastPayment = { paymentId: 'p', cycle: 1, attempt: 1, status: 'failed' as const, at: '2026-11-25T00:00:00.000Z' };
    assert.equal(
      subscriptionDetails(snapshot({ status: 'incomplete', cycle: 0, nextBillingDate: null, endedAt: '2026-11-25T00:00:00.000Z', lastPayment })),
      'incomplete · pro-monthly · first payment declined',
    );
  });
});

describe('booking summary and details', () => {
  const booking: BookingDescription = {
    status: 'confirmed',
    failureReason: null,
    awaitingPayment: false,
    unitIds: ['a', 'b'],
    amount: 4000,
    currency: 'usd',
    charges: [{ amount: 4000, refunded: 0 }],
    offeringName: 'Hamlet',
  };

  test('the summary names what is booked and by whom', () => {
    assert.equal(bookingSummary(2, 'Hamlet', { userId: 'u', email: 'ada@example.com' }), '2 unit(s) of Hamlet · ada@example.com');
  });

  test('confirmed, with refunds', () => {
    assert.equal(bookingDetails(booking), 'confirmed · 2 unit(s) of Hamlet · $40.00');
    assert.equal(
      bookingDetails({ ...booking, charges: [{ amount: 4000, refunded: 1000 }] }),
      'confirmed · 2 unit(s) of Hamlet · $40.00 · $10.00 refunded',
    );
  });

  test('pending, failed, and before the terms are known', () => {
    assert.equal(
      bookingDetails({ ...booking, status: 'pending', awaitingPayment: true, charges: [] }),
      'pending · 2 unit(s) of Hamlet · payment awaiting confirmation',
    );
    assert.equal(bookingDetails({ ...booking, status: 'failed', failureReason: 'payment_declined', charges: [] }), 'failed · payment declined');
    assert.equal(
      bookingDetails({ ...booking, status: 'pending', unitIds: [], currency: '', amount: 0, charges: [], offeringName: undefined }),
      'pending · booking under way',
    );
  });

  test('a one-time payment: summary and details', () => {
    assert.equal(paymentSummary(1250, 'usd', 'Gift card', { userId: 'u', email: 'ada@example.com' }), '$12.50 · Gift card · ada@example.com');
    assert.equal(
      oneTimePaymentDetails({ phase: 'awaiting_confirmation', amount: 1250, currency: 'usd', failureCode: null }),
      'awaiting_confirmation · $12.50',
    );
    assert.equal(
      oneTimePaymentDetails({ phase: 'failed', amount: 1250, currency: 'usd', failureCode: 'card_declined' }),
      'failed · $12.50 · card_declined',
    );
  });

  test('a staff refund of a payment: summary', () => {
    const customer = { userId: 'u', email: 'ada@example.com' };
    assert.equal(
      paymentRefundSummary({ amount: 300, chargeAmount: 1000, currency: 'usd', description: 'Gift card' }, customer),
      'Refund of $3.00 of $10.00 · Gift card · ada@example.com',
    );
    assert.equal(
      paymentRefundSummary({ amount: 1000, chargeAmount: 1000, currency: 'usd', description: null }, { userId: 'u' }),
      'Refund of $10.00 of $10.00 · user u',
    );
  });
});
