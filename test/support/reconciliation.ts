/**
 * The reconciliation every drill, the renewal-storm test and the bench end with: the books as
 * PostgreSQL holds them (db/reconciliation.ts) and, where the stack keeps one, the gateway's own
 * record (bench/recording-gateway.ts) must agree to the minor unit.
 */
import assert from 'node:assert/strict';
import { gatewayRecordOf, readGatewayLog } from '../../bench/recording-gateway';
import type { Database } from '../../db/client';
import { reconcileBooks } from '../../db/reconciliation';
import type { GatewayRecord, Reconciliation } from '../../domain/reconciliation';

export interface BooksScope {
  /**
   * Only these customers' books: a test on the runner's shared database names its own, since
   * other files charge (and plant differences on purpose) beside it. Everyone when absent: a
   * stack of its own.
   */
  customers?: readonly string[];
  /** The recording gateway's log: the gateway's side is compared too. Absent: PostgreSQL's side only. */
  gatewayLog?: string;
}

export interface BooksCheck {
  result: Reconciliation;
  /** One line: what was compared, and how many differences. */
  summary: string;
}

/** Reconciles every payment made so far in the scope. */
export async function reconcileScope(db: Database, scope: BooksScope = {}): Promise<BooksCheck> {
  const gateway = scope.gatewayLog ? gatewayScoped(gatewayRecordOf(readGatewayLog(scope.gatewayLog)), scope.customers) : undefined;
  const result = await reconcileBooks(db, { from: new Date(0), to: new Date(), userIds: scope.customers }, gateway);
  const { customers, payments, invoices } = result.checked;
  const compared = result.gateway
    ? `against ${result.gateway.source} (${result.gateway.charges} charges, ${result.gateway.refunds} refunds)`
    : 'PostgreSQL alone (no gateway record here)';
  const summary = `reconciliation: ${customers} customers, ${payments} payments, ${invoices} invoices, ${compared}: ${result.differences.length} differences`;
  return { result, summary };
}

/** Reconciles, prints what was compared, and fails naming the first differences if there are any. */
export async function assertBooksBalance(db: Database, scope: BooksScope = {}): Promise<Reconciliation> {
  const { result, summary } = await reconcileScope(db, scope);
  console.log(summary);
  assert.deepEqual(result.differences.slice(0, 10), [], `${summary}; the first ones:\n${JSON.stringify(result.differences.slice(0, 10), null, 1)}`);
  return result;
}

// The gateway's charges and refunds of these customers only (a refund by its charge's customer).
function gatewayScoped(record: GatewayRecord, customers: readonly string[] | undefined): GatewayRecord {
  if (!customers) return record;
  const wanted = new Set(customers);
  return {
    ...record,
    charges: record.charges.filter((charge) => wanted.has(charge.userId)),
    refunds: record.refunds.filter((refund) => refund.userId !== null && wanted.has(refund.userId)),
  };
}
