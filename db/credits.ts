import { and, asc, eq, gt, sql } from 'drizzle-orm';
import { creditRestoreKey, creditSpendKey, creditToApply, type CreditBalance, type CreditGrant } from '../domain/credit';
import { isChargeableAmount, normalizeCurrency } from '../domain/money';
import type { Database, Transaction } from './client';
import { creditBalances, creditEntries } from './schema';

/**
 * Customers' credit balances and their ledger. Each money step is one transaction that writes a
 * ledger entry (unique idempotency key) and moves the balance only when that entry was new, so a
 * repeat of the step (an activity retried, a request sent again) changes nothing; the balance
 * row's CHECK (amount >= 0) and its row lock keep it from going negative or being spent twice.
 */

export class InvalidCreditError extends Error {
  override readonly name = 'InvalidCreditError';
}

/** The balance after a grant, and whether this call added it (false: its key had added it before). */
export interface GrantedCredit extends CreditBalance {
  granted: boolean;
}

/**
 * Adds credit to a balance once per `idempotencyKey`: the ledger entry is inserted (ON CONFLICT
 * DO NOTHING) and, only when it was, the balance grows, in one transaction. A repeat answers the
 * balance as it is now, adding nothing. Inside a caller's transaction it runs as a savepoint.
 */
export async function grantCredit(db: Database | Transaction, grant: CreditGrant): Promise<GrantedCredit> {
  if (!isChargeableAmount(grant.amount)) throw new InvalidCreditError(`a credit must be a positive whole number of minor units, got ${grant.amount}`);
  const currency = normalizeCurrency(grant.currency);
  return db.transaction(async (tx) => {
    const [entry] = await tx
      .insert(creditEntries)
      .values({
        userId: grant.userId,
        currency,
        amount: grant.amount,
        kind: grant.kind,
        paymentId: grant.paymentId ?? null,
        reason: grant.reason ?? null,
        actorId: grant.actorId ?? null,
        idempotencyKey: grant.idempotencyKey,
      })
      .onConflictDoNothing({ target: creditEntries.idempotencyKey })
      .returning({ id: creditEntries.id });
    if (!entry) return { currency, amount: await balanceOf(tx, grant.userId, currency), granted: false };
    return { currency, amount: await addToBalance(tx, grant.userId, currency, grant.amount), granted: true };
  });
}

/** The user's balances that hold something (zero ones are left out), by currency. */
export async function balancesOf(db: Database | Transaction, userId: string): Promise<CreditBalance[]> {
  return db
    .select({ currency: creditBalances.currency, amount: creditBalances.amount })
    .from(creditBalances)
    .where(and(eq(creditBalances.userId, userId), gt(creditBalances.amount, 0)))
    .orderBy(asc(creditBalances.currency));
}

/** One balance (0 when the user never had credit in the currency). */
export async function balanceOf(db: Database | Transaction, userId: string, currency: string): Promise<number> {
  const [row] = await db
    .select({ amount: creditBalances.amount })
    .from(creditBalances)
    .where(and(eq(creditBalances.userId, userId), eq(creditBalances.currency, normalizeCurrency(currency))));
  return row?.amount ?? 0;
}

export interface CreditSpend {
  userId: string;
  currency: string;
  /** The most to use: the charge's amount. */
  upTo: number;
  /** The charge it pays for; its ledger key is `spend/<paymentId>`. */
  paymentId: string;
}

/**
 * Uses the balance for a charge, inside the transaction that claims the charge's row: the balance
 * row is locked (SELECT … FOR UPDATE), so a racing charge waits and then sees what is left. Uses
 * min(balance, upTo), records it as a `spent` entry keyed `spend/<paymentId>` (unique: one per
 * payment; a repeat answers what the first took) and answers it. 0 when there is no credit.
 */
export async function spendCredit(tx: Transaction, spend: CreditSpend): Promise<number> {
  const currency = normalizeCurrency(spend.currency);
  const [balance] = await tx
    .select({ amount: creditBalances.amount })
    .from(creditBalances)
    .where(and(eq(creditBalances.userId, spend.userId), eq(creditBalances.currency, currency)))
    .for('update');
  const apply = creditToApply(balance?.amount ?? 0, spend.upTo);
  if (apply === 0) return 0;
  const key = creditSpendKey(spend.paymentId);
  const [entry] = await tx
    .insert(creditEntries)
    .values({ userId: spend.userId, currency, amount: -apply, kind: 'spent', paymentId: spend.paymentId, idempotencyKey: key })
    .onConflictDoNothing({ target: creditEntries.idempotencyKey })
    .returning({ id: creditEntries.id });
  if (!entry) return -(await entryAmount(tx, key));
  // The CHECK (amount >= 0) would refuse an overdraft; the lock above means none is attempted.
  await tx
    .update(creditBalances)
    .set({ amount: sql`${creditBalances.amount} - ${apply}`, updatedAt: new Date() })
    .where(and(eq(creditBalances.userId, spend.userId), eq(creditBalances.currency, currency)));
  return apply;
}

/**
 * Gives back the credit a charge spent, in the transaction that records the charge as failed (or
 * as refunded in full): keyed `restore/<paymentId>`, unique, so at most once whoever calls it. Does
 * nothing for a charge that spent none. Answers what was given back by this call.
 */
export async function restoreCredit(tx: Transaction, paymentId: string): Promise<number> {
  const [spent] = await tx
    .select()
    .from(creditEntries)
    .where(eq(creditEntries.idempotencyKey, creditSpendKey(paymentId)));
  if (!spent) return 0;
  const [entry] = await tx
    .insert(creditEntries)
    .values({
      userId: spent.userId,
      currency: spent.currency,
      amount: -spent.amount,
      kind: 'restored',
      paymentId,
      reason: 'The charge that used it did not go through',
      idempotencyKey: creditRestoreKey(paymentId),
    })
    .onConflictDoNothing({ target: creditEntries.idempotencyKey })
    .returning({ id: creditEntries.id });
  if (!entry) return 0;
  await addToBalance(tx, spent.userId, spent.currency, -spent.amount);
  return -spent.amount;
}

// Adds (delta > 0), creating the row on a user's first credit in the currency; answers the balance after.
async function addToBalance(tx: Transaction, userId: string, currency: string, delta: number): Promise<number> {
  const [row] = await tx
    .insert(creditBalances)
    .values({ userId, currency, amount: delta })
    .onConflictDoUpdate({
      target: [creditBalances.userId, creditBalances.currency],
      set: { amount: sql`${creditBalances.amount} + ${delta}`, updatedAt: new Date() },
    })
    .returning({ amount: creditBalances.amount });
  return row.amount;
}

async function entryAmount(tx: Transaction, idempotencyKey: string): Promise<number> {
  const [row] = await tx.select({ amount: creditEntries.amount }).from(creditEntries).where(eq(creditEntries.idempotencyKey, idempotencyKey));
  return row.amount;
}
