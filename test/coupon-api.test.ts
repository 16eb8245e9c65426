/**
 * The coupon routes over HTTP on real PostgreSQL and Redis: staff create (400 naming the field,
 * 409 for a code in use in any case), list a page at a time and deactivate; customers are refused
 * them; validation answers every reason, through the coupon cache that every change invalidates:
 * at once in the process that made the change, soon after in another (a Redis connection of its own).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { createCouponRedemptions } from '../activities/coupon';
import { planRowOf } from '../api/plan';
import { deactivateCoupon } from '../db/coupons';
import { auditLog, plans, subscriptions } from '../db/schema';
import { DEFAULT_DUNNING_POLICY } from '../domain/dunning';
import { createTestUser, requestJson, startTestApi, type TestApi, type TestUser } from './support/api';
import { eventually } from './support/subscription-fixtures';

let api: TestApi;
let staff: TestUser;
let customer: TestUser;
let usdPlan: string;
let otherPlan: string;

async function insertPlan(amount: number, currency: string): Promise<string> {
  const [row] = await api.deps.db
    .insert(plans)
    .values(
      planRowOf({
        code: `coupon-plan-${randomUUID()}`,
        name: 'Pro',
        amount,
        currency,
        interval: 'P1M',
        trialPeriod: null,
        dunning: DEFAULT_DUNNING_POLICY,
      }),
    )
    .returning();
  return row.id;
}

before(async () => {
  api = await startTestApi();
  staff = await createTestUser(api.deps, { role: 'staff' });
  customer = await createTestUser(api.deps);
  usdPlan = await insertPlan(1999, 'usd');
  otherPlan = await insertPlan(4999, 'usd');
});

after(() => api?.close());

const url = (path: string) => `${api.url}/api/v1${path}`;
const uniqueCode = (prefix = 'SAVE') => `${prefix}-${randomUUID().slice(0, 8)}`;

function create(body: Record<string, unknown>, user: TestUser = staff) {
  return requestJson(url('/admin/coupons'), { body, headers: { ...user.headers, 'idempotency-key': randomUUID() } });
}

async function created(body: Record<string, unknown>) {
  const res = await create(body);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.coupon;
}

function validate(query: Record<string, string>, user: TestUser = customer) {
  return requestJson(url(`/coupons/validate?${new URLSearchParams(query).toString()}`), { headers: user.headers });
}

const invalidNames = (res: { body: any }) => (res.body.invalidParams as Array<{ name: string }>).map((p) => p.name).sort();

describe('staff: POST /api/v1/admin/coupons', () => {
  test('creates a coupon (201, audited); its code is taken in any case (409)', async () => {
    const code = uniqueCode('Spring');
    const coupon = await created({ code, percentOff: 25, duration: 'repeating', durationInCycles: 3, maxRedemptions: 50, appliesToPlans: [usdPlan] });
    assert.deepEqual(
      { code: coupon.code, percentOff: coupon.percentOff, duration: coupon.duration, active: coupon.active, redemptionCount: coupon.redemptionCount },
      { code, percentOff: 25, duration: 'repeating', active: true, redemptionCount: 0 },
    );
    const [audit] = await api.deps.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.targetType, 'coupon'), eq(auditLog.targetId, coupon.id)));
    assert.equal(audit.action, 'coupon.create');
    assert.equal(audit.actorId, staff.user.id);

    const taken = await create({ code: code.toUpperCase(), amountOff: 500, currency: 'usd', duration: 'once' });
    assert.equal(taken.status, 409);
    assert.deepEqual(invalidNames(taken), ['code']);
  });

  test('bad input is a 400 naming the field, and creates nothing', async () => {
    const code = uniqueCode();
    const cases: Array<[Record<string, unknown>, string[]]> = [
      [{ code, duration: 'once' }, ['percentOff']],
      [{ code, percentOff: 10, amountOff: 100, currency: 'usd', duration: 'once' }, ['amountOff']],
      [{ code, amountOff: 100, duration: 'once' }, ['currency']],
      [{ code, percentOff: 101, duration: 'once' }, ['percentOff']],
      [{ code, percentOff: 10, duration: 'repeating' }, ['durationInCycles']],
      [{ code, percentOff: 10, duration: 'forever', durationInCycles: 2 }, ['durationInCycles']],
      [{ code, percentOff: 10, duration: 'once', redeemBy: '2020-01-01T00:00:00Z' }, ['redeemBy']],
      [{ code, percentOff: 10, duration: 'once', appliesToPlans: [randomUUID()] }, ['appliesToPlans']],
      [{ code: 'no spaces', percentOff: 10, duration: 'once' }, ['code']],
      [{ code, percentOff: 10, duration: 'weekly', extra: 1 }, ['duration', 'extra']],
    ];
    for (const [body, names] of cases) {
      const res = await create(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
      assert.deepEqual(invalidNames(res), names, JSON.stringify(body));
    }
    const valid = await validate({ code });
    assert.deepEqual(valid.body, { valid: false, reason: 'unknown' }, 'nothing was created');
  });

  test('customers get a 403 on every staff route; no token is a 401', async () => {
    assert.equal((await create({ code: uniqueCode(), percentOff: 10, duration: 'once' }, customer)).status, 403);
    assert.equal((await requestJson(url('/admin/coupons'), { headers: customer.headers })).status, 403);
    assert.equal((await requestJson(url(`/admin/coupons/${randomUUID()}/deactivate`), { method: 'POST', headers: customer.headers })).status, 403);
    assert.equal((await requestJson(url('/admin/coupons'))).status, 401);
    assert.equal((await requestJson(url('/coupons/validate?code=X'))).status, 401);
  });
});

describe('staff: list and deactivate', () => {
  test('GET /admin/coupons pages newest first', async () => {
    const codes = [uniqueCode('A'), uniqueCode('B'), uniqueCode('C')];
    for (const code of codes) await created({ code, percentOff: 5, duration: 'once' });
    const first = await requestJson(url('/admin/coupons?limit=2'), { headers: staff.headers });
    assert.equal(first.status, 200);
    assert.deepEqual(
      first.body.items.map((c: { code: string }) => c.code),
      [codes[2], codes[1]],
    );
    const second = await requestJson(url(`/admin/coupons?limit=2&cursor=${first.body.nextCursor}`), { headers: staff.headers });
    assert.equal(second.body.items[0].code, codes[0]);
    const bad = await requestJson(url('/admin/coupons?limit=0&cursor=nonsense&active=maybe'), { headers: staff.headers });
    assert.equal(bad.status, 400);
    assert.deepEqual(invalidNames(bad), ['active', 'cursor', 'limit']);
  });

  test('deactivate: 200 and a repeat changes nothing; validation sees it at once; unknown is a 404', async () => {
    const coupon = await created({ code: uniqueCode(), percentOff: 10, duration: 'once' });
    assert.equal((await validate({ code: coupon.code })).body.valid, true, 'now cached as valid');
    const deactivate = () => requestJson(url(`/admin/coupons/${coupon.id}/deactivate`), { method: 'POST', headers: staff.headers });
    const res = await deactivate();
    assert.equal(res.status, 200);
    assert.equal(res.body.coupon.active, false);
    assert.equal((await deactivate()).status, 200);
    assert.deepEqual((await validate({ code: coupon.code })).body, { valid: false, reason: 'expired' });
    const audits = await api.deps.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.targetId, coupon.id), eq(auditLog.action, 'coupon.deactivate')));
    assert.equal(audits.length, 1);
    assert.equal((await requestJson(url(`/admin/coupons/${randomUUID()}/deactivate`), { method: 'POST', headers: staff.headers })).status, 404);
    assert.equal((await requestJson(url('/admin/coupons/nope/deactivate'), { method: 'POST', headers: staff.headers })).status, 400);
  });
});

describe('customer: GET /api/v1/coupons/validate', () => {
  test('a valid code in any case, with the discount on the plan', async () => {
    const coupon = await created({ code: uniqueCode('Half'), percentOff: 50, duration: 'once', appliesToPlans: [usdPlan] });
    const res = await validate({ code: coupon.code.toLowerCase(), planId: usdPlan });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      valid: true,
      coupon: { code: coupon.code, percentOff: 50, amountOff: null, currency: null, duration: 'once', durationInCycles: null },
      discount: { amount: 1000, currency: 'usd' },
    });
    assert.equal((await validate({ code: coupon.code })).body.discount, null, 'no plan, no discount to price');
    assert.deepEqual((await validate({ code: coupon.code, planId: otherPlan })).body, { valid: false, reason: 'not_applicable' });
  });

  test('a fixed amount larger than the plan takes all of it; another currency is not applicable', async () => {
    const big = await created({ code: uniqueCode(), amountOff: 5000, currency: 'usd', duration: 'forever' });
    assert.deepEqual((await validate({ code: big.code, planId: usdPlan })).body.discount, { amount: 1999, currency: 'usd' });
    const eur = await created({ code: uniqueCode(), amountOff: 500, currency: 'eur', duration: 'once' });
    assert.deepEqual((await validate({ code: eur.code, planId: usdPlan })).body, { valid: false, reason: 'not_applicable' });
  });

  test('already redeemed, exhausted and first-time-only, after redemptions invalidate the cache', async () => {
    const coupon = await created({ code: uniqueCode(), percentOff: 10, duration: 'once', maxRedemptions: 1 });
    assert.equal((await validate({ code: coupon.code })).body.valid, true);
    const redemptions = createCouponRedemptions({ db: api.deps.db, redis: api.deps.redis, logger: api.deps.logger });
    const outcome = await redemptions.redeem({ redemptionId: randomUUID(), couponId: coupon.id, userId: customer.user.id, subscriptionId: null });
    assert.equal(outcome.status, 'redeemed');
    assert.deepEqual((await validate({ code: coupon.code })).body, { valid: false, reason: 'already_redeemed' });
    const other = await createTestUser(api.deps);
    assert.deepEqual((await validate({ code: coupon.code }, other)).body, { valid: false, reason: 'exhausted' });

    const firstTime = await created({ code: uniqueCode(), percentOff: 10, duration: 'once', firstTimeOnly: true });
    assert.equal((await validate({ code: firstTime.code })).body.valid, true);
  });

  test('first-time-only: not applicable to a customer who subscribed before, whatever became of it', async () => {
    const coupon = await created({ code: uniqueCode(), percentOff: 10, duration: 'once', firstTimeOnly: true });
    const returning = await createTestUser(api.deps);
    assert.equal((await validate({ code: coupon.code }, returning)).body.valid, true);
    await api.deps.db.insert(subscriptions).values({
      userId: returning.user.id,
      planId: usdPlan,
      status: 'canceled',
      paymentMethod: 'pm_card_visa',
      anchorDate: new Date(),
      workflowId: `subscription-${randomUUID()}`,
    });
    assert.deepEqual((await validate({ code: coupon.code }, returning)).body, { valid: false, reason: 'not_applicable' });
    assert.equal((await validate({ code: coupon.code })).body.valid, true, 'a customer who never subscribed may use it');
  });

  test("another process's changes (its own Redis connection) are seen: a redemption, then a deactivation", async () => {
    const coupon = await created({ code: uniqueCode(), percentOff: 10, duration: 'once', maxRedemptions: 1 });
    const holder = await createTestUser(api.deps);
    for (const user of [holder, customer]) assert.equal((await validate({ code: coupon.code }, user)).body.valid, true);
    const redis = new Redis(api.deps.config.REDIS_URL);
    try {
      const elsewhere = createCouponRedemptions({ db: api.deps.db, redis, logger: api.deps.logger });
      const outcome = await elsewhere.redeem({ redemptionId: randomUUID(), couponId: coupon.id, userId: holder.user.id, subscriptionId: null });
      assert.equal(outcome.status, 'redeemed');
      await eventually(async () =>
        assert.deepEqual((await validate({ code: coupon.code }, holder)).body, { valid: false, reason: 'already_redeemed' }),
      );
      await eventually(async () => assert.deepEqual((await validate({ code: coupon.code })).body, { valid: false, reason: 'exhausted' }));

      await deactivateCoupon(api.deps.db, coupon.id);
      await elsewhere.cache.invalidate(coupon.code);
      await eventually(async () => assert.deepEqual((await validate({ code: coupon.code })).body, { valid: false, reason: 'expired' }));
    } finally {
      await redis.quit();
    }
  });

  test('unknown code, bad query (400 naming it) and unknown plan (404)', async () => {
    assert.deepEqual((await validate({ code: uniqueCode() })).body, { valid: false, reason: 'unknown' });
    const bad = await validate({ code: '', planId: 'x' });
    assert.equal(bad.status, 400);
    assert.deepEqual(invalidNames(bad), ['code', 'planId']);
    assert.equal((await validate({ code: 'X', planId: randomUUID() })).status, 404);
  });
});
