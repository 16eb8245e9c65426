import { createHash, randomUUID } from 'node:crypto';
import type { Request } from 'express';
import type { ApiOperation } from './contract';

/**
 * Ids of what an `Idempotency-Key` request creates (a subscription, a one-time payment),
 * derived from (user, route, key): a retry with the key names the same workflow, so it reaches
 * the first attempt's workflow and its charge even when the idempotency record was lost.
 */

/** The scope a key is valid in: the declared route, whatever the request's spelling (`POST /api/v1/payments/process`). */
export function idempotencyScope(operation: Pick<ApiOperation, 'method' | 'path'>): string {
  return `${operation.method.toUpperCase()} ${operation.path}`;
}

/** A name-based UUID (version 8, sha-256) of (user, scope, key): the same three always give the same id. */
export function idFromIdempotencyKey(userId: string, scope: string, key: string): string {
  // Length-prefixed, so no two different triples hash the same text.
  const name = [userId, scope, key].map((part) => `${part.length}:${part}`).join('|');
  const bytes = createHash('sha256').update(`idempotency-key:${name}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x80;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The id derived from the request's `Idempotency-Key` for `operation`, or a random one without a key. */
export function idForRequest(req: Request, userId: string, operation: Pick<ApiOperation, 'method' | 'path'>): string {
  const key = req.get('idempotency-key');
  return key ? idFromIdempotencyKey(userId, idempotencyScope(operation), key) : randomUUID();
}
