import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Stripe from 'stripe';
import { GatewayRequestRejectedError, type ChargeRequest } from '../domain/payment';
import { loadConfig } from '../platform/config';
import { closedLoopbackPort } from '../test/support/payment-fixtures';
import {
  cancelOutcomeOfUncancelableIntent,
  chargeOutcomeFromIntent,
  chargeOutcomeFromStripeError,
  createPaymentGateway,
  PaymentStillProcessingError,
  SandboxGateway,
  StripeGateway,
} from './payment-gateway';

function chargeRequest(paymentMethod: string, idempotencyKey = `test-${randomUUID()}`): ChargeRequest {
  return {
    amount: 1999,
    currency: 'EUR',
    paymentMethod,
    idempotencyKey,
    customerRef: randomUUID(),
    description: 'gateway test',
    metadata: { paymentId: randomUUID() },
  };
}

describe('SandboxGateway', () => {
  const gateway = new SandboxGateway();

  const cases = [
    { card: 'pm_card_visa', expect: { status: 'succeeded' } },
    { card: 'pm_card_mastercard', expect: { status: 'succeeded' } },
    { card: 'pm_card_amex', expect: { status: 'succeeded' } },
    { card: 'pm_card_chargeDeclined', expect: { status: 'declined', decline: 'soft', failureCode: 'generic_decline' } },
    {
      card: 'pm_card_chargeDeclinedInsufficientFunds',
      expect: { status: 'declined', decline: 'soft', failureCode: 'insufficient_funds' },
    },
    { card: 'pm_card_chargeDeclinedStolenCard', expect: { status: 'declined', decline: 'hard', failureCode: 'stolen_card' } },
    { card: 'pm_card_chargeDeclinedLostCard', expect: { status: 'declined', decline: 'hard', failureCode: 'lost_card' } },
    { card: 'pm_card_chargeDeclinedFraudulent', expect: { status: 'declined', decline: 'hard', failureCode: 'fraudulent' } },
    { card: 'pm_card_authenticationRequired', expect: { status: 'pending', reason: 'requires_action' } },
  ] as const;

  for (const { card, expect } of cases) {
    test(`${card} answers ${expect.status}`, async () => {
      const outcome = await gateway.charge(chargeRequest(card));
      assert.deepEqual({ ...outcome, gatewayPaymentId: undefined }, { ...expect, gatewayPaymentId: undefined });
      assert.match(outcome.gatewayPaymentId ?? '', /^pi_sandbox_[0-9a-f]{24}$/);
    });
  }

  test('a token that is not a test card is a hard decline with no payment id', async () => {
    const outcome = await gateway.charge(chargeRequest('pm_1NotATestCard'));
    assert.deepEqual(outcome, {
      status: 'declined',
      gatewayPaymentId: null,
      decline: 'hard',
      failureCode: 'invalid_payment_method',
    });
  });

  test('the same idempotency key gives the same id and outcome; another key another id', async () => {
    const key = `test-${randomUUID()}`;
    const first = await gateway.charge(chargeRequest('pm_card_visa', key));
    const again = await new SandboxGateway().charge(chargeRequest('pm_card_visa', key));
    const other = await gateway.charge(chargeRequest('pm_card_visa'));
    assert.deepEqual(again, first);
    assert.notEqual(other.gatewayPaymentId, first.gatewayPaymentId);
  });

  test('refunds a sandbox payment idempotently and refuses a foreign payment id', async () => {
    const charge = await gateway.charge(chargeRequest('pm_card_visa'));
    assert.equal(charge.status, 'succeeded');
    const request = { gatewayPaymentId: charge.gatewayPaymentId, amount: 500, idempotencyKey: `refund-${randomUUID()}` };
    const refund = await gateway.refund(request);
    assert.equal(refund.status, 'succeeded');
    assert.match(refund.gatewayRefundId, /^re_sandbox_/);
    assert.deepEqual(await gateway.refund(request), refund);
    await assert.rejects(gateway.refund({ ...request, gatewayPaymentId: 'pi_elsewhere' }), GatewayRequestRejectedError);
  });

  test('cancels a pending sandbox payment, again the same, and refuses a foreign payment id', async () => {
    const charge = await gateway.charge(chargeRequest('pm_card_authenticationRequired'));
    assert.equal(charge.status, 'pending');
    const request = { gatewayPaymentId: charge.gatewayPaymentId, idempotencyKey: `cancel-${randomUUID()}` };
    assert.deepEqual(await gateway.cancel(request), { status: 'canceled' });
    assert.deepEqual(await gateway.cancel(request), { status: 'canceled' });
    await assert.rejects(gateway.cancel({ ...request, gatewayPaymentId: 'pi_elsewhere' }), GatewayRequestRejectedError);
  });
});

describe('StripeGateway against stripe-mock', () => {
  const apiUrl = process.env.STRIPE_MOCK_URL;
  assert.ok(apiUrl, 'STRIPE_MOCK_URL must point at stripe-mock');
  const gateway = new StripeGateway('sk_test_gateway', { apiUrl });

  test('a confirmed PaymentIntent comes back and is mapped', async () => {
    const outcome = await gateway.charge(chargeRequest('pm_card_visa'));
    assert.match(outcome.gatewayPaymentId ?? '', /^pi_/);
    // stripe-mock answers every create with the same canned intent: requires_payment_method,
    // which after a confirm means the attempt failed.
    assert.deepEqual(
      { ...outcome, gatewayPaymentId: undefined },
      { status: 'declined', decline: 'soft', failureCode: 'requires_payment_method', gatewayPaymentId: undefined },
    );
  });

  test('a refund comes back with its id', async () => {
    const refund = await gateway.refund({ gatewayPaymentId: 'pi_123', amount: 100, idempotencyKey: `refund-${randomUUID()}` });
    assert.match(refund.gatewayRefundId, /^re_/);
    assert.equal(refund.status, 'succeeded');
  });

  test('a cancel that Stripe accepts is canceled', async () => {
    const outcome = await gateway.cancel({ gatewayPaymentId: 'pi_123', idempotencyKey: `cancel-${randomUUID()}` });
    assert.deepEqual(outcome, { status: 'canceled' });
  });

  test('a network fault throws so the activity retries', async () => {
    const unreachable = new StripeGateway('sk_test_gateway', { apiUrl: `http://127.0.0.1:${await closedLoopbackPort()}` });
    await assert.rejects(unreachable.charge(chargeRequest('pm_card_visa')), Stripe.errors.StripeConnectionError);
    await assert.rejects(
      unreachable.refund({ gatewayPaymentId: 'pi_123', amount: 1, idempotencyKey: `refund-${randomUUID()}` }),
      Stripe.errors.StripeConnectionError,
    );
    await assert.rejects(
      unreachable.cancel({ gatewayPaymentId: 'pi_123', idempotencyKey: `cancel-${randomUUID()}` }),
      Stripe.errors.StripeConnectionError,
    );
  });
});

describe('Stripe answer mapping', () => {
  const intent = (fields: Partial<Stripe.PaymentIntent>) => ({ id: 'pi_map', last_payment_error: null, ...fields }) as Stripe.PaymentIntent;

  test('maps PaymentIntent statuses', () => {
    assert.deepEqual(chargeOutcomeFromIntent(intent({ status: 'succeeded' })), {
      status: 'succeeded',
      gatewayPaymentId: 'pi_map',
    });
    assert.deepEqual(chargeOutcomeFromIntent(intent({ status: 'processing' })), {
      status: 'pending',
      gatewayPaymentId: 'pi_map',
      reason: 'processing',
    });
    assert.deepEqual(chargeOutcomeFromIntent(intent({ status: 'requires_action' })), {
      status: 'pending',
      gatewayPaymentId: 'pi_map',
      reason: 'requires_action',
    });
    const failed = intent({
      status: 'requires_payment_method',
      last_payment_error: { type: 'card_error', code: 'card_declined', decline_code: 'lost_card' },
    });
    assert.deepEqual(chargeOutcomeFromIntent(failed), {
      status: 'declined',
      gatewayPaymentId: 'pi_map',
      decline: 'hard',
      failureCode: 'lost_card',
    });
  });

  test('an intent Stripe would not cancel: succeeded and canceled are answers, processing is retried', () => {
    assert.deepEqual(cancelOutcomeOfUncancelableIntent(intent({ status: 'succeeded' })), { status: 'succeeded' });
    assert.deepEqual(cancelOutcomeOfUncancelableIntent(intent({ status: 'canceled' })), { status: 'canceled' });
    assert.throws(() => cancelOutcomeOfUncancelableIntent(intent({ status: 'processing' })), PaymentStillProcessingError);
    // Its state moved on since the refusal (a processing attempt failed): cancel it after all.
    assert.equal(cancelOutcomeOfUncancelableIntent(intent({ status: 'requires_payment_method' })), null);
  });

  test('a card error is a decline classified by its decline code', () => {
    const soft = new Stripe.errors.StripeCardError({
      type: 'card_error',
      code: 'card_declined',
      decline_code: 'insufficient_funds',
      payment_intent: intent({ status: 'requires_payment_method' }),
    });
    assert.deepEqual(chargeOutcomeFromStripeError(soft), {
      status: 'declined',
      gatewayPaymentId: 'pi_map',
      decline: 'soft',
      failureCode: 'insufficient_funds',
    });
    const stolen = new Stripe.errors.StripeCardError({ type: 'card_error', code: 'card_declined', decline_code: 'stolen_card' });
    assert.equal(chargeOutcomeFromStripeError(stolen).decline, 'hard');
  });

  test('an unknown payment method is a hard decline; faults are re-thrown', () => {
    const missing = new Stripe.errors.StripeInvalidRequestError({
      type: 'invalid_request_error',
      code: 'resource_missing',
      param: 'payment_method',
      statusCode: 400,
    });
    assert.deepEqual(chargeOutcomeFromStripeError(missing), {
      status: 'declined',
      gatewayPaymentId: null,
      decline: 'hard',
      failureCode: 'invalid_payment_method',
    });
    const busy = new Stripe.errors.StripeInvalidRequestError({
      type: 'invalid_request_error',
      code: 'idempotency_key_in_use',
      statusCode: 409,
    });
    assert.throws(() => chargeOutcomeFromStripeError(busy), Stripe.errors.StripeInvalidRequestError);
    const outage = new Stripe.errors.StripeAPIError({ type: 'api_error', statusCode: 500 });
    assert.throws(() => chargeOutcomeFromStripeError(outage), Stripe.errors.StripeAPIError);
    const throttled = new Stripe.errors.StripeRateLimitError({ type: 'rate_limit_error', statusCode: 429 });
    assert.throws(() => chargeOutcomeFromStripeError(throttled), Stripe.errors.StripeRateLimitError);
  });
});

describe('createPaymentGateway', () => {
  const base = { ...process.env, STRIPE_SECRET_KEY: '' };

  test('uses the sandbox without a secret key and Stripe with one', () => {
    assert.equal(createPaymentGateway(loadConfig(base)).name, 'sandbox');
    const config = loadConfig({ ...base, STRIPE_SECRET_KEY: 'sk_test_x', STRIPE_API_URL: process.env.STRIPE_MOCK_URL });
    assert.equal(createPaymentGateway(config).name, 'stripe');
  });
});
