import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { and, eq } from 'drizzle-orm';
import express from 'express';
import { auditLog } from '../db/schema';
import { connectTestDeps, createTestUser, listen, requestJson, type TestDeps, type TestServer, type TestUser } from '../test/support/api';
import { currentUser, requireAuth } from './auth';
import { idempotent } from './idempotency';
import { problemHandler } from './problem';
import { requestLogger } from './request-context';

describe('Idempotency-Key on POST routes', () => {
  let services: TestDeps;
  let server: TestServer;
  let user: TestUser;
  const slow = gate();
  let flakyCalls = 0;

  before(async () => {
    services = await connectTestDeps();
    const { deps } = services;
    user = await createTestUser(deps);

    // Each created "thing" is an audit_log row, so a test can count what a route created.
    const createThing = async (req: express.Request, res: express.Response) => {
      const [row] = await deps.db
        .insert(auditLog)
        .values({
          actorId: currentUser(req).id,
          action: 'idempotency-test.create',
          targetType: 'thing',
          targetId: String(req.body.marker),
        })
        .returning({ id: auditLog.id });
      res.status(201).json({ id: row.id, marker: req.body.marker });
    };

    const app = express();
    app.use(requestLogger(deps.logger));
    app.use(express.json());
    app.post('/things', requireAuth(deps), idempotent(deps), createThing);
    app.post('/other-things', requireAuth(deps), idempotent(deps), createThing);
    app.post('/slow-things', requireAuth(deps), idempotent(deps), async (req, res) => {
      slow.markStarted();
      await slow.opened;
      await createThing(req, res);
    });
    app.post('/flaky-things', requireAuth(deps), idempotent(deps), async (req, res) => {
      flakyCalls += 1;
      if (flakyCalls === 1) throw new Error('first attempt fails');
      await createThing(req, res);
    });
    app.post('/rejecting-things', requireAuth(deps), idempotent(deps), () => {
      throw new Error('never stored');
    });
    app.use(problemHandler(deps.logger));
    server = await listen(app);
  });

  after(async () => {
    await server.close();
    await services.close();
  });

  const post = (path: string, body: unknown, key: string | undefined, who: TestUser = user) =>
    requestJson(`${server.url}${path}`, {
      body,
      headers: { ...who.headers, ...(key === undefined ? {} : { 'idempotency-key': key }) },
    });

  async function thingsCreated(marker: string): Promise<number> {
    const rows = await services.deps.db
      .select({ id: auditLog.id })
      .from(auditLog)
      .where(and(eq(auditLog.action, 'idempotency-test.create'), eq(auditLog.targetId, marker)));
    return rows.length;
  }

  test('the same key replays the first answer and creates nothing new', async () => {
    const marker = randomUUID();
    const key = randomUUID();
    const first = await post('/things', { marker, amount: 1 }, key);
    // Same body with its keys in another order is the same request.
    const second = await post('/things', { amount: 1, marker }, key);

    assert.equal(first.status, 201);
    assert.equal(second.status, 201);
    assert.deepEqual(second.body, first.body);
    assert.equal(second.headers.get('idempotent-replayed'), 'true');
    assert.equal(await thingsCreated(marker), 1);
  });

  test('the same key with a different body is a 422 problem', async () => {
    const key = randomUUID();
    await post('/things', { marker: randomUUID() }, key);
    const reused = await post('/things', { marker: randomUUID() }, key);
    assert.equal(reused.status, 422);
    assert.match(reused.headers.get('content-type') ?? '', /^application\/problem\+json/);
  });

  test('a repeat while the first request is still running is a 409', async () => {
    const marker = randomUUID();
    const key = randomUUID();
    const first = post('/slow-things', { marker }, key);
    await slow.started;

    const concurrent = await post('/slow-things', { marker }, key);
    assert.equal(concurrent.status, 409);
    slow.open();
    assert.equal((await first).status, 201);
    assert.equal((await post('/slow-things', { marker }, key)).status, 201);
    assert.equal(await thingsCreated(marker), 1);
  });

  test('a failed (5xx) attempt is not remembered, so a retry with the key runs again', async () => {
    const marker = randomUUID();
    const key = randomUUID();
    assert.equal((await post('/flaky-things', { marker }, key)).status, 500);
    const retried = await post('/flaky-things', { marker }, key);
    assert.equal(retried.status, 201);
    assert.equal(retried.headers.get('idempotent-replayed'), null);
    assert.equal(await thingsCreated(marker), 1);
  });

  test('keys are scoped to the user and the route', async () => {
    const marker = randomUUID();
    const key = randomUUID();
    const otherUser = await createTestUser(services.deps);
    assert.equal((await post('/things', { marker }, key)).status, 201);
    assert.equal((await post('/things', { marker }, key, otherUser)).headers.get('idempotent-replayed'), null);
    assert.equal((await post('/other-things', { marker }, key)).headers.get('idempotent-replayed'), null);
    assert.equal(await thingsCreated(marker), 3);
  });

  test('without a key every request runs', async () => {
    const marker = randomUUID();
    await post('/things', { marker }, undefined);
    await post('/things', { marker }, undefined);
    assert.equal(await thingsCreated(marker), 2);
  });

  test('an overlong key is a 400 problem', async () => {
    const tooLong = await post('/things', { marker: randomUUID() }, 'k'.repeat(256));
    assert.equal(tooLong.status, 400);
    assert.equal(tooLong.body.invalidParams[0].name, 'Idempotency-Key');
  });

  test('a 5xx answer leaves no record behind', async () => {
    const key = randomUUID();
    assert.equal((await post('/rejecting-things', {}, key)).status, 500);
    assert.equal(await recordCount(key), 0);
  });

  async function recordCount(key: string): Promise<number> {
    const rows = await services.deps.sql`select 1 from idempotency_records where key = ${key}`;
    return rows.length;
  }
});

/** Lets a test hold a handler mid-request: `started` resolves when it is waiting, `open()` lets it go on. */
function gate() {
  let markStarted!: () => void;
  let open!: () => void;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { started, markStarted, opened, open };
}
