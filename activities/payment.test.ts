import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import { connectDatabase, migrateDatabase, type DatabaseHandle } from '../db/client';
import { recordGatewayRefundTotal } from '../db/payments';
import { payments, sandboxIntents } from '../db/schema';
import { PAYMENT_TIMEOUT_FAILURE_CODE, type ChargeInput, type PaymentGateway } from '../domain/payment';
import { createLogger } from '../platform/logger';
import { closedLoopbackPort, countingGateway, insertTestUser, type GatewayScript } from '../test/support/payment-fixtures';
import { createPaymentActivities } from './payment';
import { SandboxGateway, StripeGateway } from './gateway';

const logger = createLogger({ LOG_LEVEL: 'silent', NODE_ENV: 'test' });
let handle: DatabaseHandle;
let userId: string;

before(async () => {
  const url = process.env.DATABASE_URL;
  assert.ok(url, 'DATABASE_URL must be set');
  await migrateDatabase(url);
  handle = connectDatabase(url);
  userId = (await insertTestUser(handle.db)).id;
});

after(() => handle.close());

function chargeInput(paymentMethod: string, fields: Partial<ChargeInput> = {}): ChargeInput {
  return {
    kind: 'one_time',
    userId,
    amount: 2500,
    currency: 'usd',
    paymentMethod,
    idempotencyKey: `test-charge-${randomUUID()}`,
    attempt: 1,
    description: 'activity test',
    ...fields,
  };
}

function sandboxActivities() {
  const { gateway, calls } = countingGateway(new SandboxGateway(handle.db));
  return { activities: createPaymentActivities({ db: handle.db, gateway, logger }), calls };
}

async function rowsWithKey(key: string) {
  return handle.db.select().from(payments).where(eq(payments.idempotencyKey, key));
}

async function rowById(id: string) {
  const [row] = await handle.db.select().from(payments).where(eq(payments.id, id));
  return row;
}

describe('chargePayment', () => {
  test('a successful charge is recorded with the gateway id, under the requested row id', async () => {
    const { activities } = sandboxActivities();
    const paymentId = randomUUID();
    const result = await activities.chargePayment(chargeInput('pm_card_visa', { paymentId }));
    assert.equal(result.paymentId, paymentId);
    assert.equal(result.status, 'succeeded');
    assert.match(result.gatewayPaymentId ?? '', /^pi_sandbox_/);
    const row = await rowById(paymentId);
    assert.equal(row.status, 'succeeded');
    assert.equal(row.gatewayPaymentId, result.gatewayPaymentId);
    assert.equal(row.amount, 2500);
    assert.equal(row.kind, 'one_time');
  });

  test('the same key twice is one row and one gateway call', async () => {
    const { activities, calls } = sandboxActivities();
    const input = chargeInput('pm_card_visa');
    const first = await activities.chargePayment(input);
    const second = await activities.chargePayment(input);
    assert.deepEqual(second, first);
    assert.equal(calls.charge, 1);
    assert.equal((await rowsWithKey(input.idempotencyKey)).length, 1);
  });

  test('concurrent charges with the same key are one row and one charge at the gateway', async () => {
    const { activities, calls } = sandboxActivities();
    const input = chargeInput('pm_card_mastercard');
    const results = await Promise.all(Array.from({ length: 6 }, () => activities.chargePayment(input)));
    // No lock is held across the gateway call, so several attempts may ask it; the key makes them one charge there.
    assert.ok(calls.charge >= 1);
    const intents = await handle.db.select().from(sandboxIntents).where(eq(sandboxIntents.idempotencyKey, input.idempotencyKey));
    assert.equal(intents.length, 1);
    assert.equal(new Set(results.map((r) => r.paymentId)).size, 1);
    assert.ok(results.every((r) => r.status === 'succeeded'));
    assert.equal((await rowsWithKey(input.idempotencyKey)).length, 1);
  });

  test('a decline returns failed with its code and kind instead of throwing', async () => {
    const { activities } = sandboxActivities();
    const soft = await activities.chargePayment(chargeInput('pm_card_chargeDeclinedInsufficientFunds'));
    assert.deepEqual(
      { status: soft.status, failureCode: soft.failureCode, decline: soft.decline },
      { status: 'failed', failureCode: 'insufficient_funds', decline: 'soft' },
    );
    const hard = await activities.chargePayment(chargeInput('pm_card_chargeDeclinedStolenCard'));
    assert.deepEqual(
      { status: hard.status, failureCode: hard.failureCode, decline: hard.decline },
      { status: 'failed', failureCode: 'stolen_card', decline: 'hard' },
    );
    assert.equal((await rowById(hard.paymentId)).status, 'failed');
  });

  test('a gateway fault throws and leaves the charge pending; the retry charges once', async () => {
    const down = new StripeGateway('sk_test_down', { apiUrl: `http://127.0.0.1:${await closedLoopbackPort()}` });
    const failing = createPaymentActivities({ db: handle.db, gateway: down, logger });
    const input = chargeInput('pm_card_visa', { kind: 'subscription', cycle: 3, attempt: 2 });
    await assert.rejects(failing.chargePayment(input));
    const [pending] = await rowsWithKey(input.idempotencyKey);
    assert.equal(pending.status, 'pending');
    assert.equal(pending.gatewayPaymentId, null);
    assert.equal(pending.cycle, 3);

    const { activities, calls } = sandboxActivities();
    const retried = await activities.chargePayment(input);
    assert.equal(retried.paymentId, pending.id);
    assert.equal(retried.status, 'succeeded');
    assert.equal(calls.charge, 1);
  });

  test('a pending charge is not re-sent, and its settlement is applied once', async () => {
    const { activities, calls } = sandboxActivities();
    const input = chargeInput('pm_card_authenticationRequired');
    const pending = await activities.chargePayment(input);
    assert.equal(pending.status, 'pending');
    assert.deepEqual(await activities.chargePayment(input), pending);
    assert.equal(calls.charge, 1);

    const gatewayPaymentId = pending.gatewayPaymentId!;
    await activities.settlePayment({ paymentId: pending.paymentId, gatewayPaymentId, status: 'succeeded', failureCode: null });
    await activities.settlePayment({ paymentId: pending.paymentId, gatewayPaymentId, status: 'failed', failureCode: 'late' });
    const row = await rowById(pending.paymentId);
    assert.equal(row.status, 'succeeded');
    assert.equal(row.failureCode, null);
    assert.equal((await activities.chargePayment(input)).status, 'succeeded');
  });
});

describe('refundPayment', () => {
  test('records a refund row, adds to the refunded amount, and marks a full refund', async () => {
    const { activities, calls } = sandboxActivities();
    const charge = await activities.chargePayment(chargeInput('pm_card_visa'));
    const partial = { paymentId: charge.paymentId, amount: 1000, idempotencyKey: `test-refund-${randomUUID()}`, reason: 'late' };

    const first = await activities.refundPayment(partial);
    assert.equal(first.status, 'succeeded');
    assert.deepEqual(await activities.refundPayment(partial), first);
    assert.equal(calls.refund, 1);

    const refundRow = await rowById(first.refundPaymentId);
    assert.equal(refundRow.kind, 'refund');
    assert.equal(refundRow.refundOf, charge.paymentId);
    assert.equal(refundRow.amount, 1000);
    assert.equal(refundRow.userId, userId);
    assert.match(refundRow.gatewayPaymentId ?? '', /^re_sandbox_/);
    let original = await rowById(charge.paymentId);
    assert.equal(original.refundedAmount, 1000);
    assert.equal(original.status, 'succeeded');

    await activities.refundPayment({ ...partial, amount: 1500, idempotencyKey: `test-refund-${randomUUID()}` });
    original = await rowById(charge.paymentId);
    assert.equal(original.refundedAmount, 2500);
    assert.equal(original.status, 'refunded');
  });

  test('refusing more than was paid, or a failed charge, is a non-retryable failure', async () => {
    const { activities, calls } = sandboxActivities();
    const charge = await activities.chargePayment(chargeInput('pm_card_visa'));
    await assert.rejects(
      activities.refundPayment({ paymentId: charge.paymentId, amount: 2501, idempotencyKey: `test-refund-${randomUUID()}`, reason: 'x' }),
      (error: unknown) => error instanceof ApplicationFailure && error.nonRetryable && error.type === 'RefundExceedsPayment',
    );
    const declined = await activities.chargePayment(chargeInput('pm_card_chargeDeclined'));
    await assert.rejects(
      activities.refundPayment({ paymentId: declined.paymentId, amount: 1, idempotencyKey: `test-refund-${randomUUID()}`, reason: 'x' }),
      (error: unknown) => error instanceof ApplicationFailure && error.type === 'PaymentNotRefundable',
    );
    assert.equal(calls.refund, 0);
  });
});

describe('refundPayment under contention', () => {
  test('ten refunds racing for one charge never refund more than was paid', async () => {
    const { activities, calls } = sandboxActivities();
    const charge = await activities.chargePayment(chargeInput('pm_card_visa'));
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        activities.refundPayment({ paymentId: charge.paymentId, amount: 1000, idempotencyKey: `test-refund-${randomUUID()}`, reason: 'race' }),
      ),
    );
    const made = results.filter((r) => r.status === 'fulfilled');
    assert.equal(made.length, 2, 'two refunds of 1000 fit in 2500');
    assert.equal(calls.refund, 2, 'the refused ones never reached the gateway');
    for (const refused of results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')) {
      assert.ok(refused.reason instanceof ApplicationFailure && refused.reason.type === 'RefundExceedsPayment');
    }
    assert.equal((await rowById(charge.paymentId)).refundedAmount, 2000);
  });

  test('a refund the gateway refuses gives its reservation back, once however often it is retried', async () => {
    const sandbox = new SandboxGateway(handle.db);
    const refusing: PaymentGateway = Object.assign(Object.create(sandbox) as PaymentGateway, {
      refund: async () => ({ gatewayRefundId: `re_refused_${randomUUID()}`, status: 'failed' as const }),
    });
    const activities = createPaymentActivities({ db: handle.db, gateway: refusing, logger });
    const charge = await activities.chargePayment(chargeInput('pm_card_visa'));
    const refund = { paymentId: charge.paymentId, amount: 2500, idempotencyKey: `test-refund-${randomUUID()}`, reason: 'refused' };
    assert.equal((await activities.refundPayment(refund)).status, 'failed');
    assert.equal((await activities.refundPayment(refund)).status, 'failed');
    const original = await rowById(charge.paymentId);
    assert.deepEqual([original.refundedAmount, original.status], [0, 'succeeded']);
  });
});

describe('recordGatewayRefundTotal', () => {
  test('raises the refunded amount to the reported total and never lowers it', async () => {
    const { activities } = sandboxActivities();
    const charge = await activities.chargePayment(chargeInput('pm_card_visa'));
    await recordGatewayRefundTotal(handle.db, charge.paymentId, 2500);
    await recordGatewayRefundTotal(handle.db, charge.paymentId, 700);
    const row = await rowById(charge.paymentId);
    assert.equal(row.refundedAmount, 2500);
    assert.equal(row.status, 'refunded');
  });
});

describe('cancelPendingPayment', () => {
  /** A charge the sandbox leaves pending (awaiting authentication), and activities on `script`. */
  async function pendingCharge(script: GatewayScript = {}) {
    const { gateway, calls } = countingGateway(new SandboxGateway(handle.db), script);
    const activities = createPaymentActivities({ db: handle.db, gateway, logger });
    const pending = await activities.chargePayment(chargeInput('pm_card_authenticationRequired'));
    assert.equal(pending.status, 'pending');
    return { activities, calls, pending };
  }

  test('cancels it at the gateway and records it failed with the timeout code, once', async () => {
    const { activities, calls, pending } = await pendingCharge();
    const result = await activities.cancelPendingPayment({ paymentId: pending.paymentId });
    const { nextAction: _waitingForTheCustomer, ...charged } = pending;
    assert.deepEqual(result, {
      ...charged,
      status: 'failed',
      failureCode: PAYMENT_TIMEOUT_FAILURE_CODE,
      decline: 'soft',
    });
    assert.deepEqual(await activities.cancelPendingPayment({ paymentId: pending.paymentId }), result);
    assert.equal(calls.cancel, 1, 'a final row is answered from the database');
    const row = await rowById(pending.paymentId);
    assert.deepEqual([row.status, row.failureCode], ['failed', PAYMENT_TIMEOUT_FAILURE_CODE]);
  });

  test('a charge that succeeded before it could be canceled is recorded and answered as a success', async () => {
    const { activities, pending } = await pendingCharge({ cancelAnswer: () => ({ status: 'succeeded' }) });
    const result = await activities.cancelPendingPayment({ paymentId: pending.paymentId });
    assert.deepEqual([result.status, result.failureCode, result.decline], ['succeeded', null, null]);
    assert.equal((await rowById(pending.paymentId)).status, 'succeeded');
  });

  test('a settlement recorded first wins: the cancel answers it without asking the gateway', async () => {
    const { activities, calls, pending } = await pendingCharge();
    await activities.settlePayment({
      paymentId: pending.paymentId,
      gatewayPaymentId: pending.gatewayPaymentId!,
      status: 'succeeded',
      failureCode: null,
    });
    const result = await activities.cancelPendingPayment({ paymentId: pending.paymentId });
    assert.equal(result.status, 'succeeded');
    assert.equal(calls.cancel, 0);
  });

  test('no row is locked while the gateway cancels; a settlement landing meanwhile wins and is what the cancel answers', async () => {
    let entered!: () => void;
    const inGateway = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const { activities, pending } = await pendingCharge({
      cancelAnswer: async () => {
        entered();
        await released;
        // What the gateway says when the customer completed the charge just before the cancel.
        return { status: 'succeeded' };
      },
    });

    const canceling = activities.cancelPendingPayment({ paymentId: pending.paymentId });
    await inGateway;
    const other = connectDatabase(process.env.DATABASE_URL!, { max: 1 });
    try {
      const rows = await other.sql`select id from payments where id = ${pending.paymentId} for update nowait`;
      assert.equal(rows.length, 1, 'the row is free while the gateway is asked');
    } finally {
      await other.close();
    }
    await activities.settlePayment({
      paymentId: pending.paymentId,
      gatewayPaymentId: pending.gatewayPaymentId!,
      status: 'succeeded',
      failureCode: null,
    });
    release();
    const result = await canceling;

    assert.equal(result.status, 'succeeded');
    assert.equal((await rowById(pending.paymentId)).status, 'succeeded');
  });

  test('raced with a settlement, the answer is always what the row ends up saying', async () => {
    const { activities, pending } = await pendingCharge();
    const [result] = await Promise.all([
      activities.cancelPendingPayment({ paymentId: pending.paymentId }),
      activities.settlePayment({
        paymentId: pending.paymentId,
        gatewayPaymentId: pending.gatewayPaymentId!,
        status: 'succeeded',
        failureCode: null,
      }),
    ]);
    assert.equal((await rowById(pending.paymentId)).status, result.status);
  });
});

describe('recordLatePaymentSuccess', () => {
  test('turns a charge given up into a success that can be refunded, once', async () => {
    const { activities } = sandboxActivities();
    const pending = await activities.chargePayment(chargeInput('pm_card_authenticationRequired'));
    await activities.cancelPendingPayment({ paymentId: pending.paymentId });
    const orphan = { paymentId: pending.paymentId, gatewayPaymentId: pending.gatewayPaymentId! };

    const late = await activities.recordLatePaymentSuccess(orphan);
    assert.deepEqual([late.userId, late.amount, late.refundable, late.currency], [userId, 2500, 2500, 'usd']);
    assert.equal((await rowById(pending.paymentId)).status, 'succeeded');
    assert.deepEqual(await activities.recordLatePaymentSuccess(orphan), late);

    const refund = await activities.refundPayment({
      paymentId: pending.paymentId,
      amount: late.refundable,
      idempotencyKey: `test-refund-${randomUUID()}`,
      reason: 'late success',
    });
    assert.equal(refund.status, 'succeeded');
    assert.equal((await rowById(pending.paymentId)).status, 'refunded');
    assert.equal((await activities.recordLatePaymentSuccess(orphan)).refundable, 0, 'a refunded charge stays refunded');
  });
});
