import { setTimeout as sleep } from 'node:timers/promises';
import type Stripe from 'stripe';
import {
  ATTEMPT_FAILED_REASON,
  markWebhookAttemptFailed,
  markWebhookEvent,
  recordWebhookEvent,
  webhookEventState,
  type RecordedEvent,
  type WebhookOutcome,
} from '../db/webhook-events';
import type { AppDeps } from './deps';
import { countWebhookMismatch } from './metrics';
import { actOnPaymentMethodDetached, actOnSetupIntent } from './webhook-cards';
import { actOnChargeRefunded, actOnDispute, actOnPaymentIntent } from './webhook-payments';
import { ignored, isMismatch, type WebhookLog } from './webhook-support';

/**
 * Acting on a gateway event once, with no transaction held across a network call: the event is
 * recorded `received`, acted on (short transactions, then Temporal), then marked `processed` or
 * `ignored`. An event already marked is a duplicate. One still `received` was interrupted (a
 * crash, Temporal unreachable) and is acted on again, since every action is safe to repeat —
 * unless another delivery of it is acting right now: that one is waited for, so the same event
 * delivered at once several times acts once.
 */

// Longer than acting on an event takes (a few Temporal calls, each cut off after 5 s): a row
// still `received` after this long was left by a delivery that died.
const IN_FLIGHT_MS = 15_000;
const POLL_MS = 50;

/** Acts on a verified event (a webhook's, or one the sandbox gateway made); throws to ask for a retry. */
export async function receiveGatewayEvent(event: Stripe.Event, deps: AppDeps, log: WebhookLog): Promise<{ duplicate: boolean }> {
  if (!(await claim(event, deps))) {
    log.info('duplicate webhook event ignored');
    return { duplicate: true };
  }
  let outcome: WebhookOutcome;
  try {
    outcome = await actOn(event, deps, log);
  } catch (error) {
    // The row stays `received`: the gateway's retry acts on it again.
    await markWebhookAttemptFailed(deps.db, event.id).catch((err: unknown) => log.warn({ err }, 'failed attempt not noted'));
    throw error;
  }
  await markWebhookEvent(deps.db, event.id, outcome);
  if (isMismatch(outcome)) {
    countWebhookMismatch(outcome.reason);
    log.warn({ reason: outcome.reason, object: describeObject(event) }, 'webhook event ignored: it does not match what it names');
  } else if (outcome.outcome === 'ignored') {
    log.info({ reason: outcome.reason }, 'webhook event ignored');
  }
  return { duplicate: false };
}

/** True when this delivery is to act on the event; false when it is a duplicate. */
async function claim(event: Stripe.Event, deps: AppDeps): Promise<boolean> {
  let state: RecordedEvent | undefined = await recordWebhookEvent(deps.db, event, IN_FLIGHT_MS);
  if (state.inserted) return true;
  while (state && isInFlight(state)) {
    await sleep(POLL_MS);
    state = await webhookEventState(deps.db, event.id, IN_FLIGHT_MS);
  }
  // Gone (deleted by retention): seen and settled 30 days ago.
  if (!state) return false;
  return state.outcome === 'received';
}

/** Another delivery may be acting on it now: received recently and no attempt has failed. */
function isInFlight(state: RecordedEvent): boolean {
  return state.outcome === 'received' && state.reason !== ATTEMPT_FAILED_REASON && state.recent;
}

async function actOn(event: Stripe.Event, deps: AppDeps, log: WebhookLog): Promise<WebhookOutcome> {
  switch (event.type) {
    case 'payment_intent.succeeded':
    case 'payment_intent.payment_failed':
      return actOnPaymentIntent(event, deps, log);
    case 'charge.refunded':
      return actOnChargeRefunded(event, deps, log);
    case 'charge.dispute.created':
      return actOnDispute(event, deps, log);
    case 'setup_intent.succeeded':
      return actOnSetupIntent(event, deps, log);
    case 'payment_method.detached':
      return actOnPaymentMethodDetached(event, deps, log);
    default:
      log.debug('webhook event type not handled; recorded only');
      return ignored('unhandled_type');
  }
}

/** What a mismatch log line names: the object's id, amount and currency, never its personal data. */
function describeObject(event: Stripe.Event): Record<string, unknown> {
  const object = event.data.object as unknown as Record<string, unknown>;
  const { id, amount, currency, customer, payment_intent: paymentIntent } = object;
  const metadata = object.metadata as Record<string, string> | undefined;
  return { id, amount, currency, customer, paymentIntent, metadataPaymentId: metadata?.payment_id };
}
