import { z } from 'zod';
import { CURRENCY_CODE } from '../domain/money';
import { HttpProblem } from './problem';

export interface InvalidParam {
  name: string;
  reason: string;
}

type RequestPart = 'body' | 'query' | 'params';

export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  return parseRequestPart('body', schema, body);
}

export function parseQuery<T extends z.ZodType>(schema: T, query: unknown): z.infer<T> {
  return parseRequestPart('query', schema, query);
}

export function parseParams<T extends z.ZodType>(schema: T, params: unknown): z.infer<T> {
  return parseRequestPart('params', schema, params);
}

/** Parses one part of a request; a 400 problem lists every field that failed, not just the first. */
function parseRequestPart<T extends z.ZodType>(part: RequestPart, schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const invalidParams = result.error.issues.flatMap((issue) => invalidParamsOf(part, issue));
  throw new HttpProblem(400, 'Invalid request', invalidParams.map((p) => `${p.name}: ${p.reason}`).join('; '), { invalidParams });
}

function invalidParamsOf(part: RequestPart, issue: z.core.$ZodIssue): InvalidParam[] {
  // An unknown key is reported once for the object; name each key instead.
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ name: fieldName(part, [...issue.path, key]), reason: 'Unknown field' }));
  }
  return [{ name: fieldName(part, issue.path), reason: issue.message }];
}

function fieldName(part: RequestPart, path: readonly PropertyKey[]): string {
  if (path.length === 0) return part;
  return path.map(String).join('.');
}

// Something visible (what `trim().min(1)` asks for) and no NUL, which PostgreSQL text cannot
// hold; written as a pattern the document shows (\ufeff is whitespace to JavaScript's trim but
// not to every regex engine).
// eslint-disable-next-line no-control-regex -- NUL is the character this pattern exists to refuse.
const VISIBLE_TEXT = /^[^\u0000]*[^\s\ufeff\u0000][^\u0000]*$/;

/**
 * Text without NUL, which PostgreSQL text cannot hold: a NUL reaching a query is a driver error
 * (a 500), so filters refuse it as a 400 naming the field. A pattern, so the document shows it.
 */
// eslint-disable-next-line no-control-regex -- NUL is the character this pattern exists to refuse.
export const WITHOUT_NUL = /^[^\u0000]*$/;

/**
 * An integer read from the query string. `z.coerce.number()` alone reads an empty value
 * (`?offset=`) as 0; here it is an error naming the parameter. The document still shows an integer.
 */
export function queryInteger(min: number, max: number) {
  return z.preprocess((value) => (value === '' ? Number.NaN : value), z.coerce.number().int().min(min).max(max));
}

/** Text to store: trimmed, something visible in it, no NUL, at most `max` characters. */
export function nonBlankText(max: number) {
  // The length is checked before trimming: the documented maxLength holds for what is sent, so
  // text padded past it with spaces is refused rather than silently trimmed into range.
  return z.string().max(max).trim().min(1).regex(VISIBLE_TEXT, 'Must not be blank nor contain NUL characters');
}

const AMOUNT_MESSAGE = 'Must be a positive whole number of minor units';

/** An amount to charge (the domain's `isChargeableAmount`), as a schema the OpenAPI document can show. */
export const chargeableAmount = z.int(AMOUNT_MESSAGE).min(1, AMOUNT_MESSAGE).max(Number.MAX_SAFE_INTEGER, AMOUNT_MESSAGE);

/** An ISO 4217 code in either case, answered lower-case. */
export const currencyCode = z
  .string()
  .regex(CURRENCY_CODE, 'Must be an ISO 4217 currency code such as usd')
  .transform((code) => code.toLowerCase());

// Twelve or more digits in a row look like a card number (PANs are 12 to 19 digits).
const PAYMENT_METHOD_TOKEN = /^(?!.*\d{12})(?:pm|tok|card|src)_[A-Za-z0-9_]{1,250}$/;

/**
 * A payment method token such as `pm_card_visa`, never card data: the API refuses anything else
 * with a 400, so no card number is stored or sent to Temporal.
 */
export const paymentMethodToken = z
  .string()
  .regex(PAYMENT_METHOD_TOKEN, 'Must be a payment method token such as pm_card_visa, never card data')
  .meta({ description: 'A payment method token from the gateway (pm_…, tok_…, card_…, src_…); card numbers are refused.', example: 'pm_card_visa' });

/**
 * A keyset page's cursor: the last row's id, base64url-encoded so clients treat it as opaque.
 * `cursorOf` writes one; the schema reads it back; `unknownCursor` answers one naming no row.
 */
export const pageCursor = z
  .string()
  .max(100)
  .transform((text, ctx) => {
    const id = Buffer.from(text, 'base64url').toString('utf8');
    if (z.uuid().safeParse(id).success) return id;
    ctx.addIssue({ code: 'custom', message: CURSOR_REASON });
    return z.NEVER;
  })
  .meta({ description: 'The `nextCursor` of the page before; absent for the first page.' });

const CURSOR_REASON = 'Must be a nextCursor from an earlier page';

export function cursorOf(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

export function unknownCursor(): HttpProblem {
  return new HttpProblem(400, 'Invalid request', `cursor: ${CURSOR_REASON}`, { invalidParams: [{ name: 'cursor', reason: CURSOR_REASON }] });
}
