import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CancelOutcome, CancelRequest, ChargeOutcome, ChargeRequest, PaymentGateway, RefundOutcome, RefundRequest } from '../domain/payment';
import type { GatewayCharge, GatewayRecord, GatewayRefund } from '../domain/reconciliation';

/**
 * The gateway's own record for the drills and the bench. The sandbox gateway keeps its intents in
 * the same PostgreSQL the drills disturb and whose rows they check (and keeps no refunds), so the
 * worker wraps it and appends one line per answered charge, refund and cancel to a file,
 * synchronously, before the activity sees the answer: a SIGKILL after that line still leaves it
 * on disk, exactly as a real gateway would have recorded a charge its caller never heard about.
 * Like Stripe, the gateway counts one charge per idempotency key however often the key is sent;
 * the drills check both (calls per key, and keys per subscription and cycle).
 *
 * What it cannot see: a charge that awaited the customer (3-D Secure) and was completed later at
 * the gateway keeps its `pending` answer here; only a cancel's answer moves it on.
 */
export interface GatewayCall {
  type: 'charge';
  idempotencyKey: string;
  paymentMethod: string;
  amount: number;
  currency: string;
  /** Our user id, as the charge carried it. */
  customerRef: string;
  metadata: Record<string, string>;
  status: ChargeOutcome['status'];
  gatewayPaymentId: string | null;
  /** ISO-8601, when the gateway answered. */
  at: string;
}

export interface GatewayRefundCall {
  type: 'refund';
  idempotencyKey: string;
  gatewayPaymentId: string;
  amount: number;
  status: RefundOutcome['status'];
  gatewayRefundId: string;
  at: string;
}

export interface GatewayCancelCall {
  type: 'cancel';
  idempotencyKey: string;
  gatewayPaymentId: string;
  status: CancelOutcome['status'];
  at: string;
}

export type GatewayLogEntry = GatewayCall | GatewayRefundCall | GatewayCancelCall;

/**
 * `answerDelayMs` holds each charge's answer back after the gateway has recorded the charge, as
 * a slow network would: a fault in that window leaves a charge the gateway made but PostgreSQL
 * has not recorded yet, the case an idempotency key exists for.
 */
export function recordingGateway(inner: PaymentGateway, file: string, answerDelayMs = 0): PaymentGateway {
  const record = (entry: GatewayLogEntry) => appendFileSync(file, `${JSON.stringify(entry)}\n`);
  const charge = async (request: ChargeRequest): Promise<ChargeOutcome> => {
    const outcome = await inner.charge(request);
    record({
      type: 'charge',
      idempotencyKey: request.idempotencyKey,
      paymentMethod: request.paymentMethod,
      amount: request.amount,
      currency: request.currency.toLowerCase(),
      customerRef: request.customerRef,
      metadata: request.metadata ?? {},
      status: outcome.status,
      gatewayPaymentId: outcome.gatewayPaymentId,
      at: new Date().toISOString(),
    });
    if (answerDelayMs > 0) await sleep(answerDelayMs);
    return outcome;
  };
  const refund = async (request: RefundRequest): Promise<RefundOutcome> => {
    const outcome = await inner.refund(request);
    record({ type: 'refund', ...request, status: outcome.status, gatewayRefundId: outcome.gatewayRefundId, at: new Date().toISOString() });
    return outcome;
  };
  const cancel = async (request: CancelRequest): Promise<CancelOutcome> => {
    const outcome = await inner.cancel(request);
    record({ type: 'cancel', ...request, status: outcome.status, at: new Date().toISOString() });
    return outcome;
  };
  const recorded: Partial<Record<PropertyKey, unknown>> = { charge, refund, cancel };
  // Everything else (customers, cards) goes to the wrapped gateway unchanged.
  return new Proxy(inner, {
    get: (target, property, receiver) => recorded[property] ?? Reflect.get(target, property, receiver),
  });
}

/** Every line of the recording gateway's log, oldest first. */
export function readGatewayLog(file: string): GatewayLogEntry[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as GatewayLogEntry);
}

/** Every charge the recording gateway answered, oldest first. */
export function readGatewayCalls(file: string): GatewayCall[] {
  return readGatewayLog(file).filter((entry): entry is GatewayCall => entry.type === 'charge');
}

/**
 * The log as the reconciliation reads a gateway's record (domain/reconciliation.ts): one charge
 * and one refund per idempotency key, each as the gateway last answered it (a repeated key is
 * answered from the same intent), a charge's state moved on by the answers to its cancels, and
 * each refund given its charge's customer and currency.
 */
export function gatewayRecordOf(entries: readonly GatewayLogEntry[], source = 'the recording gateway’s log'): GatewayRecord {
  const charges = new Map<string, GatewayCharge>();
  const keyOfPayment = new Map<string, string>();
  const refunds = new Map<string, GatewayRefund>();
  for (const entry of entries) {
    if (entry.type === 'refund') {
      const charge = charges.get(keyOfPayment.get(entry.gatewayPaymentId) ?? '');
      refunds.set(entry.idempotencyKey, {
        idempotencyKey: entry.idempotencyKey,
        gatewayRefundId: entry.gatewayRefundId,
        gatewayPaymentId: entry.gatewayPaymentId,
        userId: charge?.userId ?? null,
        currency: charge?.currency ?? null,
        amount: entry.amount,
        status: entry.status,
      });
    } else if (entry.type === 'cancel') {
      const charge = charges.get(keyOfPayment.get(entry.gatewayPaymentId) ?? '');
      if (charge) charge.status = entry.status;
    } else {
      charges.set(entry.idempotencyKey, {
        idempotencyKey: entry.idempotencyKey,
        gatewayPaymentId: entry.gatewayPaymentId,
        userId: entry.customerRef,
        currency: entry.currency,
        amount: entry.amount,
        status: entry.status,
      });
      if (entry.gatewayPaymentId) keyOfPayment.set(entry.gatewayPaymentId, entry.idempotencyKey);
    }
  }
  return { source, charges: [...charges.values()], refunds: [...refunds.values()] };
}
