/**
 * Referrals over HTTP on real PostgreSQL: every customer has a code, signup accepts it (an unknown
 * one is a 400 naming referralCode and creates nothing), the referrer sees who signed up and the
 * credit earned; the reward's ledger key grants it once; the database refuses a self-referral.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { grantCredit } from '../db/credits';
import { createReferralActivities } from '../activities/referral';
import { markReferralRewarded, referralOf } from '../db/referrals';
import { payments } from '../db/schema';
import { referralRewardKey } from '../domain/referral';
import { requestJson, startTestApi, type TestApi } from './support/api';

let api: TestApi;

before(async () => {
  api = await startTestApi();
});

after(() => api?.close());

const url = (path: string) => `${api.url}/api/v1${path}`;

async function signup(fields: Record<string, unknown> = {}) {
  return requestJson(url('/auth/signup'), {
    body: { email: `ref-${randomUUID()}@example.test`, password: 'correct horse battery', name: 'Ref', ...fields },
  });
}

async function signedUp(fields: Record<string, unknown> = {}) {
  const res = await signup(fields);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return { id: res.body.user.id as string, headers: { authorization: `Bearer ${res.body.token}` } };
}

const me = async (headers: Record<string, string>) => {
  const res = await requestJson(url('/referrals/me'), { headers });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
};

describe('referrals', () => {
  test('a code per customer, the same on every ask; signup with it (any case) counts as referred', async () => {
    const referrer = await signedUp();
    const first = await me(referrer.headers);
    assert.match(first.code, /^[A-Z2-9]{8}$/);
    assert.deepEqual(first, { code: first.code, referredCount: 0, creditEarned: [] });
    assert.equal((await me(referrer.headers)).code, first.code);

    const referred = await signedUp({ referralCode: ` ${first.code.toLowerCase()} ` });
    assert.equal((await me(referrer.headers)).referredCount, 1);
    const row = await referralOf(api.deps.db, referred.id);
    assert.equal(row?.referrerId, referrer.id);
    assert.equal(row?.code, first.code);
  });

  test('an unknown or malformed code is a 400 naming referralCode, and creates no account', async () => {
    const email = `ref-${randomUUID()}@example.test`;
    const unknown = await signup({ email, referralCode: 'ZZZZZZZZ' });
    assert.equal(unknown.status, 400);
    assert.deepEqual(
      unknown.body.invalidParams.map((p: { name: string }) => p.name),
      ['referralCode'],
    );
    const malformed = await signup({ email, referralCode: 'nope' });
    assert.equal(malformed.status, 400);
    assert.deepEqual(
      malformed.body.invalidParams.map((p: { name: string }) => p.name),
      ['referralCode'],
    );
    assert.equal((await signup({ email })).status, 201, 'the email was not taken by the refused signups');
  });

  test("the reward's ledger key grants it once; creditEarned shows it", async () => {
    const referrer = await signedUp();
    const { code } = await me(referrer.headers);
    const referred = await signedUp({ referralCode: code });
    const reward = { userId: referrer.id, currency: 'usd', amount: 500, kind: 'referral' as const, idempotencyKey: referralRewardKey(referred.id) };
    assert.equal((await grantCredit(api.deps.db, reward)).granted, true);
    assert.equal((await grantCredit(api.deps.db, reward)).granted, false);
    await markReferralRewarded(api.deps.db, referred.id);
    assert.deepEqual(await me(referrer.headers), { code, referredCount: 1, creditEarned: [{ currency: 'usd', amount: 500 }] });
    assert.ok((await referralOf(api.deps.db, referred.id))?.rewardedAt);
  });

  test('no self-referral and one referrer per customer, whatever the code does', async () => {
    const a = await signedUp();
    const b = await signedUp({ referralCode: (await me(a.headers)).code });
    const c = await signedUp();
    await assert.rejects(
      api.deps.sql`insert into referrals (referrer_id, referred_user_id, code) values (${a.id}, ${a.id}, 'X')`,
      /referrals_not_self/,
    );
    await assert.rejects(api.deps.sql`insert into referrals (referrer_id, referred_user_id, code) values (${c.id}, ${b.id}, 'X')`, /referrals_pkey/);
  });

  test('the reward step credits the referrer once, however often it runs; never for a refund in full', async () => {
    const { rewardReferral } = createReferralActivities({ db: api.deps.db, logger: api.deps.logger });
    const referrer = await signedUp();
    const { code } = await me(referrer.headers);
    const referred = await signedUp({ referralCode: code });
    const payment = async (fields: Partial<typeof payments.$inferInsert> = {}) => {
      const [row] = await api.deps.db
        .insert(payments)
        .values({
          kind: 'subscription',
          userId: referred.id,
          amount: 1999,
          currency: 'usd',
          status: 'succeeded',
          idempotencyKey: `test-${randomUUID()}`,
          ...fields,
        })
        .returning();
      return row.id;
    };
    const credit = { amount: 500, currency: 'usd' };

    const refunded = await payment({ status: 'refunded', refundedAmount: 1999 });
    assert.deepEqual(await rewardReferral({ referredUserId: referred.id, paymentId: refunded, credit }), {
      status: 'skipped',
      reason: 'refunded_in_full',
    });

    const paid = await payment();
    const runs = await Promise.all([1, 2, 3].map(() => rewardReferral({ referredUserId: referred.id, paymentId: paid, credit })));
    assert.deepEqual(
      runs.map((r) => r.status),
      ['rewarded', 'rewarded', 'rewarded'],
    );
    assert.equal(runs.filter((r) => r.status === 'rewarded' && r.granted).length, 1, 'granted by exactly one run');
    assert.deepEqual((await me(referrer.headers)).creditEarned, [{ currency: 'usd', amount: 500 }]);

    const stranger = await signedUp();
    assert.deepEqual(await rewardReferral({ referredUserId: stranger.id, paymentId: paid, credit }), { status: 'skipped', reason: 'no_referral' });
  });
});
