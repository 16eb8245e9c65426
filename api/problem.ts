import { STATUS_CODES } from 'node:http';
import { isGrpcServiceError } from '@temporalio/client';
import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
// Types `req.id` and `req.log`, which the request logger sets on every request.
import type {} from './request-context';
import { z } from 'zod';
import type { Logger } from '../platform/logger';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** The body of every error answer; members such as `failureCode` or `hold` may come on top. */
export const problemSchema = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.int().min(400).max(599),
    detail: z.string().optional(),
    instance: z.string(),
    requestId: z.string(),
    invalidParams: z.array(z.strictObject({ name: z.string(), reason: z.string() })).optional(),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details; `invalidParams` names each field a 400 rejected.' });

/**
 * An error that is the answer: thrown (or passed to `next`) anywhere in a route and rendered as
 * RFC 9457 `application/problem+json`. `extra` adds members such as `invalidParams`; it may also
 * override `type` with a URI that names the problem. `headers` go out with it (`Retry-After`,
 * `WWW-Authenticate`).
 */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail?: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ? `${title}: ${detail}` : title);
    this.name = 'HttpProblem';
  }
}

export function sendProblem(req: Request, res: Response, problem: HttpProblem): void {
  res
    .set(problem.headers)
    .status(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .json({
      type: 'about:blank',
      title: problem.title,
      status: problem.status,
      ...(problem.detail === undefined ? {} : { detail: problem.detail }),
      instance: req.originalUrl,
      requestId: req.id,
      ...problem.extra,
    });
}

/** The last route: anything no router answered. */
export function notFoundHandler(): RequestHandler {
  return (req) => {
    throw new HttpProblem(404, 'Not Found', `No route for ${req.method} ${req.path}`);
  };
}

/**
 * Turns every error into a problem. Known problems pass through; errors that carry a client
 * status (body-parser's malformed JSON or oversized body) keep it; an unreachable PostgreSQL,
 * Redis or Temporal is a 503 the client may retry; anything else is a logged 500 whose body
 * says nothing about the cause.
 */
export function problemHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) return next(err);
    // `req.log` makes the request's child logger when first read: only a line to write needs it.
    const log = () => req.log ?? logger;
    const problem = toProblem(err);
    if (problem.status === 503) {
      log().warn({ err }, 'dependency unavailable');
      res.set('Retry-After', '5');
    } else if (problem.status >= 500) {
      // The logger's error serializer keeps query parameters (password hashes, emails) out.
      log().error({ err }, 'unhandled error');
    }
    sendProblem(req, res, problem);
  };
}

function toProblem(err: unknown): HttpProblem {
  if (err instanceof HttpProblem) return err;
  const clientStatus = exposedClientStatus(err);
  if (clientStatus) {
    return new HttpProblem(clientStatus, STATUS_CODES[clientStatus] ?? 'Bad Request', clientErrorDetail(err));
  }
  if (isDependencyUnavailable(err)) {
    return new HttpProblem(503, 'Service Unavailable', 'A service this request needs is unreachable; retry shortly.');
  }
  return new HttpProblem(500, 'Internal Server Error', 'An unexpected error occurred.');
}

// body-parser and http-errors mark errors safe to show with `expose` and a 4xx `status`.
function exposedClientStatus(err: unknown): number | undefined {
  if (!isRecord(err) || err.expose !== true) return undefined;
  const status = typeof err.status === 'number' ? err.status : err.statusCode;
  return typeof status === 'number' && status >= 400 && status < 500 ? status : undefined;
}

function clientErrorDetail(err: unknown): string {
  if (isRecord(err) && err.type === 'entity.parse.failed') return 'The request body is not valid JSON.';
  if (isRecord(err) && err.type === 'entity.too.large') return 'The request body is too large.';
  return err instanceof Error ? err.message : String(err);
}

// Connection-level failures of postgres.js, ioredis and Node sockets.
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
]);
// PostgreSQL SQLSTATEs for a server that is shutting down, starting up or out of connections.
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[1-3]|53300)$/;
const IOREDIS_UNAVAILABLE_MESSAGES = [
  'Connection is closed.',
  "Stream isn't writeable and enableOfflineQueue options is false",
  'Command aborted due to connection close',
];
// The `stripe` client's errors for a gateway that is unreachable, failing or throttling us.
const GATEWAY_UNAVAILABLE_TYPES = new Set(['StripeConnectionError', 'StripeAPIError', 'StripeRateLimitError']);
const GRPC_UNAVAILABLE = 14;
const GRPC_DEADLINE_EXCEEDED = 4;

/** True when `err` (or any error in its cause chain) says PostgreSQL, Redis, Temporal or the payment gateway is unreachable. */
export function isDependencyUnavailable(err: unknown): boolean {
  return causeChain(err).some((e) => {
    if (isGrpcServiceError(e)) return [GRPC_UNAVAILABLE, GRPC_DEADLINE_EXCEEDED].includes(Number(e.code));
    if (!isRecord(e)) return false;
    const code = typeof e.code === 'string' ? e.code : '';
    if (UNAVAILABLE_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code)) return true;
    if (e.name === 'MaxRetriesPerRequestError' || e.name === 'ClusterAllFailedError') return true;
    if (typeof e.type === 'string' && GATEWAY_UNAVAILABLE_TYPES.has(e.type)) return true;
    return typeof e.message === 'string' && IOREDIS_UNAVAILABLE_MESSAGES.includes(e.message);
  });
}

function causeChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  const pending = [err];
  while (pending.length > 0 && chain.length < 20) {
    const e = pending.shift();
    if (e === undefined || e === null || chain.includes(e)) continue;
    chain.push(e);
    if (isRecord(e)) {
      pending.push(e.cause);
      if (Array.isArray(e.errors)) pending.push(...e.errors);
    }
  }
  return chain;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
