/**
 * Regenerates test/histories/*.json: real histories of every workflow type the worker runs
 * (time-skipping server, real activities against DATABASE_URL and REDIS_URL, sandbox gateway)
 * that test/replay.test.ts replays against the current workflow code. The scenarios are in
 * scripts/record-histories/, one file per workflow family; each file name starts with its
 * workflow type. Re-record only when a change is meant to break running workflows (and then
 * guard the old path with `patched()`); otherwise keep the old histories and add new ones.
 *
 *   npx tsx scripts/record-histories.ts [scenario …]   (all scenarios when none is named)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { Redis } from 'ioredis';
import { activitiesFromConfig } from '../activities';
import { connectDatabase, migrateDatabase } from '../db/client';
import { createTimeSkippingEnv, uniqueTaskQueue } from '../test/support/temporal';
import { createLogger } from '../platform/logger';
import { bundleWorkflows, createWorkers } from '../platform/worker';
import { useLocalEndpoints } from './local-endpoints';
import { ensureTemporalTestServer } from './tools';
import { BOOKING_SCENARIOS } from './record-histories/booking';
import { BOOKING_REMINDER_SCENARIOS } from './record-histories/booking-reminders';
import { OFFERING_SCENARIOS } from './record-histories/offering';
import { PAYMENT_SCENARIOS } from './record-histories/payment';
import { PAYMENT_REFUND_SCENARIOS } from './record-histories/payment-refund';
import type { Scenario } from './record-histories/recorder';
import { RETENTION_SCENARIOS } from './record-histories/retention';
import { STAFF_ALERT_SCENARIOS } from './record-histories/staff-alert';
import { SUBSCRIPTION_SCENARIOS } from './record-histories/subscription';
import { SUBSCRIPTION_ACCOUNTS_SCENARIOS } from './record-histories/subscription-accounts';
import { WAITLIST_SCENARIOS } from './record-histories/waitlist';

export const HISTORIES_DIR = path.join(__dirname, '..', 'test', 'histories');

const SCENARIOS: Record<string, Scenario> = {
  ...SUBSCRIPTION_SCENARIOS,
  ...SUBSCRIPTION_ACCOUNTS_SCENARIOS,
  ...PAYMENT_SCENARIOS,
  ...PAYMENT_REFUND_SCENARIOS,
  ...BOOKING_SCENARIOS,
  ...BOOKING_REMINDER_SCENARIOS,
  ...OFFERING_SCENARIOS,
  ...RETENTION_SCENARIOS,
  ...STAFF_ALERT_SCENARIOS,
  ...WAITLIST_SCENARIOS,
};

/** The scenarios named on the command line, or all of them; an unknown name is an error. */
function chosenScenarios(names: string[]): [string, Scenario][] {
  const unknown = names.filter((name) => !(name in SCENARIOS));
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  return Object.entries(SCENARIOS).filter(([name]) => names.length === 0 || names.includes(name));
}

/**
 * Workers and clients name themselves pid@host, and a failure's stack trace names the recording
 * machine's paths; the committed files should not (replay reads neither).
 */
function anonymousIdentity(key: string, value: unknown): unknown {
  if (key === 'identity') return 'history-recorder';
  return key === 'stackTrace' ? '' : value;
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function main(): Promise<void> {
  useLocalEndpoints();
  // Beside `npm start` no test server is named: fetch (or reuse) the one `npm test` runs.
  process.env.TEMPORAL_TEST_SERVER ||= await ensureTemporalTestServer();
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const url = requiredEnv('DATABASE_URL');
  await migrateDatabase(url);
  const database = connectDatabase(url, { max: 4 });
  const redis = new Redis(requiredEnv('REDIS_URL'));
  const env = await createTimeSkippingEnv();
  const logger = createLogger({ LOG_LEVEL: 'warn', NODE_ENV: 'test' });
  const taskQueue = uniqueTaskQueue('record');
  // One worker runs every workflow type, as the worker process's bundle does.
  const [worker] = await createWorkers({
    connection: env.nativeConnection,
    taskQueues: [taskQueue],
    workflowBundle: await bundleWorkflows(),
    activities: activitiesFromConfig({ PAYMENT_GATEWAY: 'sandbox', MAIL_FROM: 'billing@example.test' }, { db: database.db, redis, logger }),
  });
  try {
    await mkdir(HISTORIES_DIR, { recursive: true });
    await worker.runUntil(async () => {
      for (const [name, scenario] of chosenScenarios(process.argv.slice(2))) {
        for (const { file, workflowId, runId } of await scenario({ env, db: database.db, redis, taskQueue })) {
          const history = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
          const target = path.join(HISTORIES_DIR, `${file}.json`);
          // protobufjs' JSON form of the History message; the replay test reads it back with
          // History.fromObject. (historyToJSON from @temporalio/common refuses these objects: with the
          // installed packages it holds a second copy of protobufjs.)
          await writeFile(target, `${JSON.stringify(history, anonymousIdentity, 1)}\n`);
          console.log(`${name}: recorded ${path.relative(process.cwd(), target)} (${history.events?.length} events)`);
        }
      }
    });
  } finally {
    await env.teardown();
    await redis.quit();
    await database.close();
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
