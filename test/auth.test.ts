import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eq } from 'drizzle-orm';
import express from 'express';
import { SignJWT } from 'jose';
import { requireAuth, requireRole } from '../api/auth';
import { problemHandler } from '../api/problem';
import { requestLogger } from '../api/request-context';
import { users } from '../db/schema';
import { createTestUser, listen, requestJson, startTestApi, type TestApi, type TestServer } from './support/api';

const run = promisify(execFile);
const ROOT = path.join(__dirname, '..');

function uniqueEmail(): string {
  return `auth-${randomUUID()}@example.test`;
}

describe('auth over HTTP', () => {
  let api: TestApi;
  let staffOnly: TestServer;

  before(async () => {
    api = await startTestApi();
    // A route that only staff may call, the way staff routers guard theirs.
    const app = express();
    app.use(requestLogger(api.deps.logger));
    app.get('/staff-only', requireAuth(api.deps), requireRole('staff'), (_req, res) => {
      res.json({ ok: true });
    });
    app.use(problemHandler(api.deps.logger));
    staffOnly = await listen(app);
  });

  after(async () => {
    await staffOnly.close();
    await api.close();
  });

  const signup = (body: unknown) => requestJson(`${api.url}/api/v1/auth/signup`, { body });
  const login = (body: unknown) => requestJson(`${api.url}/api/v1/auth/login`, { body });
  const me = (headers: Record<string, string> = {}) => requestJson(`${api.url}/api/v1/auth/me`, { headers });

  test('signup answers 201 with the user and a token that opens protected routes', async () => {
    const email = uniqueEmail();
    const created = await signup({ email: `  ${email.toUpperCase()} `, password: 'correct horse', name: 'Ada' });

    assert.equal(created.status, 201);
    assert.deepEqual(Object.keys(created.body.user).sort(), ['createdAt', 'email', 'id', 'name', 'role']);
    assert.equal(created.body.user.email, email);
    assert.equal(created.body.user.role, 'customer');
    assert.equal(created.body.user.name, 'Ada');
    assert.ok(!Number.isNaN(Date.parse(created.body.user.createdAt)));

    const current = await me({ authorization: `Bearer ${created.body.token}` });
    assert.equal(current.status, 200);
    assert.deepEqual(current.body.user, created.body.user);
  });

  test('the password is stored as an argon2id hash, never in clear', async () => {
    const email = uniqueEmail();
    await signup({ email, password: 'correct horse', name: 'Ada' });
    const [row] = await api.deps.db.select().from(users).where(eq(users.email, email));
    assert.match(row.passwordHash, /^\$argon2id\$/);
    assert.ok(!row.passwordHash.includes('correct horse'));
  });

  test('login answers 200 with the user and a working token', async () => {
    const email = uniqueEmail();
    const created = await signup({ email, password: 'correct horse', name: 'Ada' });

    const loggedIn = await login({ email: email.toUpperCase(), password: 'correct horse' });
    assert.equal(loggedIn.status, 200);
    assert.deepEqual(loggedIn.body.user, created.body.user);
    assert.equal((await me({ authorization: `Bearer ${loggedIn.body.token}` })).status, 200);
  });

  test('a wrong password and an unknown email get the same 401', async () => {
    const email = uniqueEmail();
    await signup({ email, password: 'correct horse', name: 'Ada' });

    const wrongPassword = await login({ email, password: 'wrong horse' });
    const unknownEmail = await login({ email: uniqueEmail(), password: 'correct horse' });
    assert.equal(wrongPassword.status, 401);
    assert.equal(unknownEmail.status, 401);
    assert.equal(wrongPassword.body.detail, unknownEmail.body.detail);
    assert.equal(wrongPassword.body.token, undefined);
  });

  test('signing up twice with the same email (any case) is a 409', async () => {
    const email = uniqueEmail();
    assert.equal((await signup({ email, password: 'correct horse', name: 'Ada' })).status, 201);

    const again = await signup({ email: ` ${email.toUpperCase()}`, password: 'another one', name: 'Eve' });
    assert.equal(again.status, 409);
    assert.equal(again.body.status, 409);
  });

  test('a malformed signup is a 400 problem naming each bad field', async () => {
    const answer = await signup({ email: 'not-an-email', password: 'short' });

    assert.equal(answer.status, 400);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(answer.body.title, 'Invalid request');
    const names = answer.body.invalidParams.map((p: { name: string }) => p.name).sort();
    assert.deepEqual(names, ['email', 'name', 'password']);
    for (const param of answer.body.invalidParams) assert.equal(typeof param.reason, 'string');
    assert.equal(answer.body.stack, undefined);
  });

  test('a login body that is not JSON is a 400 problem', async () => {
    const response = await fetch(`${api.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"email": ',
    });
    assert.equal(response.status, 400);
    assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const problem = (await response.json()) as { status: number };
    assert.equal(problem.status, 400);
    assert.ok(!JSON.stringify(problem).includes('at '), 'no stack trace in the answer');
  });

  test('a login without a body names both fields', async () => {
    const answer = await login({});
    assert.equal(answer.status, 400);
    assert.deepEqual(answer.body.invalidParams.map((p: { name: string }) => p.name).sort(), ['email', 'password']);
  });

  test('a missing, garbage, forged or expired bearer token is a 401', async () => {
    const { user } = await createTestUser(api.deps);
    const forged = await new SignJWT({ email: user.email, role: 'staff' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user.id)
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('a-different-secret-that-is-long-enough'));
    const expired = await new SignJWT({ email: user.email, role: 'customer' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user.id)
      .setIssuer('billing-orchestrator')
      .setAudience('billing-orchestrator-api')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(new TextEncoder().encode(api.deps.config.JWT_SECRET));

    for (const authorization of [undefined, 'Bearer garbage', 'Basic dXNlcjpwYXNz', `Bearer ${forged}`, `Bearer ${expired}`]) {
      const answer = await me(authorization ? { authorization } : {});
      assert.equal(answer.status, 401, `for ${authorization}`);
      assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.equal(answer.headers.get('www-authenticate'), 'Bearer');
    }
  });

  test('a token accepted before (so kept as verified) is refused from its exp on', async () => {
    const { user } = await createTestUser(api.deps);
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await new SignJWT({ email: user.email, role: 'customer' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user.id)
      .setIssuer('billing-orchestrator')
      .setAudience('billing-orchestrator-api')
      .setExpirationTime(exp)
      .sign(new TextEncoder().encode(api.deps.config.JWT_SECRET));
    const authorization = `Bearer ${token}`;
    assert.equal((await me({ authorization })).status, 200);
    assert.equal((await me({ authorization })).status, 200, 'accepted again');
    while (Math.floor(Date.now() / 1000) < exp) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal((await me({ authorization })).status, 401);
  });

  test('once a token was accepted, copies of it with another signature or other claims are still refused', async () => {
    const { user, token } = await createTestUser(api.deps);
    assert.equal((await me({ authorization: `Bearer ${token}` })).status, 200);
    const [header, claims, signature] = token.split('.');
    // A character in the middle of the signature: the last one's low bits may not count.
    const middle = Math.floor(signature.length / 2);
    const otherSignature = `${signature.slice(0, middle)}${signature[middle] === 'A' ? 'B' : 'A'}${signature.slice(middle + 1)}`;
    const asStaff = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(claims, 'base64url').toString()), role: 'staff', sub: user.id })).toString(
      'base64url',
    );
    for (const copy of [`${header}.${claims}.${otherSignature}`, `${header}.${asStaff}.${signature}`, `${header}.${claims}.`]) {
      assert.equal((await me({ authorization: `Bearer ${copy}` })).status, 401, copy);
    }
    assert.equal(
      (await requestJson(`${staffOnly.url}/staff-only`, { headers: { authorization: `Bearer ${header}.${asStaff}.${signature}` } })).status,
      401,
    );
    assert.equal((await me({ authorization: `Bearer ${token}` })).status, 200, 'the token itself still works');
  });

  test('a staff-only route answers 403 to a customer and 200 to staff', async () => {
    const customer = await createTestUser(api.deps);
    const staff = await createTestUser(api.deps, { role: 'staff' });

    const refused = await requestJson(`${staffOnly.url}/staff-only`, { headers: customer.headers });
    assert.equal(refused.status, 403);
    assert.match(refused.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal((await requestJson(`${staffOnly.url}/staff-only`, { headers: staff.headers })).status, 200);
    assert.equal((await requestJson(`${staffOnly.url}/staff-only`)).status, 401);
  });

  describe('npm run manage -- create-staff', () => {
    const manage = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
      run(process.execPath, ['--import', 'tsx', 'scripts/manage.ts', ...args], { cwd: ROOT, env });

    test('creates a staff user who can log in as staff', async () => {
      const email = uniqueEmail();
      const { stdout } = await manage(['create-staff', '--email', email, '--password', 'staff password', '--name', 'Sam']);
      assert.match(stdout, /Created staff user/);

      const loggedIn = await login({ email, password: 'staff password' });
      assert.equal(loggedIn.status, 200);
      assert.equal(loggedIn.body.user.role, 'staff');
      assert.equal(loggedIn.body.user.name, 'Sam');
      const guarded = await requestJson(`${staffOnly.url}/staff-only`, {
        headers: { authorization: `Bearer ${loggedIn.body.token}` },
      });
      assert.equal(guarded.status, 200);
    });

    test('promotes an existing customer and sets the given password', async () => {
      const email = uniqueEmail();
      await signup({ email, password: 'customer password', name: 'Cy' });

      const { stdout } = await manage(['create-staff', '--email', email, '--password', 'new staff password']);
      assert.match(stdout, /existing user/);
      const loggedIn = await login({ email, password: 'new staff password' });
      assert.equal(loggedIn.body.user.role, 'staff');
      assert.equal(loggedIn.body.user.name, 'Cy');
    });

    test('explains what is missing and exits non-zero', async () => {
      await assert.rejects(manage(['create-staff', '--email', uniqueEmail()]), (err: { code: number; stderr: string }) => {
        assert.equal(err.code, 2);
        assert.match(err.stderr, /--password: is required/);
        assert.match(err.stderr, /Usage: npm run manage/);
        return true;
      });
    });

    test('needs only DATABASE_URL from the environment', async () => {
      const email = uniqueEmail();
      const env = { PATH: process.env.PATH, DATABASE_URL: process.env.DATABASE_URL };
      await manage(['create-staff', '--email', email, '--password', 'staff password'], env);
      await assert.rejects(
        manage(['create-staff', '--email', uniqueEmail(), '--password', 'staff password'], { PATH: process.env.PATH }),
        (err: { code: number; stderr: string }) => {
          assert.equal(err.code, 1);
          assert.match(err.stderr, /DATABASE_URL/);
          return true;
        },
      );
    });
  });
});
