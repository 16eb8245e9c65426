import { eq } from 'drizzle-orm';
import type Stripe from 'stripe';
import { defaultCard, markCardDetached, saveCard, userOfGatewayCustomer } from '../db/payment-methods';
import { paymentMethods } from '../db/schema';
import { liveSubscriptionsOf } from '../db/subscriptions';
import type { WebhookOutcome } from '../db/webhook-events';
import { paymentMethodUpdatedSignal } from '../workflows/subscription/contract';
import type { AppDeps } from './deps';
import { ignored, PROCESSED, signalIfRunning, type WebhookLog } from './webhook-support';

/**
 * The card events: a SetupIntent that saved a card, a card detached from its customer (in the
 * gateway's dashboard, or by us). Both are safe to repeat.
 */

function idOf(value: string | { id: string } | null): string | undefined {
  return typeof value === 'string' ? value : value?.id;
}

/** `setup_intent.succeeded`: the card it set up is saved to the user whose customer it names. */
export async function actOnSetupIntent(event: Stripe.SetupIntentSucceededEvent, deps: AppDeps, log: WebhookLog): Promise<WebhookOutcome> {
  const setupIntent = event.data.object;
  const customerId = idOf(setupIntent.customer);
  const user = customerId ? await userOfGatewayCustomer(deps.db, customerId) : undefined;
  if (!user) return ignored('unknown_customer');
  const paymentMethodId = idOf(setupIntent.payment_method);
  if (!paymentMethodId) return ignored('unknown_payment_method');

  // The gateway is the source of truth for the card; the event's copy may be stale.
  const card = await deps.gateway.retrievePaymentMethod(paymentMethodId);
  if (card.customerId !== customerId) {
    log.info({ paymentMethodId, customerId, attachedTo: card.customerId }, 'card no longer attached to the SetupIntent’s customer; not saved');
    return ignored('payment_method_not_attached');
  }
  const { row, created } = await saveCard(deps.db, user.id, card);
  log.info({ userId: user.id, paymentMethodId, created, isDefault: row.isDefault }, 'card saved from SetupIntent');
  return PROCESSED;
}

/**
 * `payment_method.detached`: the card is marked detached (the newest card left becomes the
 * default when it was the default), and the user's live subscriptions still charging it move to
 * the default card. With no card left nothing is signalled: their next charge fails into dunning,
 * where the customer is asked for a new card. Repeating it finds the card detached already and
 * signals again whichever subscriptions still name it.
 */
export async function actOnPaymentMethodDetached(event: Stripe.PaymentMethodDetachedEvent, deps: AppDeps, log: WebhookLog): Promise<WebhookOutcome> {
  const paymentMethodId = event.data.object.id;
  const detached = await markCardDetached(deps.db, paymentMethodId);
  const [card] = await deps.db.select({ userId: paymentMethods.userId }).from(paymentMethods).where(eq(paymentMethods.id, paymentMethodId));
  if (!card) return ignored('unknown_payment_method');
  if (detached) log.info({ userId: card.userId, paymentMethodId, newDefault: detached.newDefault?.id }, 'card detached');

  const replacement = await defaultCard(deps.db, card.userId);
  if (!replacement) {
    log.info({ userId: card.userId, paymentMethodId }, 'no card left to move subscriptions to');
    return PROCESSED;
  }
  const charging = await liveSubscriptionsOf(deps.db, card.userId, paymentMethodId);
  for (const subscription of charging) {
    const told = await signalIfRunning(deps, subscription.workflowId, paymentMethodUpdatedSignal, { paymentMethod: replacement.id });
    log.info({ subscriptionId: subscription.id, paymentMethod: replacement.id, told }, 'subscription moved to the default card');
  }
  return PROCESSED;
}
