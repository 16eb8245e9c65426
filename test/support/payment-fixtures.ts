import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Worker } from '@temporalio/worker';
import { createApp, type AppDeps } from '../../api/app';
import { createMailer, createNotificationActivities } from '../../activities/notification';
import { createPaymentActivities } from '../../activities/payment';
import { SandboxGateway } from '../../activities/payment-gateway';
import type { Database } from '../../db/client';
import { users } from '../../db/schema';
import type { CancelOutcome, CancelRequest, PaymentGateway } from '../../domain/payment';
import { connectTestDeps, listen } from './api';
import { connectDevServer, uniqueTaskQueues } from './temporal';

export interface GatewayScript {
  /**
   * The answer to a cancel instead of the real gateway's (which is still asked first), e.g. a
   * charge the customer completed just before it could be canceled. Undefined: the real answer.
   */
  cancelAnswer?: (request: CancelRequest) => CancelOutcome | undefined | Promise<CancelOutcome | undefined>;
}

/** Wraps a real gateway and counts the calls that reach it; `script` may override its cancel answers. */
export function countingGateway(
  inner: PaymentGateway,
  script: GatewayScript = {},
): { gateway: PaymentGateway; calls: { charge: number; refund: number; cancel: number } } {
  const calls = { charge: 0, refund: 0, cancel: 0 };
  const gateway: PaymentGateway = {
    name: inner.name,
    charge: (request) => {
      calls.charge += 1;
      return inner.charge(request);
    },
    refund: (request) => {
      calls.refund += 1;
      return inner.refund(request);
    },
    cancel: async (request) => {
      calls.cancel += 1;
      const real = await inner.cancel(request);
      return (await script.cancelAnswer?.(request)) ?? real;
    },
  };
  return { gateway, calls };
}

/** A loopback port with nothing listening on it, to stand for an unreachable service. */
export async function closedLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address !== 'object') throw new Error('no port was assigned');
  return address.port;
}

export interface PaymentStack {
  /** The API's base URL, e.g. http://127.0.0.1:41234. */
  url: string;
  deps: AppDeps;
  close(): Promise<void>;
}

/**
 * The API on a free port and a worker for the payment workflow and its activities (sandbox
 * gateway, log mailer) on the shared dev server, on a task queue of their own.
 */
export async function startPaymentStack(): Promise<PaymentStack> {
  const devServer = await connectDevServer();
  const { deps: baseDeps, close: closeDeps } = await connectTestDeps({ temporal: devServer.client });
  const deps: AppDeps = { ...baseDeps, taskQueues: uniqueTaskQueues() };
  const { db, logger } = deps;
  const worker = await Worker.create({
    connection: devServer.nativeConnection,
    taskQueue: deps.taskQueues!.billing,
    workflowsPath: require.resolve('../../workflows/payment'),
    activities: {
      ...createPaymentActivities({ db, gateway: new SandboxGateway(), logger }),
      ...createNotificationActivities({ db, mailer: createMailer({ MAIL_FROM: 'billing@example.test' }, logger), logger }),
    },
  });
  const running = worker.run();
  const server = await listen(createApp(deps));
  return {
    url: server.url,
    deps,
    close: async () => {
      await server.close();
      worker.shutdown();
      await running;
      await closeDeps();
      await devServer.close();
    },
  };
}

/** A customer row of its own for activity and workflow tests that need no login. */
export async function insertTestUser(db: Database): Promise<{ id: string; email: string }> {
  const email = `payer-${randomUUID()}@example.test`;
  const [user] = await db
    .insert(users)
    .values({ email, passwordHash: 'not-a-real-hash', name: 'Test Payer' })
    .returning({ id: users.id, email: users.email });
  return user;
}
