import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import type { SavedCard } from '../domain/payment';
import type { Database, Transaction } from './client';
import { paymentMethods, users } from './schema';

/**
 * Reads and writes of the cards saved to users' gateway customers, shared by the API (its routes
 * and webhook) and the payment activities. The gateway is the source of truth for what is
 * attached; these rows are what we show and which card is the default.
 */
export type PaymentMethodRow = typeof paymentMethods.$inferSelect;

type Db = Database | Transaction;

/** The user's cards still attached, the default first, then newest first. */
export async function attachedCards(db: Db, userId: string): Promise<PaymentMethodRow[]> {
  return db
    .select()
    .from(paymentMethods)
    .where(and(eq(paymentMethods.userId, userId), isNull(paymentMethods.detachedAt)))
    .orderBy(desc(paymentMethods.isDefault), desc(paymentMethods.createdAt), desc(paymentMethods.id));
}

/** The user's card with this id while it is attached; another user's card is undefined. */
export async function attachedCard(db: Db, userId: string, id: string): Promise<PaymentMethodRow | undefined> {
  const [row] = await db
    .select()
    .from(paymentMethods)
    .where(and(eq(paymentMethods.id, id), eq(paymentMethods.userId, userId), isNull(paymentMethods.detachedAt)));
  return row;
}

/** The user's default card, if any. */
export async function defaultCard(db: Db, userId: string): Promise<PaymentMethodRow | undefined> {
  const [row] = await db
    .select()
    .from(paymentMethods)
    .where(and(eq(paymentMethods.userId, userId), eq(paymentMethods.isDefault, true), isNull(paymentMethods.detachedAt)));
  return row;
}

/**
 * Records a card attached to the user's customer; saving it again changes nothing and returns
 * the row. The first card a user saves becomes the default. `created` says whether it is new.
 */
export async function saveCard(db: Database, userId: string, card: SavedCard): Promise<{ row: PaymentMethodRow; created: boolean }> {
  return db.transaction(async (tx) => {
    // Serialises saves of one user's cards, so two first cards cannot both become the default.
    await tx.select({ id: users.id }).from(users).where(eq(users.id, userId)).for('update');
    const hasDefault = (await defaultCard(tx, userId)) !== undefined;
    const inserted = await tx
      .insert(paymentMethods)
      .values({
        id: card.id,
        userId,
        brand: card.brand,
        last4: card.last4,
        expMonth: card.expMonth,
        expYear: card.expYear,
        isDefault: !hasDefault,
      })
      .onConflictDoNothing({ target: paymentMethods.id })
      .returning();
    if (inserted.length > 0) return { row: inserted[0], created: true };
    const [existing] = await tx.select().from(paymentMethods).where(eq(paymentMethods.id, card.id));
    return { row: existing, created: false };
  });
}

/** Makes one of the user's attached cards the default (and no other); undefined when it is not theirs. */
export async function makeDefaultCard(db: Database, userId: string, id: string): Promise<PaymentMethodRow | undefined> {
  return db.transaction(async (tx) => {
    await tx.select({ id: users.id }).from(users).where(eq(users.id, userId)).for('update');
    if (!(await attachedCard(tx, userId, id))) return undefined;
    await tx
      .update(paymentMethods)
      .set({ isDefault: false })
      .where(and(eq(paymentMethods.userId, userId), eq(paymentMethods.isDefault, true)));
    const [row] = await tx.update(paymentMethods).set({ isDefault: true }).where(eq(paymentMethods.id, id)).returning();
    return row;
  });
}

/**
 * Marks a card detached (by the API or the gateway's `payment_method.detached` event). When it
 * was the default, the newest card left takes its place. Answers the new default (if it changed)
 * and the user, or undefined when no attached card had this id.
 */
export async function markCardDetached(
  db: Database,
  id: string,
): Promise<{ userId: string; wasDefault: boolean; newDefault: PaymentMethodRow | undefined } | undefined> {
  return db.transaction(async (tx) => {
    const [card] = await tx.select().from(paymentMethods).where(eq(paymentMethods.id, id));
    if (!card) return undefined;
    await tx.select({ id: users.id }).from(users).where(eq(users.id, card.userId)).for('update');
    const [detached] = await tx
      .update(paymentMethods)
      .set({ detachedAt: sql`now()`, isDefault: false })
      .where(and(eq(paymentMethods.id, id), isNull(paymentMethods.detachedAt)))
      .returning();
    if (!detached) return undefined;
    if (!card.isDefault) return { userId: card.userId, wasDefault: false, newDefault: undefined };
    const [next] = await attachedCards(tx, card.userId);
    const newDefault = next && (await tx.update(paymentMethods).set({ isDefault: true }).where(eq(paymentMethods.id, next.id)).returning())[0];
    return { userId: card.userId, wasDefault: true, newDefault };
  });
}

/** The user whose gateway customer this is. */
export async function userOfGatewayCustomer(db: Db, customerId: string): Promise<{ id: string; email: string } | undefined> {
  const [user] = await db.select({ id: users.id, email: users.email }).from(users).where(eq(users.gatewayCustomerId, customerId));
  return user;
}
