import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import type { Database } from '../../db/client';
import { users } from '../../db/schema';
import type { PaymentGateway } from '../../domain/payment';

/** A customer of its own for each test: tests share one database and never truncate it. */
export async function insertTestUser(db: Database): Promise<{ id: string; email: string }> {
  const email = `payer-${randomUUID()}@example.test`;
  const [user] = await db
    .insert(users)
    .values({ email, passwordHash: 'not-a-real-hash', name: 'Test Payer' })
    .returning({ id: users.id, email: users.email });
  return user;
}

/** Wraps a real gateway and counts the calls that reach it. */
export function countingGateway(inner: PaymentGateway): { gateway: PaymentGateway; calls: { charge: number; refund: number } } {
  const calls = { charge: 0, refund: 0 };
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
