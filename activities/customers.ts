import { and, eq, isNull } from 'drizzle-orm';
import type { Database } from '../db/client';
import { users } from '../db/schema';
import type { PaymentGateway } from '../domain/payment';

export interface CustomerDeps {
  db: Database;
  gateway: PaymentGateway;
}

/** The idempotency key of a user's customer: however often its creation is retried, one customer. */
export function customerIdempotencyKey(userId: string): string {
  return `customer/${userId}`;
}

/**
 * The user's customer at the gateway, created on first need (by the API when a card is saved,
 * or by a charge). Its creation carries a key derived from the user, so two requests racing to
 * create it get the same customer from the gateway; the first id stored wins and is returned to
 * both. No transaction is open while the gateway is called.
 */
export async function ensureGatewayCustomer({ db, gateway }: CustomerDeps, userId: string): Promise<string> {
  const [user] = await db
    .select({ email: users.email, name: users.name, customerId: users.gatewayCustomerId })
    .from(users)
    .where(eq(users.id, userId));
  if (!user) throw new Error(`no user ${userId}`);
  if (user.customerId) return user.customerId;
  const { customerId } = await gateway.createCustomer({
    userId,
    email: user.email,
    name: user.name,
    idempotencyKey: customerIdempotencyKey(userId),
  });
  await db
    .update(users)
    .set({ gatewayCustomerId: customerId })
    .where(and(eq(users.id, userId), isNull(users.gatewayCustomerId)));
  const [stored] = await db.select({ customerId: users.gatewayCustomerId }).from(users).where(eq(users.id, userId));
  return stored.customerId!;
}
