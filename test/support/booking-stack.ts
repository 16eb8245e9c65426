/**
 * The whole booking path for HTTP tests: the API on a free port and a worker running the hold
 * and booking workflows with the real activities (PostgreSQL, Redis, sandbox gateway, log mailer)
 * on the shared dev server, on a task queue of its own. Real time: use short hold TTLs.
 */
import type { Redis } from 'ioredis';
import { createApp, type AppDeps } from '../../api/app';
import { connectDatabase } from '../../db/client';
import { bundleWorkflows, createWorkers, runWorkers } from '../../platform/worker';
import { connectTestDeps, createTestUser, listen, requestJson, type TestUser } from './api';
import { createBookingTestActivities } from './booking-worker';
import { connectDevServer, uniqueTaskQueues } from './temporal';

export interface BookingStack {
  /** The API's base URL, e.g. http://127.0.0.1:41234. */
  url: string;
  deps: AppDeps;
  /** A staff user, for creating offerings and reading anyone's bookings. */
  staff: TestUser;
  close(): Promise<void>;
}

/** `redis` replaces the Redis of both the API and the worker (an unreachable one, say). */
export async function startBookingStack(options: { redis?: Redis } = {}): Promise<BookingStack> {
  const devServer = await connectDevServer();
  const { deps: baseDeps, close: closeDeps } = await connectTestDeps({ temporal: devServer.client, ...(options.redis ? { redis: options.redis } : {}) });
  const taskQueues = uniqueTaskQueues();
  const deps: AppDeps = { ...baseDeps, taskQueues };
  // The worker's own pool, as in production: claims must not queue behind API reads.
  const workerDatabase = connectDatabase(deps.config.DATABASE_URL, { max: 10 });
  // The production bundle (workflows/index.ts), so a workflow missing from it fails here.
  const workers = await createWorkers({
    connection: devServer.nativeConnection,
    taskQueues: [taskQueues.bookings],
    activities: createBookingTestActivities({ db: workerDatabase.db, redis: deps.redis, config: deps.config, logger: deps.logger }),
    workflowBundle: await bundleWorkflows(),
  });
  const running = runWorkers(workers);
  const server = await listen(createApp(deps));
  const staff = await createTestUser(deps, { role: 'staff', name: 'Test Staff' });
  return {
    url: server.url,
    deps,
    staff,
    close: async () => {
      await server.close();
      // Holds and bookings wait on timers; none may be left running on the shared server.
      await terminateRunningWorkflows(deps, taskQueues.bookings);
      for (const worker of workers) worker.shutdown();
      await running;
      await workerDatabase.close();
      await closeDeps();
      await devServer.close();
    },
  };
}

async function terminateRunningWorkflows(deps: AppDeps, taskQueue: string): Promise<void> {
  const query = `TaskQueue = "${taskQueue}" AND ExecutionStatus = "Running"`;
  const ids: string[] = [];
  for await (const workflow of deps.temporal.workflow.list({ query })) ids.push(workflow.workflowId);
  await Promise.all(ids.map((id) => deps.temporal.workflow.getHandle(id).terminate('test finished').catch(() => undefined)));
}

const DAY = 24 * 60 * 60 * 1000;

/** A body for POST /api/v1/admin/offerings: `unitCount` seats at 2500 usd, starting in 10 days. */
export function offeringBody(overrides: Record<string, unknown> = {}, unitCount = 4) {
  const startsAt = new Date(Date.now() + 10 * DAY);
  return {
    name: 'Evening show',
    kind: 'seating',
    startsAt: startsAt.toISOString(),
    endsAt: new Date(startsAt.getTime() + 2 * 60 * 60 * 1000).toISOString(),
    holdTtl: 'PT5M',
    cancellation: { freeUntil: 'P1D', lateRefundPercent: 50 },
    units: Array.from({ length: unitCount }, (_, i) => ({ label: `A${i + 1}`, amount: 2500, currency: 'usd' })),
    ...overrides,
  };
}

export interface CreatedOffering {
  id: string;
  unitIds: string[];
}

/** Creates an offering over HTTP as staff. */
export async function createOffering(stack: BookingStack, overrides: Record<string, unknown> = {}, unitCount = 4): Promise<CreatedOffering> {
  const { status, body } = await requestJson(`${stack.url}/api/v1/admin/offerings`, {
    body: offeringBody(overrides, unitCount),
    headers: stack.staff.headers,
  });
  if (status !== 201) throw new Error(`offering not created: ${status} ${JSON.stringify(body)}`);
  return { id: body.offering.id, unitIds: body.offering.units.map((u: { id: string }) => u.id) };
}

export function placeHold(stack: BookingStack, user: TestUser, offeringId: string, unitIds: string[]) {
  return requestJson(`${stack.url}/api/v1/bookings/holds`, { body: { offeringId, unitIds }, headers: user.headers });
}

export function createBooking(stack: BookingStack, user: TestUser, holdId: string, paymentMethod = 'pm_card_visa', headers: Record<string, string> = {}) {
  return requestJson(`${stack.url}/api/v1/bookings/create`, { body: { holdId, paymentMethod }, headers: { ...user.headers, ...headers } });
}

/** Each unit's status, by unit id, as GET /availability answers. */
export async function unitStatuses(stack: BookingStack, offeringId: string): Promise<Record<string, string>> {
  const { body } = await requestJson(`${stack.url}/api/v1/offerings/${offeringId}/availability`);
  return Object.fromEntries(body.units.map((u: { id: string; status: string }) => [u.id, u.status]));
}

