import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { Database, Transaction } from '../../db/client';
import { sandboxCustomers, sandboxPaymentMethods } from '../../db/schema';
import { GatewayRequestRejectedError, type SavedCard } from '../../domain/payment';
import { isTestToken, sandboxCardOf } from './sandbox-cards';
import { PAYMENT_METHOD_UNEXPECTED_STATE } from './stripe-answers';
import { sandboxId } from './sandbox-intents';

/**
 * The sandbox's payment methods and customers, with Stripe's rules for them: a test token
 * becomes a new method on each use; a method used once without a customer, or detached, may
 * not be used again; a method belongs to one customer.
 */

export type SandboxPaymentMethodRow = typeof sandboxPaymentMethods.$inferSelect;
type Executor = Database | Transaction;

export const SANDBOX_PAYMENT_METHOD_PREFIX = 'pm_sandbox_';

export function savedCardOfRow(row: SandboxPaymentMethodRow): SavedCard {
  return { id: row.id, brand: row.brand, last4: row.last4, expMonth: row.expMonth, expYear: row.expYear, customerId: row.customerId };
}

export function noSuchPaymentMethod(paymentMethod: string): GatewayRequestRejectedError {
  return new GatewayRequestRejectedError(`No such PaymentMethod: '${paymentMethod}'`, 'resource_missing');
}

/** Stripe's refusal of a method that was used once without a customer, or detached. */
export function isUsedUp(row: SandboxPaymentMethodRow): boolean {
  return row.detachedAt !== null || (row.customerId === null && row.chargesWithoutCustomer > 0);
}

export async function customerExists(db: Executor, customerId: string): Promise<boolean> {
  const [row] = await db.select({ id: sandboxCustomers.id }).from(sandboxCustomers).where(eq(sandboxCustomers.id, customerId));
  return row !== undefined;
}

export async function requireCustomer(db: Executor, customerId: string): Promise<void> {
  if (!(await customerExists(db, customerId))) {
    throw new GatewayRequestRejectedError(`No such customer: '${customerId}'`, 'resource_missing');
  }
}

/**
 * A new payment method made from a test token, as Stripe makes one on each use of the token.
 * `id` is given where the use has an idempotency key (a charge), so its retry finds the same
 * method; otherwise (an attach, which has none) it is new.
 */
export async function methodFromToken(
  tx: Transaction,
  token: string,
  fields: { id?: string; customerId: string | null },
): Promise<SandboxPaymentMethodRow> {
  const card = sandboxCardOf(token);
  if (!card) throw noSuchPaymentMethod(token);
  const id = fields.id ?? sandboxId('pm', randomUUID());
  await tx
    .insert(sandboxPaymentMethods)
    .values({ id, token, customerId: fields.customerId, brand: card.brand, last4: card.last4, expMonth: card.expMonth, expYear: card.expYear })
    .onConflictDoNothing({ target: sandboxPaymentMethods.id });
  return (await lockedMethod(tx, id))!;
}

/** The stored method, locked until the transaction ends, so two uses of it are judged one after the other. */
export async function lockedMethod(tx: Transaction, paymentMethod: string): Promise<SandboxPaymentMethodRow | undefined> {
  if (!paymentMethod.startsWith(SANDBOX_PAYMENT_METHOD_PREFIX)) return undefined;
  const [row] = await tx.select().from(sandboxPaymentMethods).where(eq(sandboxPaymentMethods.id, paymentMethod)).for('update');
  return row;
}

/** Attaches a token (as a new method) or a stored method to a customer, refusing what Stripe refuses. */
export async function attachMethod(tx: Transaction, customerId: string, paymentMethod: string): Promise<SandboxPaymentMethodRow> {
  await requireCustomer(tx, customerId);
  if (isTestToken(paymentMethod)) return methodFromToken(tx, paymentMethod, { customerId });
  const row = await lockedMethod(tx, paymentMethod);
  if (!row) throw noSuchPaymentMethod(paymentMethod);
  if (isUsedUp(row)) {
    throw new GatewayRequestRejectedError(
      `This PaymentMethod (${row.id}) was previously used without being attached to a Customer or was detached from a Customer, and may not be used again.`,
      PAYMENT_METHOD_UNEXPECTED_STATE,
    );
  }
  if (row.customerId === customerId) return row;
  if (row.customerId !== null) {
    throw new GatewayRequestRejectedError(
      `The payment method you provided (${row.id}) has already been attached to a customer.`,
      PAYMENT_METHOD_UNEXPECTED_STATE,
    );
  }
  return attachStored(tx, row.id, customerId);
}

export async function attachStored(tx: Transaction, id: string, customerId: string): Promise<SandboxPaymentMethodRow> {
  const [attached] = await tx.update(sandboxPaymentMethods).set({ customerId }).where(eq(sandboxPaymentMethods.id, id)).returning();
  return attached;
}
