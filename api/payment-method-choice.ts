import { eq } from 'drizzle-orm';
import { paymentMethodUpdatedSignal } from '../workflows/subscription';
import { ensureGatewayCustomer } from '../activities/customers';
import { attachedCard, defaultCard, saveCard, type PaymentMethodRow } from '../db/payment-methods';
import { paymentMethods } from '../db/schema';
import { liveSubscriptionsOf } from '../db/subscriptions';
import { GatewayRequestRejectedError } from '../domain/payment';
import type { AppDeps } from './deps';
import { HttpProblem } from './problem';

type ChoiceDeps = Pick<AppDeps, 'db' | 'gateway' | 'temporal' | 'logger'>;

/**
 * The saved card a charge of the user will use: the one given, or the user's default when none
 * is. A payment method id already saved to the user is used as it is; any other token (a
 * `pm_…` from Stripe.js, a test card such as `pm_card_visa`) is attached to the user's customer
 * first, as Stripe requires of a method charged more than once. `field` names the body field in
 * the 400/422 answers.
 */
export async function chargeablePaymentMethod(deps: ChoiceDeps, userId: string, given: string | undefined, field = 'paymentMethod'): Promise<string> {
  if (given === undefined) {
    const card = await defaultCard(deps.db, userId);
    if (!card) {
      // Well-formed (the field is optional) but nothing to charge: a 422 naming it, like a plan
      // that is not on sale, so the answer says it is the customer's state, not the request's shape.
      throw new HttpProblem(422, 'No payment method', `${field}: Required: you have no default payment method`, {
        invalidParams: [{ name: field, reason: 'Required: you have no default payment method; save one (POST /api/v1/payment-methods) or give one' }],
      });
    }
    return card.id;
  }
  return (await saveToCustomer(deps, userId, given, field)).row.id;
}

/**
 * Attaches a payment method to the user's customer and records the card; one the user has saved
 * already is returned as it is (`created: false`). Another user's card, or one the gateway
 * refuses to attach, is a 422 naming `field`.
 */
export async function saveToCustomer(
  deps: ChoiceDeps,
  userId: string,
  paymentMethod: string,
  field = 'paymentMethod',
): Promise<{ row: PaymentMethodRow; created: boolean }> {
  const saved = await attachedCard(deps.db, userId, paymentMethod);
  if (saved) return { row: saved, created: false };
  const [elsewhere] = await deps.db.select({ userId: paymentMethods.userId }).from(paymentMethods).where(eq(paymentMethods.id, paymentMethod));
  if (elsewhere) throw unusablePaymentMethod(field, 'Not one of your payment methods');
  const customerId = await ensureGatewayCustomer(deps, userId);
  try {
    const card = await deps.gateway.attachPaymentMethod({ customerId, paymentMethod });
    return await saveCard(deps.db, userId, card);
  } catch (error) {
    if (error instanceof GatewayRequestRejectedError) throw unusablePaymentMethod(field, `The gateway refused it (${error.code ?? 'invalid'})`);
    throw error;
  }
}

/**
 * Tells the user's live subscriptions (all, or those charging the card `from`) to charge
 * `paymentMethod` from their next attempt (the workflow's paymentMethodUpdated signal; while
 * past due that attempt is at once). A subscription whose workflow has ended meanwhile is skipped.
 */
export async function moveLiveSubscriptionsTo(deps: ChoiceDeps, userId: string, paymentMethod: string, from?: string): Promise<number> {
  const live = await liveSubscriptionsOf(deps.db, userId, from);
  const results = await Promise.allSettled(
    live.map(({ workflowId }) => deps.temporal.workflow.getHandle(workflowId).signal(paymentMethodUpdatedSignal, { paymentMethod })),
  );
  for (const result of results) {
    if (result.status === 'rejected') deps.logger.warn({ err: result.reason, userId }, 'could not move a subscription to the new default card');
  }
  return live.length;
}

function unusablePaymentMethod(field: string, reason: string): HttpProblem {
  return new HttpProblem(422, 'Unusable payment method', `${field}: ${reason}`, { invalidParams: [{ name: field, reason }] });
}
