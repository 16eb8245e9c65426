import { and, eq, sql } from 'drizzle-orm';
import type Stripe from 'stripe';
import type { Database, Transaction } from '../../db/client';
import { sandboxCustomers, sandboxIntents, sandboxPaymentMethods } from '../../db/schema';
import {
  classifyDecline,
  GatewayRequestRejectedError,
  type CancelOutcome,
  type CancelRequest,
  type ChargeOutcome,
  type ChargeRequest,
  type CustomerRequest,
  type PaymentGateway,
  type RefundOutcome,
  type RefundRequest,
  type SavedCard,
  type SetupIntentOutcome,
  type SetupIntentRequest,
} from '../../domain/payment';
import { isTestToken, sandboxCardOf, type SandboxAnswer } from './sandbox-cards';
import {
  clientSecretOf,
  paymentIntentObjectOf,
  sandboxEventOf,
  sandboxId,
  SETUP_FUTURE_USAGE_KEY,
  setsUpFutureUsage,
  type SandboxIntentRow,
} from './sandbox-intents';
import {
  attachMethod,
  attachStored,
  customerExists,
  isUsedUp,
  lockedMethod,
  methodFromToken,
  noSuchPaymentMethod,
  requireCustomer,
  savedCardOfRow,
  type SandboxPaymentMethodRow,
} from './sandbox-payment-methods';
import { chargeOutcomeFromIntent, PAYMENT_METHOD_UNEXPECTED_STATE } from './stripe-answers';

/** The sandbox was asked to move an intent its state does not allow (a second 3-D Secure completion, say): HTTP 409. */
export class SandboxIntentStateError extends Error {
  override readonly name = 'SandboxIntentStateError';
  constructor(
    readonly intentId: string,
    readonly status: string,
  ) {
    super(`intent ${intentId} is ${status}; only an intent in requires_action can be authenticated`);
  }
}

/** A charge Stripe refuses before it makes an intent: declined, with no gateway payment id. */
type Refusal = { refused: string };

/**
 * A gateway that needs no Stripe account and follows Stripe's rules, so a flow Stripe would
 * refuse fails here too: customers, payment methods made from Stripe's test tokens, and
 * PaymentIntents kept in PostgreSQL (the sandbox_* tables), shared by the API and worker
 * processes. The token a method was made from decides how its charges answer.
 *
 * Idempotency: a customer, setup intent or payment intent is one row per idempotency key, its
 * id derived from the key; a charge claims its row before it decides, and a repeat of the key
 * (even a concurrent one, which waits on that row) answers from the row and never charges again.
 */
export class SandboxGateway implements PaymentGateway {
  readonly name = 'sandbox' as const;

  constructor(private readonly db: Database) {}

  async createCustomer(request: CustomerRequest): Promise<{ customerId: string }> {
    await this.db
      .insert(sandboxCustomers)
      .values({ id: sandboxId('cus', request.idempotencyKey), idempotencyKey: request.idempotencyKey, email: request.email, userRef: request.userId })
      .onConflictDoNothing(); // on the key or on the id derived from it: two racing creations are one customer
    const [row] = await this.db.select().from(sandboxCustomers).where(eq(sandboxCustomers.idempotencyKey, request.idempotencyKey));
    return { customerId: row.id };
  }

  async createSetupIntent(request: SetupIntentRequest): Promise<SetupIntentOutcome> {
    await requireCustomer(this.db, request.customerId);
    const id = sandboxId('seti', request.idempotencyKey);
    await this.db
      .insert(sandboxIntents)
      .values({
        id,
        kind: 'setup',
        idempotencyKey: request.idempotencyKey,
        customerId: request.customerId,
        status: 'requires_payment_method',
        clientSecret: clientSecretOf(id, request.idempotencyKey),
      })
      .onConflictDoNothing(); // on the key or on the id derived from it;
    const row = await this.intentWithKey(this.db, request.idempotencyKey, 'setup');
    return { id: row.id, clientSecret: row.clientSecret, status: row.status };
  }

  async attachPaymentMethod(request: { customerId: string; paymentMethod: string }): Promise<SavedCard> {
    const row = await this.db.transaction((tx) => attachMethod(tx, request.customerId, request.paymentMethod));
    return savedCardOfRow(row);
  }

  async detachPaymentMethod(request: { paymentMethod: string }): Promise<void> {
    await this.db.transaction(async (tx) => {
      const row = await lockedMethod(tx, request.paymentMethod);
      if (!row) throw noSuchPaymentMethod(request.paymentMethod);
      if (row.detachedAt !== null || row.customerId === null) return;
      await tx.update(sandboxPaymentMethods).set({ customerId: null, detachedAt: new Date() }).where(eq(sandboxPaymentMethods.id, row.id));
    });
  }

  async retrievePaymentMethod(paymentMethod: string): Promise<SavedCard> {
    const [row] = await this.db.select().from(sandboxPaymentMethods).where(eq(sandboxPaymentMethods.id, paymentMethod));
    if (!row) throw noSuchPaymentMethod(paymentMethod);
    return savedCardOfRow(row);
  }

  async charge(request: ChargeRequest): Promise<ChargeOutcome> {
    const id = sandboxId('pi', request.idempotencyKey);
    return this.db.transaction(async (tx) => {
      const [claimed] = await tx
        .insert(sandboxIntents)
        .values({
          id,
          kind: 'payment',
          idempotencyKey: request.idempotencyKey,
          customerId: request.customerId,
          amount: request.amount,
          currency: request.currency.toLowerCase(),
          status: 'processing',
          clientSecret: clientSecretOf(id, request.idempotencyKey),
          metadata: {
            ...request.metadata,
            customer_ref: request.customerRef,
            ...(request.session === 'on_session' ? { [SETUP_FUTURE_USAGE_KEY]: 'off_session' } : {}),
          },
        })
        .onConflictDoNothing() // on the key or on the id derived from it
        .returning({ id: sandboxIntents.id });
      // The key's intent exists (a concurrent first attempt waited for): its answer is the answer.
      if (!claimed) return chargeOutcomeFromIntent(paymentIntentObjectOf(await this.intentWithKey(tx, request.idempotencyKey, 'payment')));

      const method = await chargeableMethod(tx, request);
      if ('refused' in method) {
        // Stripe makes no intent for a request it refuses: the claim goes, and a repeat is judged again.
        await tx.delete(sandboxIntents).where(eq(sandboxIntents.id, id));
        return { status: 'declined', gatewayPaymentId: null, decline: classifyDecline(method.refused), failureCode: method.refused };
      }
      const answer = sandboxCardOf(method.token)?.answer ?? { status: 'declined', failureCode: 'invalid_payment_method' };
      await recordUse(tx, method, answer, request);
      const [row] = await tx
        .update(sandboxIntents)
        .set({ paymentMethodId: method.id, ...intentFieldsOf(answer), updatedAt: new Date() })
        .where(eq(sandboxIntents.id, id))
        .returning();
      return chargeOutcomeFromIntent(paymentIntentObjectOf(row));
    });
  }

  /** Refunds are not recorded: the refund id derives from its key, so a repeat is the same refund. */
  async refund(request: RefundRequest): Promise<RefundOutcome> {
    await this.paymentIntent(this.db, request.gatewayPaymentId);
    return { gatewayRefundId: sandboxId('re', request.idempotencyKey), status: 'succeeded' };
  }

  /** Like Stripe: a succeeded intent cannot be canceled (the money was taken); any other is canceled, again and again. */
  async cancel(request: CancelRequest): Promise<CancelOutcome> {
    return this.db.transaction(async (tx) => {
      const intent = await this.paymentIntent(tx, request.gatewayPaymentId, { lock: true });
      if (intent.status === 'succeeded') return { status: 'succeeded' };
      if (intent.status !== 'canceled') {
        await tx.update(sandboxIntents).set({ status: 'canceled', updatedAt: new Date() }).where(eq(sandboxIntents.id, intent.id));
      }
      return { status: 'canceled' };
    });
  }

  /**
   * The customer finishing (`succeeded`) or failing (`failed`) the 3-D Secure challenge of an
   * intent in `requires_action`. Returns the event Stripe would send for it; the caller
   * delivers it as a webhook would. A second completion throws SandboxIntentStateError.
   */
  async completeAuthentication(gatewayPaymentId: string, outcome: 'succeeded' | 'failed'): Promise<Stripe.Event> {
    return this.db.transaction(async (tx) => {
      const intent = await this.paymentIntent(tx, gatewayPaymentId, { lock: true });
      if (intent.status !== 'requires_action') throw new SandboxIntentStateError(intent.id, intent.status);
      const fields =
        outcome === 'succeeded'
          ? { status: 'succeeded', failureCode: null }
          : { status: 'requires_payment_method', failureCode: 'payment_intent_authentication_failure' };
      const [row] = await tx
        .update(sandboxIntents)
        .set({ ...fields, updatedAt: new Date() })
        .where(eq(sandboxIntents.id, intent.id))
        .returning();
      if (outcome === 'succeeded') await saveForFutureUsage(tx, row);
      return sandboxEventOf(outcome === 'succeeded' ? 'payment_intent.succeeded' : 'payment_intent.payment_failed', row);
    });
  }

  /**
   * The customer's app confirming a setup intent with a card (what Stripe.js does): the card is
   * attached to the intent's customer and the `setup_intent.succeeded` event is returned.
   */
  async completeSetupIntent(setupIntentId: string, paymentMethod: string): Promise<Stripe.Event> {
    return this.db.transaction(async (tx) => {
      const [intent] = await tx
        .select()
        .from(sandboxIntents)
        .where(and(eq(sandboxIntents.id, setupIntentId), eq(sandboxIntents.kind, 'setup')))
        .for('update');
      if (!intent) throw new GatewayRequestRejectedError(`No such setupintent: '${setupIntentId}'`, 'resource_missing');
      if (intent.status !== 'requires_payment_method') throw new SandboxIntentStateError(intent.id, intent.status);
      const method = await attachMethod(tx, intent.customerId!, paymentMethod);
      const [row] = await tx
        .update(sandboxIntents)
        .set({ status: 'succeeded', paymentMethodId: method.id, updatedAt: new Date() })
        .where(eq(sandboxIntents.id, intent.id))
        .returning();
      return sandboxEventOf('setup_intent.succeeded', row);
    });
  }

  private async intentWithKey(db: Database | Transaction, idempotencyKey: string, kind: SandboxIntentRow['kind']): Promise<SandboxIntentRow> {
    const [row] = await db.select().from(sandboxIntents).where(eq(sandboxIntents.idempotencyKey, idempotencyKey));
    if (!row || row.kind !== kind) {
      throw new GatewayRequestRejectedError(`idempotency key ${idempotencyKey} was used for another request`, 'idempotency_key_in_use');
    }
    return row;
  }

  private async paymentIntent(db: Database | Transaction, id: string, options: { lock?: boolean } = {}): Promise<SandboxIntentRow> {
    const query = db
      .select()
      .from(sandboxIntents)
      .where(and(eq(sandboxIntents.id, id), eq(sandboxIntents.kind, 'payment')));
    const [row] = options.lock ? await query.for('update') : await query;
    if (!row) throw new GatewayRequestRejectedError(`No such payment_intent: '${id}'`, 'resource_missing');
    return row;
  }
}

/**
 * The method a charge may use, locked for the rest of the charge, or Stripe's refusal: an
 * unknown customer or method; a method attached to another customer; one used up (detached,
 * or charged once while attached to no customer). A bare test token is a new method, as Stripe
 * makes one, its id derived from the charge's key.
 */
async function chargeableMethod(tx: Transaction, request: ChargeRequest): Promise<SandboxPaymentMethodRow | Refusal> {
  if (!(await customerExists(tx, request.customerId))) return { refused: 'invalid_request' };
  const method = isTestToken(request.paymentMethod)
    ? await methodFromToken(tx, request.paymentMethod, { id: sandboxId('pm', `${request.idempotencyKey}/payment_method`), customerId: null })
    : await lockedMethod(tx, request.paymentMethod);
  if (!method) return { refused: 'invalid_payment_method' };
  if (isUsedUp(method)) return { refused: PAYMENT_METHOD_UNEXPECTED_STATE };
  if (method.customerId !== null && method.customerId !== request.customerId) return { refused: 'invalid_request' };
  return method;
}

/**
 * What a charge leaves on its method: a use without a customer is counted (Stripe allows one,
 * whatever its answer); an on-session charge that succeeds saves the method to the customer.
 */
async function recordUse(tx: Transaction, method: SandboxPaymentMethodRow, answer: SandboxAnswer, request: ChargeRequest): Promise<void> {
  if (method.customerId !== null) return;
  await tx
    .update(sandboxPaymentMethods)
    .set({ chargesWithoutCustomer: sql`${sandboxPaymentMethods.chargesWithoutCustomer} + 1` })
    .where(eq(sandboxPaymentMethods.id, method.id));
  if (answer.status === 'succeeded' && request.session === 'on_session') await attachStored(tx, method.id, request.customerId);
}

/** After an on-session intent succeeds on authentication, its method is saved to the customer (setup_future_usage). */
async function saveForFutureUsage(tx: Transaction, intent: SandboxIntentRow): Promise<void> {
  if (!setsUpFutureUsage(intent) || !intent.paymentMethodId || !intent.customerId) return;
  const method = await lockedMethod(tx, intent.paymentMethodId);
  if (method && method.customerId === null && method.detachedAt === null) await attachStored(tx, method.id, intent.customerId);
}

function intentFieldsOf(answer: SandboxAnswer): Pick<SandboxIntentRow, 'status' | 'failureCode'> {
  switch (answer.status) {
    case 'succeeded':
      return { status: 'succeeded', failureCode: null };
    case 'requires_action':
      return { status: 'requires_action', failureCode: null };
    case 'declined':
      return { status: 'requires_payment_method', failureCode: answer.failureCode };
  }
}
