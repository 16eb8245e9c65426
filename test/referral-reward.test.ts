/**
 * The referral reward on the real stack (API, a worker with the real activities on the shared dev
 * server, PostgreSQL, the sandbox gateway): a customer who signed up with a referral code pays
 * their first period, and the referrer's credit balance gains REFERRAL_CREDIT, once; a declined
 * first charge earns nothing, and neither does the referred customer's next subscription.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import { creditEntries } from '../db/schema';
import { requestJson } from './support/api';
import { DECLINED, VISA } from './support/staff-fixtures';
import { createPlan, startSubscriptionStack, type SubscriptionStack } from './support/subscription-stack';

let stack: SubscriptionStack;
/** Two monthly plans: nothing renews under the test. */
let planId: string;
let otherPlanId: string;

before(async () => {
  stack = await startSubscriptionStack();
  planId = await createPlan(stack, { amount: 1500, interval: 'P1M' });
  otherPlanId = await createPlan(stack, { amount: 2500, interval: 'P1M' });
});

after(() => stack?.close());

const api = (path: string) => `${stack.url}/api/v1${path}`;

interface Customer {
  id: string;
  headers: Record<string, string>;
}

async function signedUp(fields: Record<string, unknown> = {}): Promise<Customer> {
  const res = await requestJson(api('/auth/signup'), {
    body: { email: `reward-${randomUUID()}@example.test`, password: 'correct horse battery', name: 'Referral', ...fields },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return { id: res.body.user.id, headers: { authorization: `Bearer ${res.body.token}` } };
}

async function referralOf(customer: Customer) {
  const res = await requestJson(api('/referrals/me'), { headers: customer.headers });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body as { code: string; referredCount: number; creditEarned: { currency: string; amount: number }[] };
}

async function balance(customer: Customer, currency: string): Promise<number> {
  const res = await requestJson(api('/billing/balance'), { headers: customer.headers });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return (res.body.balances as { currency: string; amount: number }[]).find((b) => b.currency === currency)?.amount ?? 0;
}

function subscribe(customer: Customer, body: Record<string, unknown>) {
  return requestJson(api('/subscriptions/subscribe'), { body, headers: customer.headers });
}

describe('the referral reward', () => {
  test('the referred customer’s first paid period credits the referrer REFERRAL_CREDIT once; a decline or a second subscription earns nothing', async () => {
    const credit = stack.deps.config.REFERRAL_CREDIT;
    const referrer = await signedUp();
    const { code } = await referralOf(referrer);
    const referred = await signedUp({ referralCode: code });
    assert.deepEqual(await referralOf(referrer), { code, referredCount: 1, creditEarned: [] });

    const declined = await subscribe(referred, { planId, paymentMethod: DECLINED });
    assert.equal(declined.status, 402, JSON.stringify(declined.body));
    assert.equal(await balance(referrer, credit.currency), 0, 'a declined first charge earns nothing');

    const paid = await subscribe(referred, { planId, paymentMethod: VISA });
    assert.equal(paid.status, 201, JSON.stringify(paid.body));
    assert.equal(paid.body.payment.status, 'succeeded');
    // The reward is a step of the referred customer's workflow after its first paid period.
    assert.equal(await balance(referrer, credit.currency), credit.amount);
    assert.deepEqual(await referralOf(referrer), {
      code,
      referredCount: 1,
      creditEarned: [{ currency: credit.currency, amount: credit.amount }],
    });
    assert.equal(await balance(referred, credit.currency), 0, 'the referred customer gets nothing');

    const second = await subscribe(referred, { planId: otherPlanId, paymentMethod: VISA });
    assert.equal(second.status, 201, JSON.stringify(second.body));
    assert.equal(await balance(referrer, credit.currency), credit.amount);
    const ledger = await stack.deps.db.select().from(creditEntries).where(eq(creditEntries.userId, referrer.id));
    assert.deepEqual(
      ledger.map((e) => [e.kind, e.amount, e.currency]),
      [['referral', credit.amount, credit.currency]],
    );
    assert.deepEqual((await referralOf(referrer)).creditEarned, [{ currency: credit.currency, amount: credit.amount }]);

    for (const id of [paid.body.subscription.id, second.body.subscription.id]) {
      const canceled = await requestJson(api('/subscriptions/cancel'), {
        body: { subscriptionId: id, atPeriodEnd: false },
        headers: referred.headers,
      });
      assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
    }
  });
});
