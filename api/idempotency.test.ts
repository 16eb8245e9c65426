import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { and, eq, sql } from 'drizzle-orm';
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
  const slowConverging = gate();
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
      throw new Error('always fails');
    });
    // Scoped to its declared route, as api/route.ts declares it: the spelling of the path does not matter.
    app.post('/declared-things', requireAuth(deps), idempotent(deps, { scope: 'POST /declared-things' }), createThing);
    // Converges: the handler run again finds what the first run made (by marker) instead of making another.
    app.post('/converging-things', requireAuth(deps), idempotent(deps, { scope: 'POST /converging-things', converges: true }), async (req, res) => {
      slowConverging.markStarted();
      await slowConverging.opened;
      // Converging as a real route does (a workflow id derived from the key): the look and the
      // create are one step, here a transaction under a lock on the marker, so two runs make one thing.
      const marker = String(req.body.marker);
      const created = await deps.db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${marker}))`);
        const found = await tx
          .select({ id: auditLog.id })
          .from(auditLog)
          .where(and(eq(auditLog.action, 'idempotency-test.create'), eq(auditLog.targetId, marker)));
        if (found.length > 0) return undefined;
        const [row] = await tx
          .insert(auditLog)
          .values({ actorId: currentUser(req).id, action: 'idempotency-test.create', targetType: 'thing', targetId: marker })
          .returning({ id: auditLog.id });
        return row;
      });
      res.status(201).json(created ? { id: created.id, marker } : { marker, found: true });
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

  test('a failed (5xx) attempt is kept to retry: the same key runs again', async () => {
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

  test('a 5xx answer keeps its record: the same body runs again, another body is a 422', async () => {
    const key = randomUUID();
    assert.equal((await post('/rejecting-things', { marker: 'a' }, key)).status, 500);
    assert.equal(await recordCount(key), 1);
    const again = await post('/rejecting-things', { marker: 'a' }, key);
    assert.equal(again.status, 500);
    assert.equal(again.headers.get('idempotent-replayed'), null);
    assert.equal((await post('/rejecting-things', { marker: 'b' }, key)).status, 422);
    assert.equal(await recordCount(key), 1);
  });

  test('the scope is the declared route: a trailing slash or another letter case replays the first answer', async () => {
    const marker = randomUUID();
    const key = randomUUID();
    const first = await post('/declared-things', { marker }, key);
    assert.equal(first.status, 201);
    for (const spelling of ['/declared-things/', '/DECLARED-THINGS', '/Declared-Things/']) {
      const again = await post(spelling, { marker }, key);
      assert.equal(again.status, 201, spelling);
      assert.equal(again.headers.get('idempotent-replayed'), 'true', spelling);
      assert.deepEqual(again.body, first.body);
    }
    assert.equal(await thingsCreated(marker), 1);
  });

  test('a repeat while the first request has no answer runs again on a converging route (no 409)', async () => {
    const marker = randomUUID();
    const key = randomUUID();
    const first = post('/converging-things', { marker }, key);
    await slowConverging.started;
    const concurrent = post('/converging-things', { marker }, key);
    await new Promise((resolve) => setTimeout(resolve, 200));
    slowConverging.open();
    const [a, b] = await Promise.all([first, concurrent]);
    assert.equal(a.status, 201);
    assert.equal(b.status, 201);
    assert.equal(b.headers.get('idempotent-replayed'), null);
    // Either run may have created it, never both.
    assert.equal(await thingsCreated(marker), 1);
    const replayed = await post('/converging-things', { marker }, key);
    assert.equal(replayed.headers.get('idempotent-replayed'), 'true');
  });

  test('a record left without an answer (a crashed process) is run again on a converging route', async () => {
    const marker = randomUUID();
    const key = randomUUID();
    const body = { marker };
    // What a process that died mid-request leaves: the claim, no answer.
    await services.deps.sql`insert into idempotency_records (user_id, key, route, request_hash)
      values (${user.user.id}, ${key}, 'POST /converging-things', ${requestHashOf(body)})`;
    slowConverging.open();
    const retried = await post('/converging-things', body, key);
    assert.equal(retried.status, 201);
    assert.equal(await thingsCreated(marker), 1);
    const [record] = await services.deps.sql`select status_code from idempotency_records where key = ${key}`;
    assert.equal(record.status_code, 201);
  });

  async function recordCount(key: string): Promise<number> {
    const rows = await services.deps.sql`select 1 from idempotency_records where key = ${key}`;
    return rows.length;
  }
});

// The middleware's hash of a JSON body of string fields in key order.
function requestHashOf(body: Record<string, string>): string {
  const canonical = `{${Object.keys(body)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${JSON.stringify(body[k])}`)
    .join(',')}}`;
  return createHash('sha256').update(canonical).digest('hex');
}

/** Lets a test hold a handler mid-request: `started` resolves when it is waiting, `open()` lets it go on. */
function gate() {
  let markStarted!: () => void;
  let open!: () => void;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { started, markStarted, opened, open };
}
