import { createHash } from 'node:crypto';
import { and, eq, gte, isNull, lt, or, sql } from 'drizzle-orm';
import type { Request, RequestHandler, Response } from 'express';
import { idempotencyRecords } from '../db/schema';
import type { Database } from '../db/client';
import type { AppDeps } from './deps';
import { currentUser } from './auth';
import { HttpProblem, PROBLEM_CONTENT_TYPE } from './problem';

const MAX_KEY_LENGTH = 255;
// A record left in flight this long belongs to a request whose process died; a retry may take it over.
const ABANDONED_AFTER_SECONDS = 60;

type RecordId = { userId: string; key: string; route: string };

export interface IdempotencyOptions {
  /**
   * What a key is scoped to besides the user: the declared route (`POST /api/v1/payments/process`,
   * see `idempotencyScope`), so `/payments/process/` or `/API/V1/...`, which Express routes to
   * the same handler, replay the same answer. Defaults to the method and the path Express matched.
   */
  scope?: string;
  /**
   * The handler converges: run again with the same key it reaches what the first run started (a
   * workflow whose id derives from the key) and answers with it as it stands. A repeat while the
   * first run has no answer yet (still running, or its process died) then runs the handler again
   * rather than answering 409.
   */
  converges?: boolean;
}

/**
 * For POST routes that create something. With an `Idempotency-Key` header, the first request
 * for (user, key, scope) runs and its answer is stored; a repeat replays that answer without
 * running the handler. The same key with a different body is a 422, whatever became of the
 * first request. A record is never forgotten, since its request may have started a workflow:
 * after an answer the client should retry (5xx, 429) a repeat runs the handler again, and while
 * the first request has no answer a repeat is a 409 (or runs again, for a route that
 * `converges`) until the record is abandoned. Must run after `requireAuth`.
 */
export function idempotent(deps: Pick<AppDeps, 'db'>, options: IdempotencyOptions = {}): RequestHandler {
  const { db } = deps;
  return async (req, res, next) => {
    const key = req.get('idempotency-key');
    if (key === undefined) return next();
    if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
      throw new HttpProblem(400, 'Invalid request', `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} characters.`, {
        invalidParams: [{ name: 'Idempotency-Key', reason: `Must be 1 to ${MAX_KEY_LENGTH} characters` }],
      });
    }
    const route = options.scope ?? `${req.method} ${req.baseUrl}${typeof req.route?.path === 'string' ? req.route.path : req.path}`;
    const id: RecordId = { userId: currentUser(req).id, key, route };
    // The path's parameters are part of the request: the scope is the declared route, so the
    // same key on another subscription's /{id}/payment-method is another request (a 422).
    const requestHash = hashBody(Object.keys(req.params ?? {}).length > 0 ? { params: req.params, body: req.body } : req.body);

    if (await claimRecord(db, id, requestHash)) {
      rememberAnswer(db, id, req, res);
      return next();
    }
    const [existing] = await db.select().from(idempotencyRecords).where(recordMatches(id)).limit(1);
    if (!existing) throw new HttpProblem(409, 'Request in progress', 'Retry the request.');
    if (existing.requestHash !== requestHash) {
      throw new HttpProblem(422, 'Idempotency key reused', 'This Idempotency-Key was already used with a different request body.');
    }
    // No answer yet, or one to retry that another retry has just taken over.
    if (existing.statusCode === null || isRetryable(existing.statusCode)) {
      if (!options.converges) {
        throw new HttpProblem(409, 'Request in progress', 'A request with this Idempotency-Key is still being processed.');
      }
      rememberAnswer(db, id, req, res);
      return next();
    }
    replay(res, existing.statusCode, existing.responseBody);
  };
}

/**
 * Inserts the in-flight record, or takes over one with the same request whose answer is to be
 * retried (5xx, 429) or which was abandoned by a crashed process.
 */
async function claimRecord(db: Database, id: RecordId, requestHash: string): Promise<boolean> {
  const inserted = await db
    .insert(idempotencyRecords)
    .values({ ...id, requestHash })
    .onConflictDoNothing()
    .returning({ key: idempotencyRecords.key });
  if (inserted.length > 0) return true;
  const abandoned = and(
    isNull(idempotencyRecords.statusCode),
    lt(idempotencyRecords.createdAt, sql`now() - make_interval(secs => ${ABANDONED_AFTER_SECONDS})`),
  );
  const takenOver = await db
    .update(idempotencyRecords)
    .set({ statusCode: null, responseBody: null, createdAt: sql`now()` })
    .where(and(recordMatches(id), eq(idempotencyRecords.requestHash, requestHash), or(retryableAnswer(), abandoned)))
    .returning({ key: idempotencyRecords.key });
  return takenOver.length > 0;
}

/**
 * Stores the answer before the client sees it, so a retry that arrives right after the
 * response always finds it. Bodies go through `res.json`; a response without one (204) is
 * stored as its bare status once it has been sent.
 */
function rememberAnswer(db: Database, id: RecordId, req: Request, res: Response): void {
  let settled = false;
  const settle = async (status: number, body: unknown): Promise<void> => {
    settled = true;
    // A 5xx is stored too (as Stripe keeps them), marking the record to retry rather than
    // forgetting it: a different body with the key stays a 422. A converging re-run never
    // overwrites an answer already stored that is final.
    await db
      .update(idempotencyRecords)
      .set({ statusCode: status, responseBody: body ?? null })
      .where(and(recordMatches(id), or(isNull(idempotencyRecords.statusCode), retryableAnswer())));
  };

  const sendJson = res.json.bind(res);
  res.json = (body: unknown) => {
    if (settled) return sendJson(body);
    settle(res.statusCode, body).then(
      () => sendJson(body),
      (err: unknown) => {
        req.log.error({ err }, 'could not store the idempotent answer');
        sendJson(body);
      },
    );
    return res;
  };

  res.once('close', () => {
    // A client that hung up before the answer leaves the record in flight: the handler may
    // still be creating something, and its answer will be stored when it calls res.json.
    if (settled || !res.writableFinished) return;
    settle(res.statusCode, null).catch((err: unknown) => req.log.error({ err }, 'could not store the idempotent answer'));
  });
}

function replay(res: Response, status: number, body: unknown): void {
  res.status(status).set('Idempotent-Replayed', 'true');
  if (body === null) {
    res.end();
    return;
  }
  if (status >= 400) res.type(PROBLEM_CONTENT_TYPE);
  res.json(body);
}

function isRetryable(status: number): boolean {
  return status >= 500 || status === 429;
}

function retryableAnswer() {
  return or(gte(idempotencyRecords.statusCode, 500), eq(idempotencyRecords.statusCode, 429));
}

function recordMatches(id: RecordId) {
  return and(eq(idempotencyRecords.userId, id.userId), eq(idempotencyRecords.key, id.key), eq(idempotencyRecords.route, id.route));
}

function hashBody(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

// Key order must not matter: {"a":1,"b":2} and {"b":2,"a":1} are the same request.
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
