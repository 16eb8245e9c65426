import pino, { type DestinationStream, type Logger } from 'pino';
import type { Config } from './config';

export type { Logger } from 'pino';

export const REDACTED = '[REDACTED]';

// Field names whose value is a credential or card data wherever they appear in a log object.
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

// Headers as pino-http serialises them (lower-case names under req.headers / res.headers).
const SECRET_HEADER_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["stripe-signature"]',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
];

// Redaction paths are exact, so each field is listed at the depths our log objects reach.
const MAX_SECRET_DEPTH = 3;

function secretFieldPaths(): string[] {
  const paths: string[] = [];
  for (let depth = 0; depth <= MAX_SECRET_DEPTH; depth++) {
    const prefix = '*.'.repeat(depth);
    for (const field of SECRET_FIELDS) paths.push(`${prefix}${field}`);
  }
  return paths;
}

export const REDACTED_PATHS: readonly string[] = [...SECRET_HEADER_PATHS, ...secretFieldPaths()];

/** JSON logs on stdout (or `destination`, which tests use to read what was written). */
export function createLogger(
  config: Pick<Config, 'LOG_LEVEL' | 'NODE_ENV'>,
  destination?: DestinationStream,
): Logger {
  const options: pino.LoggerOptions = {
    level: config.LOG_LEVEL,
    base: { env: config.NODE_ENV },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: [...REDACTED_PATHS], censor: REDACTED },
  };
  return destination ? pino(options, destination) : pino(options);
}
