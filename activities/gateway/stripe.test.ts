import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Stripe from 'stripe';
import { type ChargeRequest, type ChargeSession } from '../../domain/payment';
import { closedLoopbackPort } from '../../test/support/payment-fixtures';
import { StripeGateway } from './stripe';
import {
  cancelOutcomeOfUncancelableIntent,
  chargeOutcomeFromIntent,
  chargeOutcomeFromStripeError,
  nextActionOf,
  PaymentStillProcessingError,
  savedCardOf,
} from './stripe-answers';

function chargeRequest(paymentMethod: string, session: ChargeSession = 'off_session'): ChargeRequest {
  return {
    amount: 1999,
    currency: 'EUR',
    customerId: 'cus_gateway_test',
    paymentMethod,
    session,
    idempotencyKey: `test-${randomUUID()}`,
    customerRef: randomUUID(),
    description: 'gateway test',
    metadata: { payment_id: randomUUID() },
  };
}

// stripe-mock validates every request against Stripe's OpenAPI description (an unknown or
// misspelt parameter is a 400, which the gateway would turn into a rejection or a decline) and
// answers with canned objects: a request that comes back mapped is one Stripe's API accepts.
describe('StripeGateway against stripe-mock', () => {
  const apiUrl = process.env.STRIPE_MOCK_URL;
  assert.ok(apiUrl, 'STRIPE_MOCK_URL must point at stripe-mock');
  const gateway = new StripeGateway('sk_test_gateway', { apiUrl });

  test('creates a customer', async () => {
    const { customerId } = await gateway.createCustomer({
      userId: randomUUID(),
      email: 'payer@example.test',
      name: 'Test Payer',
      idempotencyKey: `customer/${randomUUID()}`,
    });
    assert.match(customerId, /^cus_/);
  });

  test('creates a setup intent for off-session use with its client secret', async () => {
    const intent = await gateway.createSetupIntent({ customerId: 'cus_gateway_test', idempotencyKey: `setup-${randomUUID()}` });
    assert.match(intent.id, /^seti_/);
    assert.match(intent.clientSecret, /^seti_.+_secret_/);
    assert.equal(typeof intent.status, 'string');
  });

  test('attaches, retrieves and detaches a payment method as a saved card', async () => {
    const attached = await gateway.attachPaymentMethod({ customerId: 'cus_gateway_test', paymentMethod: 'pm_card_visa' });
    assert.match(attached.id, /^pm_/);
    assert.equal(typeof attached.brand, 'string');
    assert.match(attached.last4, /^\d{4}$/);
    assert.ok(attached.expMonth >= 1 && attached.expMonth <= 12);
    assert.ok(attached.expYear > 2000);
    const retrieved = await gateway.retrievePaymentMethod(attached.id);
    assert.equal(retrieved.id, attached.id);
    await gateway.detachPaymentMethod({ paymentMethod: attached.id });
  });

  for (const session of ['on_session', 'off_session'] as const) {
    test(`a confirmed ${session} PaymentIntent is accepted and mapped`, async () => {
      const outcome = await gateway.charge(chargeRequest('pm_card_visa', session));
      assert.match(outcome.gatewayPaymentId ?? '', /^pi_/);
      // stripe-mock answers every create with the same canned intent: requires_payment_method,
      // which after a confirm means the attempt failed. A refused request would be invalid_request.
      assert.deepEqual(
        { ...outcome, gatewayPaymentId: undefined },
        { status: 'declined', decline: 'soft', failureCode: 'requires_payment_method', gatewayPaymentId: undefined },
      );
    });
  }

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
      unreachable.createCustomer({ userId: 'u', email: 'e@example.test', name: 'n', idempotencyKey: 'k' }),
      Stripe.errors.StripeConnectionError,
    );
    await assert.rejects(unreachable.attachPaymentMethod({ customerId: 'cus_1', paymentMethod: 'pm_1' }), Stripe.errors.StripeConnectionError);
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
  const intent = (fields: Partial<Stripe.PaymentIntent>) =>
    ({ id: 'pi_map', client_secret: 'pi_map_secret_x', next_action: null, last_payment_error: null, ...fields }) as Stripe.PaymentIntent;

  test('maps PaymentIntent statuses', () => {
    assert.deepEqual(chargeOutcomeFromIntent(intent({ status: 'succeeded' })), { status: 'succeeded', gatewayPaymentId: 'pi_map' });
    assert.deepEqual(chargeOutcomeFromIntent(intent({ status: 'processing' })), {
      status: 'pending',
      gatewayPaymentId: 'pi_map',
      reason: 'processing',
      nextAction: null,
    });
    const failed = intent({
      status: 'requires_payment_method',
      last_payment_error: { type: 'card_error', code: 'card_declined', decline_code: 'lost_card' },
    });
    assert.deepEqual(chargeOutcomeFromIntent(failed), { status: 'declined', gatewayPaymentId: 'pi_map', decline: 'hard', failureCode: 'lost_card' });
  });

  test('an intent awaiting the customer carries what their app must do', () => {
    const sdk = intent({ status: 'requires_action', next_action: { type: 'use_stripe_sdk', use_stripe_sdk: {} } });
    assert.deepEqual(chargeOutcomeFromIntent(sdk), {
      status: 'pending',
      gatewayPaymentId: 'pi_map',
      reason: 'requires_action',
      nextAction: { type: 'use_stripe_sdk', clientSecret: 'pi_map_secret_x' },
    });
    const redirect = intent({
      status: 'requires_action',
      next_action: { type: 'redirect_to_url', redirect_to_url: { url: 'https://hooks.stripe.com/3d_secure/x', return_url: null } },
    });
    assert.deepEqual(nextActionOf(redirect), {
      type: 'redirect_to_url',
      clientSecret: 'pi_map_secret_x',
      redirectUrl: 'https://hooks.stripe.com/3d_secure/x',
    });
    assert.equal(nextActionOf(intent({ client_secret: null })), null);
  });

  test('an off-session charge that needs authentication is pending on the same intent, not a decline', () => {
    const error = new Stripe.errors.StripeCardError({
      type: 'card_error',
      code: 'authentication_required',
      decline_code: 'authentication_required',
      payment_intent: intent({ status: 'requires_payment_method' }),
    });
    assert.deepEqual(chargeOutcomeFromStripeError(error), {
      status: 'pending',
      gatewayPaymentId: 'pi_map',
      reason: 'requires_action',
      nextAction: { type: 'use_stripe_sdk', clientSecret: 'pi_map_secret_x' },
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
    assert.equal((chargeOutcomeFromStripeError(stolen) as { decline: string }).decline, 'hard');
  });

  test('an unknown or used-up payment method is a hard decline; faults are re-thrown', () => {
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
    const usedUp = new Stripe.errors.StripeInvalidRequestError({
      type: 'invalid_request_error',
      code: 'payment_method_unexpected_state',
      param: 'payment_method',
      statusCode: 400,
    });
    assert.deepEqual(chargeOutcomeFromStripeError(usedUp), {
      status: 'declined',
      gatewayPaymentId: null,
      decline: 'hard',
      failureCode: 'payment_method_unexpected_state',
    });
    const busy = new Stripe.errors.StripeInvalidRequestError({ type: 'invalid_request_error', code: 'idempotency_key_in_use', statusCode: 409 });
    assert.throws(() => chargeOutcomeFromStripeError(busy), Stripe.errors.StripeInvalidRequestError);
    const outage = new Stripe.errors.StripeAPIError({ type: 'api_error', statusCode: 500 });
    assert.throws(() => chargeOutcomeFromStripeError(outage), Stripe.errors.StripeAPIError);
    const throttled = new Stripe.errors.StripeRateLimitError({ type: 'rate_limit_error', statusCode: 429 });
    assert.throws(() => chargeOutcomeFromStripeError(throttled), Stripe.errors.StripeRateLimitError);
  });

  test('a payment method is a saved card with its customer; another type is not', () => {
    const method = {
      id: 'pm_map',
      type: 'card',
      customer: 'cus_map',
      card: { brand: 'visa', last4: '4242', exp_month: 12, exp_year: 2034 },
    } as Stripe.PaymentMethod;
    assert.deepEqual(savedCardOf(method), { id: 'pm_map', brand: 'visa', last4: '4242', expMonth: 12, expYear: 2034, customerId: 'cus_map' });
    assert.equal(savedCardOf({ id: 'pm_sepa', type: 'sepa_debit', customer: null } as Stripe.PaymentMethod), null);
  });
});
