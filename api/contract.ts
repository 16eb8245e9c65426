import { STATUS_CODES } from 'node:http';
import { z } from 'zod';
import { PROBLEM_CONTENT_TYPE, problemSchema } from './problem';

/**
 * What a route promises, declared beside it in its router file with the same zod schemas its
 * handler parses with. `api/openapi.ts` turns the declarations into the OpenAPI document, and
 * the metrics label requests with their `path`, so an undeclared route shows up in both.
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
    body?: z.ZodType;
    /** Defaults to application/json. */
    bodyContentType?: string;
    query?: z.ZodObject;
    params?: z.ZodObject;
    headers?: z.ZodObject;
  };
  responses: Record<number, ApiResponse>;
  /** Exempt from the per-IP rate limit (no 429 in its answers). */
  unlimited?: boolean;
  /** Answers `Idempotency-Key` (POSTs that create something). */
  idempotent?: boolean;
}

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface ApiResponse {
  description: string;
  schema?: z.ZodType;
  /** Defaults to application/json, or application/problem+json for 4xx and 5xx. */
  contentType?: string;
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
