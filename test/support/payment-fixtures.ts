import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import type { Database } from '../../db/client';
import { users } from '../../db/schema';
import { startTestStack, type TestStack } from './stack';
import type { CancelOutcome, CancelRequest, PaymentGateway } from '../../domain/payment';

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
    // Customers and saved cards are not counted: only the money steps are.
    createCustomer: (request) => inner.createCustomer(request),
    createSetupIntent: (request) => inner.createSetupIntent(request),
    attachPaymentMethod: (request) => inner.attachPaymentMethod(request),
    detachPaymentMethod: (request) => inner.detachPaymentMethod(request),
    retrievePaymentMethod: (paymentMethod) => inner.retrievePaymentMethod(paymentMethod),
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

export type PaymentStack = TestStack;

/** The API and a worker for one-time payments (test/support/stack.ts serving the billing queue). */
export function startPaymentStack(): Promise<PaymentStack> {
  return startTestStack({ serves: ['billing'] });
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
