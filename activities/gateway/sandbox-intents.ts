import { createHash } from 'node:crypto';
import type Stripe from 'stripe';
import type { sandboxIntents } from '../../db/schema';

/**
 * The sandbox's records seen as Stripe would send them: ids derived from idempotency keys,
 * PaymentIntent-shaped objects, and the events a webhook would carry.
 */

export type SandboxIntentRow = typeof sandboxIntents.$inferSelect;

/**
 * Ids derive from the idempotency key (or another stable seed), so a retry after a crash gets
 * the same id and finds the record the first attempt left.
 */
export function sandboxId(prefix: 'pi' | 'seti' | 're' | 'cus' | 'pm' | 'evt', seed: string): string {
  return `${prefix}_sandbox_${digest(seed)}`;
}

/** Shaped like Stripe's: the intent's id, `_secret_`, and a part only its holder knows. */
export function clientSecretOf(intentId: string, idempotencyKey: string): string {
  return `${intentId}_secret_${digest(`${idempotencyKey}/client-secret`)}`;
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * 24 base-62 characters of the seed's SHA-256, like the tail of a Stripe id. Not hex: a hex id
 * holds twelve digits in a row about once in thirty, which the API refuses as a card number.
 */
function digest(seed: string): string {
  const bytes = createHash('sha256').update(seed).digest();
  return Array.from(bytes.subarray(0, 24), (byte) => BASE62[byte % 62]).join('');
}

/**
 * The intent's `setup_future_usage` has no column of its own: it rides in the stored metadata
 * under this key and is taken out again whenever the metadata is shown.
 */
export const SETUP_FUTURE_USAGE_KEY = 'sandbox_setup_future_usage';

export function setsUpFutureUsage(row: SandboxIntentRow): boolean {
  return row.metadata?.[SETUP_FUTURE_USAGE_KEY] === 'off_session';
}

function shownMetadata(row: SandboxIntentRow): Record<string, string> {
  const { [SETUP_FUTURE_USAGE_KEY]: _hidden, ...metadata } = row.metadata ?? {};
  return metadata;
}

/** Messages Stripe gives with the failure codes the sandbox stores. */
const FAILURE_MESSAGES: Readonly<Record<string, string>> = {
  payment_intent_authentication_failure:
    'The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.',
  insufficient_funds: 'Your card has insufficient funds.',
  expired_card: 'Your card has expired.',
  incorrect_cvc: "Your card's security code is incorrect.",
  processing_error: 'An error occurred while processing your card. Try again in a little bit.',
};

/** Stripe's `last_payment_error`: a bank's decline is `card_declined` with its decline code; other failures are their own code. */
function lastPaymentErrorOf(row: SandboxIntentRow): Stripe.PaymentIntent.LastPaymentError | null {
  const code = row.failureCode;
  if (!code) return null;
  const message = FAILURE_MESSAGES[code] ?? 'Your card was declined.';
  if (code === 'payment_intent_authentication_failure') return { type: 'invalid_request_error', code, message };
  const ownCode = code === 'expired_card' || code === 'incorrect_cvc' || code === 'processing_error';
  return { type: 'card_error', code: ownCode ? code : 'card_declined', decline_code: code, message };
}

/** A stored payment intent as Stripe's PaymentIntent object (the fields the gateways read). */
export function paymentIntentObjectOf(row: SandboxIntentRow): Stripe.PaymentIntent {
  const awaitsCustomer = row.status === 'requires_action';
  const intent = {
    id: row.id,
    object: 'payment_intent',
    amount: row.amount,
    currency: row.currency,
    customer: row.customerId,
    payment_method: row.paymentMethodId,
    status: row.status,
    client_secret: row.clientSecret,
    metadata: shownMetadata(row),
    last_payment_error: lastPaymentErrorOf(row),
    next_action: awaitsCustomer ? { type: 'use_stripe_sdk', use_stripe_sdk: {} } : null,
    setup_future_usage: setsUpFutureUsage(row) ? 'off_session' : null,
    created: Math.floor(row.createdAt.getTime() / 1000),
    livemode: false,
  };
  return intent as unknown as Stripe.PaymentIntent;
}

/** A stored setup intent as Stripe's SetupIntent object. */
export function setupIntentObjectOf(row: SandboxIntentRow): Stripe.SetupIntent {
  const intent = {
    id: row.id,
    object: 'setup_intent',
    customer: row.customerId,
    payment_method: row.paymentMethodId,
    status: row.status,
    client_secret: row.clientSecret,
    usage: 'off_session',
    metadata: shownMetadata(row),
    created: Math.floor(row.createdAt.getTime() / 1000),
    livemode: false,
  };
  return intent as unknown as Stripe.SetupIntent;
}

type SandboxEventType = 'payment_intent.succeeded' | 'payment_intent.payment_failed' | 'setup_intent.succeeded';

/**
 * The event Stripe would send for an intent that just reached its state. Its id derives from
 * the intent and the type: an intent reaches each of these states once, so it is one event.
 */
export function sandboxEventOf(type: SandboxEventType, row: SandboxIntentRow): Stripe.Event {
  const object = row.kind === 'setup' ? setupIntentObjectOf(row) : paymentIntentObjectOf(row);
  const event = {
    id: sandboxId('evt', `${row.id}/${type}`),
    object: 'event',
    type,
    api_version: null,
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    pending_webhooks: 0,
    request: { id: null, idempotency_key: null },
    data: { object },
  };
  return event as unknown as Stripe.Event;
}
