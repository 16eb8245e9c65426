import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eq } from 'drizzle-orm';
import { connectDatabase, type DatabaseHandle } from '../../db/client';
import { sandboxIntents, sandboxPaymentMethods } from '../../db/schema';
import { GatewayRequestRejectedError, type ChargeOutcome, type ChargeRequest, type ChargeSession } from '../../domain/payment';
import { createPaymentGateway, SandboxGateway, SandboxIntentStateError } from '.';
import { sandboxId } from './sandbox-intents';

let handle: DatabaseHandle;
let gateway: SandboxGateway;

before(() => {
  const url = process.env.DATABASE_URL;
  assert.ok(url, 'DATABASE_URL must be set (the test runner migrates it)');
  handle = connectDatabase(url, { max: 8 });
  gateway = new SandboxGateway(handle.db);
});

after(() => handle?.close());

async function newCustomer(): Promise<string> {
  const userId = randomUUID();
  const { customerId } = await gateway.createCustomer({
    userId,
    email: `${userId}@example.test`,
    name: 'Test Payer',
    idempotencyKey: `customer/${userId}`,
  });
  return customerId;
}

function chargeRequest(
  customerId: string,
  paymentMethod: string,
  session: ChargeSession = 'off_session',
  idempotencyKey = `test-${randomUUID()}`,
): ChargeRequest {
  return {
    amount: 1999,
    currency: 'EUR',
    customerId,
    paymentMethod,
    session,
    idempotencyKey,
    customerRef: randomUUID(),
    description: 'sandbox test',
    metadata: { payment_id: randomUUID() },
  };
}

/** The payment method a charge used (a bare token becomes one of its own). */
async function methodOf(outcome: ChargeOutcome): Promise<typeof sandboxPaymentMethods.$inferSelect> {
  const [intent] = await handle.db.select().from(sandboxIntents).where(eq(sandboxIntents.id, outcome.gatewayPaymentId!));
  const [method] = await handle.db.select().from(sandboxPaymentMethods).where(eq(sandboxPaymentMethods.id, intent.paymentMethodId!));
  return method;
}

describe('SandboxGateway customers and saved cards', () => {
  test('the same idempotency key is the same customer', async () => {
    const request = { userId: randomUUID(), email: 'same@example.test', name: 'Same', idempotencyKey: `customer/${randomUUID()}` };
    const [first, again] = await Promise.all([gateway.createCustomer(request), gateway.createCustomer(request)]);
    assert.match(first.customerId, /^cus_sandbox_[0-9A-Za-z]{24}$/);
    assert.equal(again.customerId, first.customerId);
    assert.notEqual(await newCustomer(), first.customerId);
  });

  test('a token attached becomes a new payment method with its card; attaching it again changes nothing', async () => {
    const customerId = await newCustomer();
    const visa = await gateway.attachPaymentMethod({ customerId, paymentMethod: 'pm_card_visa' });
    assert.match(visa.id, /^pm_sandbox_[0-9A-Za-z]{24}$/);
    assert.deepEqual({ ...visa, id: undefined }, { id: undefined, brand: 'visa', last4: '4242', expMonth: 12, expYear: 2034, customerId });
    const again = await gateway.attachPaymentMethod({ customerId, paymentMethod: 'pm_card_visa' });
    assert.notEqual(again.id, visa.id, 'each use of a token is a new payment method');
    assert.deepEqual(await gateway.attachPaymentMethod({ customerId, paymentMethod: visa.id }), visa);
    assert.deepEqual(await gateway.retrievePaymentMethod(visa.id), visa);
    const amex = await gateway.attachPaymentMethod({ customerId, paymentMethod: 'pm_card_amex' });
    assert.deepEqual([amex.brand, amex.last4], ['amex', '8431']);
  });

  test("another customer's, a detached or an unknown payment method is refused", async () => {
    const owner = await newCustomer();
    const other = await newCustomer();
    const card = await gateway.attachPaymentMethod({ customerId: owner, paymentMethod: 'pm_card_mastercard' });
    await assert.rejects(gateway.attachPaymentMethod({ customerId: other, paymentMethod: card.id }), {
      name: 'GatewayRequestRejectedError',
      code: 'payment_method_unexpected_state',
    });
    await gateway.detachPaymentMethod({ paymentMethod: card.id });
    await gateway.detachPaymentMethod({ paymentMethod: card.id });
    assert.equal((await gateway.retrievePaymentMethod(card.id)).customerId, null);
    await assert.rejects(gateway.attachPaymentMethod({ customerId: owner, paymentMethod: card.id }), { code: 'payment_method_unexpected_state' });
    for (const unknown of ['pm_sandbox_000000000000000000000000', 'pm_1NotATestCard']) {
      await assert.rejects(gateway.attachPaymentMethod({ customerId: owner, paymentMethod: unknown }), { code: 'resource_missing' });
      await assert.rejects(gateway.retrievePaymentMethod(unknown), GatewayRequestRejectedError);
    }
    await assert.rejects(gateway.attachPaymentMethod({ customerId: 'cus_sandbox_nobody', paymentMethod: 'pm_card_visa' }), {
      code: 'resource_missing',
    });
  });

  test('a setup intent has a client secret, and its completion saves the card and is told as setup_intent.succeeded', async () => {
    const customerId = await newCustomer();
    const request = { customerId, idempotencyKey: `setup-${randomUUID()}` };
    const intent = await gateway.createSetupIntent(request);
    assert.match(intent.id, /^seti_sandbox_/);
    assert.ok(intent.clientSecret.startsWith(`${intent.id}_secret_`));
    assert.equal(intent.status, 'requires_payment_method');
    assert.deepEqual(await gateway.createSetupIntent(request), intent);
    const event = await gateway.completeSetupIntent(intent.id, 'pm_card_visa');
    assert.equal(event.type, 'setup_intent.succeeded');
    const object = event.data.object;
    assert.equal(object.status, 'succeeded');
    assert.equal((await gateway.retrievePaymentMethod(object.payment_method as string)).customerId, customerId);
    await assert.rejects(gateway.completeSetupIntent(intent.id, 'pm_card_visa'), SandboxIntentStateError);
  });
});

describe('SandboxGateway charges', () => {
  const cases = [
    { card: 'pm_card_visa', expect: { status: 'succeeded' } },
    { card: 'pm_card_mastercard', expect: { status: 'succeeded' } },
    { card: 'pm_card_chargeDeclined', expect: { status: 'declined', decline: 'soft', failureCode: 'generic_decline' } },
    { card: 'pm_card_chargeDeclinedInsufficientFunds', expect: { status: 'declined', decline: 'soft', failureCode: 'insufficient_funds' } },
    { card: 'pm_card_chargeDeclinedStolenCard', expect: { status: 'declined', decline: 'hard', failureCode: 'stolen_card' } },
    { card: 'pm_card_chargeDeclinedFraudulent', expect: { status: 'declined', decline: 'hard', failureCode: 'fraudulent' } },
  ] as const;

  for (const { card, expect } of cases) {
    test(`${card} answers ${expect.status}`, async () => {
      const outcome = await gateway.charge(chargeRequest(await newCustomer(), card));
      assert.deepEqual({ ...outcome, gatewayPaymentId: undefined }, { ...expect, gatewayPaymentId: undefined });
      assert.match(outcome.gatewayPaymentId ?? '', /^pi_sandbox_[0-9A-Za-z]{24}$/);
    });
  }

  test('a string that is no test token nor sandbox method is a hard decline with no payment id', async () => {
    const outcome = await gateway.charge(chargeRequest(await newCustomer(), 'pm_1NotATestCard'));
    assert.deepEqual(outcome, { status: 'declined', gatewayPaymentId: null, decline: 'hard', failureCode: 'invalid_payment_method' });
  });

  test('a method attached to no customer is charged once; the second charge is refused as Stripe refuses it', async () => {
    const customerId = await newCustomer();
    const first = await gateway.charge(chargeRequest(customerId, 'pm_card_visa'));
    assert.equal(first.status, 'succeeded');
    const method = await methodOf(first);
    assert.deepEqual([method.customerId, method.chargesWithoutCustomer, method.token], [null, 1, 'pm_card_visa']);
    const second = await gateway.charge(chargeRequest(customerId, method.id));
    assert.deepEqual(second, { status: 'declined', gatewayPaymentId: null, decline: 'hard', failureCode: 'payment_method_unexpected_state' });
  });

  test('an on-session charge that succeeds saves its method to the customer, which may then be charged off session', async () => {
    const customerId = await newCustomer();
    const first = await gateway.charge(chargeRequest(customerId, 'pm_card_visa', 'on_session'));
    const method = await methodOf(first);
    assert.equal(method.customerId, customerId);
    assert.equal((await gateway.charge(chargeRequest(customerId, method.id))).status, 'succeeded');
    assert.equal((await gateway.charge(chargeRequest(customerId, method.id))).status, 'succeeded');
  });

  test("a detached method and another customer's method cannot be charged", async () => {
    const owner = await newCustomer();
    const card = await gateway.attachPaymentMethod({ customerId: owner, paymentMethod: 'pm_card_visa' });
    const stranger = await gateway.charge(chargeRequest(await newCustomer(), card.id));
    assert.deepEqual(stranger, { status: 'declined', gatewayPaymentId: null, decline: 'hard', failureCode: 'invalid_request' });
    assert.equal((await gateway.charge(chargeRequest(owner, card.id))).status, 'succeeded');
    await gateway.detachPaymentMethod({ paymentMethod: card.id });
    const detached = await gateway.charge(chargeRequest(owner, card.id));
    assert.deepEqual(detached, { status: 'declined', gatewayPaymentId: null, decline: 'hard', failureCode: 'payment_method_unexpected_state' });
  });

  test('concurrent charges with one key are one intent and one answer', async () => {
    const customerId = await newCustomer();
    const key = `test-${randomUUID()}`;
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, () => gateway.charge(chargeRequest(customerId, 'pm_card_visa', 'off_session', key))),
    );
    for (const outcome of outcomes) assert.deepEqual(outcome, outcomes[0]);
    assert.equal(outcomes[0].status, 'succeeded');
    const intents = await handle.db.select().from(sandboxIntents).where(eq(sandboxIntents.idempotencyKey, key));
    assert.equal(intents.length, 1);
    const method = await methodOf(outcomes[0]);
    assert.equal(method.chargesWithoutCustomer, 1, 'the method was charged once');
    const other = await gateway.charge(chargeRequest(customerId, 'pm_card_visa'));
    assert.notEqual(other.gatewayPaymentId, outcomes[0].gatewayPaymentId);
  });

  for (const session of ['on_session', 'off_session'] as const) {
    test(`a card that needs authentication is pending with a next action (${session})`, async () => {
      const outcome = await gateway.charge(chargeRequest(await newCustomer(), 'pm_card_authenticationRequired', session));
      assert.equal(outcome.status, 'pending');
      assert.ok(outcome.status === 'pending');
      assert.equal(outcome.reason, 'requires_action');
      assert.equal(outcome.nextAction?.type, 'use_stripe_sdk');
      assert.ok(outcome.nextAction?.clientSecret.startsWith(`${outcome.gatewayPaymentId}_secret_`));
    });
  }
});

describe('SandboxGateway authentication, refunds and cancels', () => {
  test('a completed authentication succeeds the intent, saves an on-session card and is told as payment_intent.succeeded', async () => {
    const customerId = await newCustomer();
    const request = chargeRequest(customerId, 'pm_card_threeDSecure2Required', 'on_session');
    const pending = await gateway.charge(request);
    const event = await gateway.completeAuthentication(pending.gatewayPaymentId!, 'succeeded');
    assert.equal(event.type, 'payment_intent.succeeded');
    assert.match(event.id, /^evt_sandbox_/);
    assert.equal(event.livemode, false);
    const intent = event.data.object;
    assert.equal(intent.id, pending.gatewayPaymentId);
    assert.equal(intent.object, 'payment_intent');
    assert.equal(intent.status, 'succeeded');
    assert.deepEqual([intent.amount, intent.currency, intent.customer], [1999, 'eur', customerId]);
    assert.equal(intent.metadata.payment_id, request.metadata!.payment_id);
    assert.equal((await methodOf(pending)).customerId, customerId);
    await assert.rejects(gateway.completeAuthentication(pending.gatewayPaymentId!, 'succeeded'), SandboxIntentStateError);
    assert.deepEqual(await gateway.charge(request), { status: 'succeeded', gatewayPaymentId: pending.gatewayPaymentId });
    assert.deepEqual(await gateway.cancel({ gatewayPaymentId: pending.gatewayPaymentId!, idempotencyKey: `cancel-${randomUUID()}` }), {
      status: 'succeeded',
    });
  });

  test("a failed authentication is told as payment_intent.payment_failed with Stripe's code", async () => {
    const pending = await gateway.charge(chargeRequest(await newCustomer(), 'pm_card_authenticationRequired'));
    const event = await gateway.completeAuthentication(pending.gatewayPaymentId!, 'failed');
    assert.equal(event.type, 'payment_intent.payment_failed');
    const intent = event.data.object;
    assert.equal(intent.status, 'requires_payment_method');
    assert.equal(intent.last_payment_error?.code, 'payment_intent_authentication_failure');
    assert.equal(typeof intent.last_payment_error?.message, 'string');
    await assert.rejects(gateway.completeAuthentication(pending.gatewayPaymentId!, 'failed'), SandboxIntentStateError);
  });

  test('refunds a sandbox payment idempotently and refuses an unknown payment', async () => {
    const charge = await gateway.charge(chargeRequest(await newCustomer(), 'pm_card_visa'));
    const request = { gatewayPaymentId: charge.gatewayPaymentId!, amount: 500, idempotencyKey: `refund-${randomUUID()}` };
    const refund = await gateway.refund(request);
    assert.equal(refund.status, 'succeeded');
    assert.match(refund.gatewayRefundId, /^re_sandbox_/);
    assert.deepEqual(await gateway.refund(request), refund);
    await assert.rejects(gateway.refund({ ...request, gatewayPaymentId: 'pi_elsewhere' }), { code: 'resource_missing' });
    await assert.rejects(gateway.refund({ ...request, gatewayPaymentId: 'pi_sandbox_000000000000000000000000' }), GatewayRequestRejectedError);
  });

  test('cancels a pending payment, again the same, which then cannot be authenticated; refuses an unknown one', async () => {
    const charge = await gateway.charge(chargeRequest(await newCustomer(), 'pm_card_authenticationRequired', 'on_session'));
    const request = { gatewayPaymentId: charge.gatewayPaymentId!, idempotencyKey: `cancel-${randomUUID()}` };
    assert.deepEqual(await gateway.cancel(request), { status: 'canceled' });
    assert.deepEqual(await gateway.cancel(request), { status: 'canceled' });
    await assert.rejects(gateway.completeAuthentication(charge.gatewayPaymentId!, 'succeeded'), SandboxIntentStateError);
    await assert.rejects(gateway.cancel({ ...request, gatewayPaymentId: 'pi_elsewhere' }), GatewayRequestRejectedError);
  });
});

describe('sandbox ids', () => {
  test('never hold twelve digits in a row, which the API refuses as a card number', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => sandboxId('pm', `seed-${i}`));
    assert.deepEqual(
      ids.filter((id) => /\d{12}/.test(id)),
      [],
    );
    assert.equal(new Set(ids).size, ids.length);
  });
});

describe('createPaymentGateway', () => {
  test('follows PAYMENT_GATEWAY, not the presence of a key', () => {
    const db = handle.db;
    assert.equal(createPaymentGateway({ PAYMENT_GATEWAY: 'sandbox', STRIPE_SECRET_KEY: 'sk_test_x' }, { db }).name, 'sandbox');
    const stripe = createPaymentGateway(
      { PAYMENT_GATEWAY: 'stripe', STRIPE_SECRET_KEY: 'sk_test_x', STRIPE_API_URL: process.env.STRIPE_MOCK_URL },
      { db },
    );
    assert.equal(stripe.name, 'stripe');
  });
});
