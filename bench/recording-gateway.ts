import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChargeOutcome, ChargeRequest, PaymentGateway } from '../domain/payment';

/**
 * The gateway's own record for the drills. The sandbox gateway keeps its intents in the same
 * PostgreSQL the drills disturb and whose rows they check, so the worker wraps it and appends
 * one line per answered charge to a file, synchronously, before the activity sees the answer:
 * a SIGKILL after that line still leaves it on disk, exactly as a real gateway would have recorded a charge its caller never
 * heard about. Like Stripe, the gateway counts one charge per idempotency key however often the
 * key is sent; the drills check both (calls per key, and keys per subscription and cycle).
 */
export interface GatewayCall {
  idempotencyKey: string;
  paymentMethod: string;
  amount: number;
  metadata: Record<string, string>;
  status: ChargeOutcome['status'];
  gatewayPaymentId: string | null;
  /** ISO-8601, when the gateway answered. */
  at: string;
}

/**
 * `answerDelayMs` holds each answer back after the gateway has recorded the charge, as a slow
 * network would: a fault in that window leaves a charge the gateway made but PostgreSQL has not
 * recorded yet, the case an idempotency key exists for.
 */
export function recordingGateway(inner: PaymentGateway, file: string, answerDelayMs = 0): PaymentGateway {
  const charge = async (request: ChargeRequest): Promise<ChargeOutcome> => {
    const outcome = await inner.charge(request);
    const call: GatewayCall = {
      idempotencyKey: request.idempotencyKey,
      paymentMethod: request.paymentMethod,
      amount: request.amount,
      metadata: request.metadata ?? {},
      status: outcome.status,
      gatewayPaymentId: outcome.gatewayPaymentId,
      at: new Date().toISOString(),
    };
    appendFileSync(file, `${JSON.stringify(call)}\n`);
    if (answerDelayMs > 0) await sleep(answerDelayMs);
    return outcome;
  };
  // Everything else (refunds, cancels) goes to the wrapped gateway unchanged.
  return new Proxy(inner, {
    get: (target, property, receiver) => (property === 'charge' ? charge : Reflect.get(target, property, receiver)),
  });
}

/** Every charge the recording gateway answered, oldest first. */
export function readGatewayCalls(file: string): GatewayCall[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as GatewayCall);
}
