/**
 * Temporal fixtures for tests. `npm test` exports TEMPORAL_TEST_SERVER (the Java time-skipping
 * server's launcher) and TEMPORAL_ADDRESS (a dev server); the SDK's own downloads are not used.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout } from 'node:timers/promises';
import { Client, Connection, type ConnectionPlugin, type WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import type { TaskQueues } from '../../platform/task-queues';
import { registerSearchAttributes } from '../../platform/search-attributes';

/** A fresh time-skipping server: timers fire as soon as no worker has work to do. */
export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  useQuietRuntime();
  const env = await startTimeSkippingServer();
  // Workflows set custom search attributes, which a server refuses unless they are registered.
  await registerSearchAttributes(env.connection, env.namespace ?? 'default');
  return env;
}

/**
 * The SDK gives the Java server 5 s to listen, which a loaded two-core machine (a JVM starting
 * beside other test files) sometimes misses; a second start is given the same chance.
 */
async function startTimeSkippingServer(attempts = 3): Promise<TestWorkflowEnvironment> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await TestWorkflowEnvironment.createTimeSkipping({
        server: { executable: { type: 'existing-path', path: requiredEnv('TEMPORAL_TEST_SERVER') } },
        plugins: [pingRarely],
      });
    } catch (error) {
      if (attempt >= attempts || !String(error).includes('did not start within')) throw error;
    }
  }
}

/**
 * The Java test server (grpc-java) accepts a keepalive ping at most every 5 minutes and closes
 * the connection of a client that pings more often ("too_many_pings"). The client's default of a
 * ping every 30 s got a slow test file's connection closed under its calls in flight, and a
 * retried time-skipping call then left the server's clock locked: the file hung.
 */
const pingRarely: ConnectionPlugin = {
  name: 'test-server-keepalive',
  configureConnection: (options) => ({
    ...options,
    channelArgs: { ...options.channelArgs, 'grpc.keepalive_time_ms': 360_000, 'grpc.keepalive_permit_without_calls': 0 },
  }),
};

export interface DevServerConnection {
  /** For starting, signalling and querying workflows. */
  client: Client;
  /** For `Worker.create({ connection: nativeConnection, … })`. */
  nativeConnection: NativeConnection;
  close(): Promise<void>;
}

/**
 * Connects to the shared dev server (real time, real persistence). Run workers on a
 * `uniqueTaskQueue()` there: other test files share the server.
 */
export async function connectDevServer(): Promise<DevServerConnection> {
  useQuietRuntime();
  const address = requiredEnv('TEMPORAL_ADDRESS');
  const namespace = process.env.TEMPORAL_NAMESPACE || 'default';
  const connection = await Connection.connect({ address });
  await registerSearchAttributes(connection, namespace);
  const nativeConnection = await NativeConnection.connect({ address });
  return {
    client: new Client({ connection, namespace }),
    nativeConnection,
    close: async () => {
      await nativeConnection.close();
      await connection.close();
    },
  };
}

/** A task queue no other test's worker polls, e.g. `billing-3f2c…`. */
export function uniqueTaskQueue(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}

/** A set of task queues (billing, bookings, payments, renewals) no other test's worker polls. */
export function uniqueTaskQueues(): TaskQueues {
  return {
    billing: uniqueTaskQueue('billing'),
    bookings: uniqueTaskQueue('bookings'),
    payments: uniqueTaskQueue('payments'),
    renewals: uniqueTaskQueue('renewals'),
  };
}

/**
 * Workers log every state change at INFO; test output should show failures instead. The
 * runtime is per process and can only be configured before its first use.
 */
function useQuietRuntime(): void {
  if (Runtime.instantiator) return;
  Runtime.install({ logger: new DefaultLogger('WARN') });
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with \`npm test\`, which provides it`);
  return value;
}

/**
 * Waits for a workflow to close without asking for its result: on the time-skipping server,
 * awaiting a result lets time jump to the next timer of any workflow (a booking waits for its
 * offering's end), so tests that must not skip time poll instead.
 */
export async function waitUntilClosed(handle: WorkflowHandle): Promise<void> {
  while ((await handle.describe()).status.name === 'RUNNING') await setTimeout(20);
}
