import { STATUS_CODES } from 'node:http';
import type { RequestHandler } from 'express';
import { z } from 'zod';
import { HttpProblem, PROBLEM_CONTENT_TYPE, problemSchema } from './problem';

/**
 * What a route promises, declared in its router file's table with the same zod schemas its
 * handler parses with. The route is served from this declaration (`apiRouter().route` in
 * `api/route.ts`: its path, method and guards), `api/openapi.ts` turns the declarations into the
 * OpenAPI document, and the method guard and the metrics' route labels match requests to them.
 */
export interface ApiOperation {
  method: HttpMethod;
  /** The full path as mounted, in OpenAPI form: `/api/v1/subscriptions/{id}`. */
  path: string;
  summary: string;
  description?: string;
  /** public: no token; user: any signed-in user; staff: role `staff` (adds the 403). */
  auth: 'public' | 'user' | 'staff';
  request?: {
    /** A JSON body. */
    body?: z.ZodType;
    query?: z.ZodObject;
    params?: z.ZodObject;
    headers?: z.ZodObject;
  };
  responses: Record<number, ApiResponse>;
  /** Exempt from the per-IP rate limit (no 429 in its answers). */
  unlimited?: boolean;
  /**
   * Answers `Idempotency-Key` (POSTs that create something). `converges`: the handler run again
   * with the same key reaches what its first run started (ids derived from the key), so a repeat
   * while the first has no answer yet (a crashed process, a client that hung up) runs it again
   * instead of a 409.
   */
  idempotent?: boolean | 'converges';
}

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface ApiResponse {
  description: string;
  /** The body's schema; absent with a `contentType`, the body is bytes of that type (a PDF). */
  schema?: z.ZodType;
  /** Defaults to application/json, or application/problem+json for 4xx and 5xx. */
  contentType?: string;
  /** Headers the answer carries, by name. */
  headers?: Record<string, ResponseHeader>;
}

export interface ResponseHeader {
  description: string;
  required?: boolean;
  schema: { type: 'string' | 'integer' };
}

/** An ISO-8601 UTC timestamp as the API writes it (`Date#toISOString`). */
export const isoDateTime = z.iso.datetime();

export function json(description: string, schema: z.ZodType): ApiResponse {
  return { description, schema };
}

/** Problem answers for the given statuses, each described by its HTTP reason phrase unless told. */
export function problems(...statuses: Array<number | [number, string]>): Record<number, ApiResponse> {
  return Object.fromEntries(
    statuses.map((entry) => {
      const [status, description] = Array.isArray(entry) ? entry : [entry, STATUS_CODES[entry] ?? 'Problem'];
      return [status, { description, schema: problemSchema, contentType: PROBLEM_CONTENT_TYPE }];
    }),
  );
}

export interface RouteTable {
  /** The declared path template that `path` falls under, with its operations. */
  match(path: string): { path: string; operations: ApiOperation[] } | undefined;
}

/**
 * Finds which declared path a request path falls under, as Express would route it (case
 * insensitive, a trailing slash allowed); literal segments win over `{params}`, so
 * `/subscriptions/plans` is not taken for `/subscriptions/{id}`.
 */
export function routeTable(operations: readonly ApiOperation[]): RouteTable {
  const byPath = new Map<string, ApiOperation[]>();
  for (const op of operations) byPath.set(op.path, [...(byPath.get(op.path) ?? []), op]);
  const entries = [...byPath]
    .map(([path, ops]) => ({ path, operations: ops, pattern: templatePattern(path), params: path.split('{').length - 1 }))
    .sort((a, b) => a.params - b.params);
  return {
    match(path) {
      const entry = entries.find((e) => e.pattern.test(path));
      return entry && { path: entry.path, operations: entry.operations };
    },
  };
}

function templatePattern(template: string): RegExp {
  const source = template
    .split(/(\{[^}]+\})/)
    .map((part) => (part.startsWith('{') ? '[^/]+' : part.replace(/[.*+?^$()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}/?$`, 'i');
}

/**
 * Methods by the declared operations, before any router sees the request: a declared path asked
 * with a method it does not answer is a 405 with `Allow` (not a 404, nor another route's answer),
 * and OPTIONS answers `Allow` exactly. CORS preflights are answered before this.
 */
export function methodGuard(routes: RouteTable): RequestHandler {
  return (req, res, next) => {
    const route = routes.match(req.path);
    if (!route) return next();
    const allowed = route.operations.map((op) => op.method.toUpperCase());
    if (allowed.includes('GET')) allowed.push('HEAD');
    if (req.method === 'OPTIONS') {
      res.set('Allow', allowed.join(', ')).status(204).end();
      return;
    }
    if (allowed.includes(req.method)) return next();
    throw new HttpProblem(405, 'Method Not Allowed', `${req.path} answers ${allowed.join(', ')}.`, {}, { Allow: allowed.join(', ') });
  };
}
