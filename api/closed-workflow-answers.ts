/**
 * What a start answers when it reaches a workflow that has already closed: a retry with the same
 * `Idempotency-Key` (its id derives from the key) after the first request's answer was lost. The
 * workflow refuses a second start (WorkflowExecutionAlreadyStartedError), so nothing is charged
 * again; the answer is the first one's outcome as the projection rows stand now.
 */
import { and, asc, eq } from 'drizzle-orm';
import type { Database } from '../db/client';
import { chargedPayment, chargeResultOf } from '../db/payments';
import { payments, subscriptions } from '../db/schema';
import type { ChargeResult } from '../domain/payment';
import type { ActivationResult } from '../workflows/subscription';

/** The parts of a subscribe's activation that its answer is made of. */
export type ActivationOutcome = Pick<ActivationResult, 'outcome' | 'payment'>;

/** A closed subscription workflow's activation, from its row and its first charge. */
export async function activationAsItStands(db: Database, subscriptionId: string): Promise<ActivationOutcome> {
  const [row] = await db.select({ status: subscriptions.status }).from(subscriptions).where(eq(subscriptions.id, subscriptionId)).limit(1);
  if (!row) throw new Error(`subscription ${subscriptionId} has a closed workflow but no projection row`);
  const [first] = await db
    .select()
    .from(payments)
    .where(and(eq(payments.subscriptionId, subscriptionId), eq(payments.kind, 'subscription')))
    .orderBy(asc(payments.createdAt), asc(payments.attempt))
    .limit(1);
  const charge = first && chargeResultOf(first);
  const payment = charge ? { paymentId: charge.paymentId, status: charge.status, failureCode: charge.failureCode, decline: charge.decline } : null;
  if (charge?.status === 'failed' && row.status === 'incomplete') return { outcome: 'declined', payment };
  if (charge?.status === 'pending' && row.status === 'incomplete') return { outcome: 'pending', payment };
  // Subscribed then, with a trial or a paid first period (and maybe canceled since: the subscription shows that).
  return { outcome: row.status === 'trialing' || !charge ? 'trialing' : 'active', payment };
}

/** A closed one-time payment workflow's charge, from its row. */
export async function chargeAsItStands(db: Database, paymentId: string): Promise<ChargeResult> {
  return chargeResultOf(await chargedPayment(db, paymentId));
}
