/**
 * The README's walk-throughs (subscriptions, the signed webhook, the credit balance, bookings) run as printed, with
 * bash, against the real API and worker processes, so the README cannot drift from the API. Only
 * the address changes (`localhost:3000` becomes this test's API) and `.data/`, which `npm start`
 * keeps, becomes a temporary folder holding the secrets file the webhook block reads.
 *
 * The processes serve the production task queue names, so they get a Temporal namespace of their
 * own on the shared dev server: no other test's worker can take their tasks.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { readLocalEndpoints, recordLocalEndpoints, forgetLocalEndpoints, useLocalEndpoints } from '../scripts/local-endpoints';
import { freePort, ProcessGroup } from '../scripts/services';
import { ensureWalkthroughTools, REPO_ROOT } from '../scripts/tools';
import { createNamespace } from './support/app-process';

const README = path.join(REPO_ROOT, 'README.md');
const WALKTHROUGH_SECTIONS = [
  '## Payments and subscriptions: saved cards, 3-D Secure and a walk-through',
  '## Bookings: offerings, holds and the booking saga',
];
const READY_TIMEOUT_MS = 120_000;

/** The ```sh blocks of the named `## ` sections, in the README's order. */
function shellBlocksOf(markdown: string, headings: string[]): string[] {
  return headings.flatMap((heading) => {
    const start = markdown.indexOf(`\n${heading}\n`);
    assert.ok(start >= 0, `README has no section "${heading}"`);
    const next = markdown.indexOf('\n## ', start + heading.length + 2);
    const section = markdown.slice(start, next < 0 ? undefined : next);
    return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((match) => match[1]);
  });
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = READY_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000}s`);
    await sleep(250);
  }
}

function runBash(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', script], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('close', (code) => resolve({ code, output: Buffer.concat(chunks).toString() }));
  });
}

describe('README walk-through', () => {
  const processes = new ProcessGroup();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'readme-walkthrough-'));
  let apiUrl = '';

  before(async () => {
    assert.deepEqual(await ensureWalkthroughTools(), [], 'curl, jq, uuidgen and openssl are installed');
    const namespace = `readme-${randomUUID()}`;
    await createNamespace(process.env.TEMPORAL_ADDRESS!, namespace);
    const port = await freePort();
    apiUrl = `http://localhost:${port}`;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(port),
      TEMPORAL_NAMESPACE: namespace,
      WORKER_METRICS_ADDRESS: `127.0.0.1:${await freePort()}`,
    };
    const workerLog = path.join(dataDir, 'worker.log');
    processes.spawn('readme worker', process.execPath, ['--import', 'tsx', 'workers/worker.ts'], { env, logFile: workerLog });
    processes.spawn('readme api', process.execPath, ['--import', 'tsx', 'workers/api.ts'], { env, logFile: path.join(dataDir, 'api.log') });
    await eventually('the API', async () => ((await fetch(`${apiUrl}/readyz`)).ok ? true : undefined));
    await eventually('the worker', async () => (readFileSync(workerLog, 'utf8').includes('workers running') ? true : undefined));
  });

  after(async () => {
    await processes.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('the subscription, 3-D Secure, webhook and booking blocks run as printed and do what they say', async () => {
    const blocks = shellBlocksOf(readFileSync(README, 'utf8'), WALKTHROUGH_SECTIONS);
    assert.equal(
      blocks.length,
      8,
      'the subscription walk-through, 3-D Secure, the webhook, the credit balance, coupons and invoices, the bookings, check-in, and a series with its waitlist',
    );
    // What `npm start` generates into .data/secrets.json; the API verifies webhooks with it.
    writeFileSync(
      path.join(dataDir, 'secrets.json'),
      JSON.stringify({ JWT_SECRET: 'unused', STRIPE_WEBHOOK_SECRET: process.env.STRIPE_WEBHOOK_SECRET }),
    );
    const probe = path.join(dataDir, 'probe.json');
    const script = [
      'set -euo pipefail',
      ...blocks.map((block) => block.replaceAll('localhost:3000', new URL(apiUrl).host).replaceAll('.data/', `${dataDir}/`)),
      // The variables the blocks set, for the assertions below.
      `jq -n --arg customer "$CUSTOMER" --arg staff "$STAFF" --arg plan "$PLAN" --arg team "$TEAM" --arg card "$CARD" --arg sub "$SUB" ` +
        `--arg upgrade "$UPGRADE" --arg pending "$PENDING" ` +
        `--arg oneTime "$ONE_TIME" --arg offering "$OFFERING" --arg booking "$BOOKING" --arg code "$CODE" --arg graceBooking "$GRACE_BOOKING" '$ARGS.named' > '${probe}'`,
    ].join('\n');
    // A second terminal has no webhook secret: the block must find it in the secrets file.
    const { STRIPE_WEBHOOK_SECRET: _secret, ...shellEnv } = process.env;
    const { code, output } = await runBash(script, shellEnv);
    assert.equal(code, 0, `the walk-through failed:\n${output}`);

    const vars = JSON.parse(readFileSync(probe, 'utf8')) as Record<string, string>;
    for (const [name, value] of Object.entries(vars)) assert.ok(value && value !== 'null', `${name} is set (${value})\n${output}`);
    assert.match(output, /Created staff user ops@example\.com/, 'npm run manage created the staff user');
    assert.match(output, /\{"received":true,"duplicate":false\}/, 'the signed webhook was accepted');
    assert.match(output, /^confirmed$/m, 'the booking was confirmed');
    assert.match(output, /^checked_in$/m, 'the second booking was checked in by its confirmation code');
    assert.match(output, /^The booking was already checked in at \S+\.$/m, 'a second check-in was refused, saying when');
    assert.match(output, /^\{"amount":5500,"difference":1000\}$/m, 'the booking moved to the dearer night of its series, charging the difference');
    assert.match(output, /^\{"position":1,"status":"waiting"\}$/m, "Grace joined the sold-out night's waitlist");
    assert.match(
      output,
      /^\{"status":"canceled","refundedAmount":5500\}$/m,
      "the business's cancel refunded Grace's booking (her waitlist offer) in full",
    );
    assert.match(output, /\{"status":"succeeded","creditApplied":300,"gatewayPaymentId":null\}/, 'the credit paid for the payment');
    assert.match(output, /\{"balances":\[\{"currency":"eur","amount":200\}\]\}/, 'what the credit left');
    assert.match(output, /^\{"valid":true,"discount":\{"amount":500,"currency":"usd"\}\}$/m, 'the coupon validated');
    assert.match(output, /^\{"discount":2,"paid":1499\}$/m, 'the first period charged 25 % off, two periods left');
    assert.match(output, /^\{"referredCount":1,"creditEarned":\[\{"currency":"usd","amount":500\}\]\}$/m, 'the referrer earned the credit');
    assert.match(output, /^\{"number":"INV-\d{4}-\d{6}","status":"paid","subtotal":1999,"discount":500,"tax":0,"total":1499\}$/m, 'the invoice');
    assert.match(output, /^%PDF-$/m, 'the invoice as a PDF');
    assert.match(output, /^\{"checked":\{"customers":1,"payments":1,"invoices":1\},"differences":\[\]\}$/m, "Grace's books balance");

    const get = async (route: string) => {
      const response = await fetch(`${apiUrl}/api/v1${route}`, { headers: { authorization: `Bearer ${vars.customer}` } });
      assert.equal(response.status, 200, `GET ${route}`);
      return (await response.json()) as Record<string, any>;
    };
    const plans = (await get('/subscriptions/plans')).plans as { id: string; code: string; amount: number }[];
    assert.deepEqual(plans.find((plan) => plan.id === vars.plan)?.code, 'pro-monthly');
    const visa = (await get(`/subscriptions/${vars.sub}`)).subscription;
    assert.deepEqual([visa.status, visa.cancelAtPeriodEnd], ['active', true], 'subscribed, then cancelled at period end');
    assert.deepEqual([visa.planId, visa.resumesAt, visa.scheduledChange], [vars.team, null, null], 'upgraded now; the pause withdrawn');
    assert.match(output, /^\{"credit":\d+,"charge":\d+,"net":\d+,"currency":"usd","periodEnd":"[^"]+"\}$/m, 'the proration was printed');
    assert.match(output, /^\{"status":"active","payment":null\}$/m, 'the resume withdrew the pause, charging nothing');
    const upgrade = (await get(`/payments/${vars.upgrade}`)).payment;
    assert.deepEqual(
      [upgrade.kind, upgrade.status, upgrade.refundedAmount, upgrade.subscriptionId],
      ['subscription', 'succeeded', 500, vars.sub],
      'the upgrade charged its net, then staff refunded 5.00 of it',
    );
    const cards = (await get('/payment-methods')).paymentMethods as { id: string; brand: string; isDefault: boolean }[];
    assert.deepEqual(
      cards.find((card) => card.id === vars.card),
      { ...cards.find((card) => card.id === vars.card), brand: 'visa', isDefault: true },
      'the saved card is the default',
    );
    const authenticated = await eventually(
      'the authentication activates the pending subscription',
      async () => {
        const pending = (await get(`/subscriptions/${vars.pending}`)).subscription;
        return pending.status === 'active' ? pending : undefined;
      },
      30_000,
    );
    assert.equal(authenticated.status, 'active');
    const settled = await eventually(
      'the signed webhook settles the one-time payment',
      async () => {
        const payment = (await get(`/payments/${vars.oneTime}`)).payment;
        return payment.status === 'succeeded' ? payment : undefined;
      },
      30_000,
    );
    assert.equal(settled.amount, 1250);
    assert.equal((await get(`/bookings/${vars.booking}`)).booking.status, 'canceled', 'booked, then cancelled');
  });
});

describe("npm start's endpoints file", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'endpoints-'));
  const file = path.join(dir, 'endpoints.json');
  const endpoints = {
    API_URL: 'http://localhost:3000',
    TEMPORAL_UI_URL: 'http://localhost:8233',
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5999/billing',
    REDIS_URL: 'redis://127.0.0.1:6999',
    TEMPORAL_ADDRESS: '127.0.0.1:7233',
  };
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('fills only the variables the environment lacks, while its writer runs', () => {
    recordLocalEndpoints(endpoints, file);
    const env: NodeJS.ProcessEnv = { REDIS_URL: 'redis://elsewhere:6379' };
    assert.deepEqual(useLocalEndpoints(env, file).sort(), ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'TEMPORAL_UI_URL']);
    assert.equal(env.DATABASE_URL, endpoints.DATABASE_URL);
    assert.equal(env.REDIS_URL, 'redis://elsewhere:6379', 'a variable already set wins');
    forgetLocalEndpoints(file);
    assert.equal(readLocalEndpoints(file), undefined, 'removed when npm start stops');
  });

  test('ignores a file whose writer is gone', () => {
    recordLocalEndpoints(endpoints, file);
    const record = JSON.parse(readFileSync(file, 'utf8')) as { pid: number };
    // A pid above the kernel's limit (4194304) names no process.
    writeFileSync(file, JSON.stringify({ ...record, pid: 99_999_999 }));
    const env: NodeJS.ProcessEnv = {};
    assert.deepEqual(useLocalEndpoints(env, file), []);
    assert.equal(env.DATABASE_URL, undefined);
  });
});
