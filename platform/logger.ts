import { DrizzleQueryError } from 'drizzle-orm';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Config } from './config';

export type { Logger } from 'pino';

export const REDACTED = '[REDACTED]';

// Field names whose value is a credential or card data wherever they appear in a log object,
// including request and response headers as pino-http serialises them (lower-case names).
const SECRET_FIELDS = [
  'password',
  'newPassword',
  'currentPassword',
  'passwordHash',
  'token',
  'accessToken',
  'refreshToken',
  'secret',
  'apiKey',
  'authorization',
  'cookie',
  'set-cookie',
  'stripe-signature',
  'x-api-key',
  'card',
  'cardNumber',
  'cvc',
  'cvv',
  'JWT_SECRET',
  'STRIPE_SECRET_KEY',
  'STRIPE_WEBHOOK_SECRET',
  'TEMPORAL_API_KEY',
  'DATABASE_URL',
  'REDIS_URL',
  'SMTP_URL',
];

// Redaction paths are exact, so each field is listed at every depth our log objects reach
// (req.headers.authorization is depth 2).
const MAX_SECRET_DEPTH = 3;

function secretFieldPaths(): string[] {
  const paths: string[] = [];
  for (let depth = 0; depth <= MAX_SECRET_DEPTH; depth++) {
    const parents = Array.from({ length: depth }, () => '*').join('.');
    for (const field of SECRET_FIELDS) paths.push(fieldPath(parents, field));
  }
  return paths;
}

// Names with a hyphen need the bracket form: *.headers["stripe-signature"].
function fieldPath(parents: string, field: string): string {
  if (!/^[A-Za-z_$][\w$]*$/.test(field)) return `${parents}["${field}"]`;
  return parents ? `${parents}.${field}` : field;
}

export const REDACTED_PATHS: readonly string[] = secretFieldPaths();

const SECRET_FIELD_NAMES: ReadonlySet<string> = new Set(SECRET_FIELDS);
// Deeper than any object a response line holds; past it a value is censored whole.
const MAX_CENSOR_DEPTH = 8;

/**
 * A copy of `value` with the value of every secret field (`SECRET_FIELDS`, at any depth) replaced
 * by `REDACTED`: one pass with a set lookup per key. The request logger's response line
 * (api/request-context.ts) is censored this way instead of by pino's redaction, whose 100 wildcard
 * paths were re-parsed and walked over every line (about a fifth of the API's CPU per refused hold;
 * bench/README.md). Every other line keeps `REDACTED_PATHS`.
 */
export function censorSecretFields(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > MAX_CENSOR_DEPTH) return REDACTED;
  if (Array.isArray(value)) return value.map((item: unknown) => censorSecretFields(item, depth + 1));
  const censored: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) censored[key] = SECRET_FIELD_NAMES.has(key) ? REDACTED : censorSecretFields(field, depth + 1);
  return censored;
}

/**
 * pino's error serializer, with two errors made safe to log: drizzle's query error carries the
 * bound parameters (password hashes, emails) in its message and `params`, so the driver's own
 * error is logged with the SQL text instead; gRPC's `metadata` is an object graph pino cannot
 * serialise, which would lose the whole error (Temporal client errors carry it).
 */
function serializeError(err: Error): ReturnType<typeof pino.stdSerializers.err> {
  // By name too: drizzle ships CommonJS and ESM builds, each with its own class.
  if (err instanceof DrizzleQueryError || err?.constructor?.name === 'DrizzleQueryError') {
    const { cause, query } = err as DrizzleQueryError;
    return { ...serializeError(cause instanceof Error ? cause : new Error('query failed')), query };
  }
  const serialized = pino.stdSerializers.err(err);
  if (serialized && typeof serialized === 'object' && 'metadata' in serialized) delete serialized.metadata;
  return serialized;
}

/** JSON logs on stdout (or `destination`, which tests use to read what was written). */
export function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'NODE_ENV'>, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: config.LOG_LEVEL,
    base: { env: config.NODE_ENV },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: [...REDACTED_PATHS], censor: REDACTED },
    serializers: { err: serializeError },
  };
  return destination ? pino(options, destination) : pino(options);
}
