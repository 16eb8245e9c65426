import { z } from 'zod';
import { durationToMilliseconds } from '../domain/period';
import { parseReferralCredit } from '../domain/referral';

/**
 * Every environment variable the processes read, validated once at start-up.
 * The README's configuration table mirrors this schema; keep them in step.
 */
const isoDuration = z
  .string()
  .regex(/^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$/, 'an ISO-8601 duration such as PT30S or P1D');
/** A duration of fixed length (no months or years), longer than zero: a timeout or an age. */
const fixedDuration = isoDuration.refine(
  (text) => {
    try {
      return durationToMilliseconds(text) > 0;
    } catch {
      return false;
    }
  },
  { message: 'a duration longer than zero without months or years, such as PT30M' },
);
const commaList = z.string().transform((s) =>
  s
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean),
);

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  // Milliseconds a statement may run, and a transaction may sit idle, before PostgreSQL ends it:
  // no request or activity can hold rows or a pooled connection for long.
  DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(100).default(15_000),
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }),
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  TEMPORAL_TLS_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_KEY_PATH: z.string().min(1).optional(),
  TEMPORAL_UI_URL: z.url().default('http://localhost:8233'),
  JWT_SECRET: z.string().min(32, 'at least 32 characters'),
  JWT_TTL: isoDuration.default('PT1H'),
  // Which gateway takes the money. Unset: the sandbox in development and test; production must say.
  PAYMENT_GATEWAY: z.enum(['stripe', 'sandbox']).optional(),
  STRIPE_SECRET_KEY: z.string().startsWith('sk_').optional(),
  STRIPE_API_URL: z.url().optional(),
  STRIPE_WEBHOOK_SECRET: z.string().min(1),
  PENDING_PAYMENT_TIMEOUT: isoDuration.default('P1D'),
  // Where a customer completes a payment that needs them (3-D Secure); {paymentId} is replaced.
  PAYMENT_ACTION_URL: z
    .url()
    .refine((url) => url.includes('{paymentId}'), 'a URL containing {paymentId}, such as https://app.example.com/pay/{paymentId}')
    .optional(),
  SMTP_URL: z.url({ protocol: /^smtps?$/ }).optional(),
  MAIL_FROM: z.string().min(3).default('Billing <billing@localhost>'),
  CORS_ORIGINS: commaList.default([]),
  RATE_LIMIT_PAYMENTS_PER_USER_PER_MINUTE: z.coerce.number().int().min(1).default(10),
  RATE_LIMIT_IP_PER_MINUTE: z.coerce.number().int().min(1).default(100),
  TRUST_PROXY: z.string().optional().transform(trustProxySetting),
  // Live availability streams (Server-Sent Events): open at once per client address, per API
  // process, and how long one lasts before the server ends it and the client reconnects.
  SSE_STREAMS_PER_IP: z.coerce.number().int().min(1).default(20),
  SSE_STREAMS_MAX: z.coerce.number().int().min(1).default(1000),
  SSE_STREAM_MAX_AGE: fixedDuration.default('PT30M'),
  // host:port where the worker serves Temporal's own metrics for Prometheus; unset serves none.
  WORKER_METRICS_ADDRESS: z
    .string()
    .regex(/^[^:]+:\d+$/, 'host:port such as 0.0.0.0:9464')
    .optional(),
  // Where the API serves GET /metrics for Prometheus, and then only there: `host:port`, or a bare
  // port on loopback (0 picks a free one). Unset serves it on PORT beside the API, where a load
  // balancer would show it to anyone: set it wherever PORT is public.
  API_METRICS_ADDRESS: z
    .string()
    .regex(/^(?:[^:]+:)?\d+$/, 'host:port such as 0.0.0.0:9465, or a port such as 9465 (on 127.0.0.1)')
    .transform(listenAddress)
    .refine(({ port }) => port <= 65535, 'a port from 0 to 65535')
    .optional(),
  // Worker tuning (bench/README.md has the figures behind these). Per worker, i.e. per task queue.
  WORKER_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().min(1).default(100),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: z.coerce.number().int().min(2).default(40),
  // The `renewals` worker's own, lower: a worker takes tasks off the server's queue as fast as it
  // has slots, and then runs them on the same CPU as a customer's subscribe; renewals may be late.
  WORKER_RENEWALS_MAX_CONCURRENT_WORKFLOW_TASKS: z.coerce.number().int().min(2).default(4),
  // Sticky cache; unset leaves the SDK's size, about 600 workflows per GiB of V8 heap.
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).optional(),
  // How long a cached workflow's next task waits for its worker before any worker may take it (and
  // replay its history). The SDK's 10 s turned every renewal storm longer than 10 s into replays.
  WORKER_STICKY_QUEUE_TIMEOUT: fixedDuration.default('PT1M'),
  // Across every worker of the `payments` queue (the server enforces it), so a renewal storm stays
  // under the gateway's request limit: every gateway call, of any workflow, is one activity there.
  GATEWAY_MAX_CALLS_PER_SECOND: z.coerce.number().positive().default(100),
  // Live holds one customer may have at once, across offerings (fair use; each offering also caps
  // its units per customer). Checked in the transaction that claims a hold's units.
  HOLDS_PER_CUSTOMER_MAX: z.coerce.number().int().min(1).default(20),
  // How far past its TTL a hold is kept while its booking's charge waits for 3-D Secure.
  HOLD_MAX_EXTENSION: fixedDuration.default('PT15M'),
  // What a referrer earns on their credit balance when a customer they referred pays a first period.
  REFERRAL_CREDIT: z
    .string()
    .default('500 usd')
    .transform((text, ctx) => {
      const credit = parseReferralCredit(text);
      if (!credit) ctx.addIssue({ code: 'custom', message: 'minor units and a currency, such as 500 usd' });
      return credit ?? { amount: 0, currency: 'usd' };
    }),
});

type Environment = z.infer<typeof envSchema>;

const DEVELOPMENT_PAYMENT_ACTION_URL = 'http://localhost:3000/pay/{paymentId}';

/** The configuration with its choices made: a gateway always named, an action URL always set. */
export type Config = Omit<Environment, 'PAYMENT_GATEWAY' | 'PAYMENT_ACTION_URL'> & {
  PAYMENT_GATEWAY: 'stripe' | 'sandbox';
  PAYMENT_ACTION_URL: string;
};

/**
 * Money settings that depend on each other. A production deploy names its gateway (a forgotten
 * key must not silently turn it into the sandbox, which approves every test card) and where a
 * customer completes a payment; the stripe gateway needs its key.
 */
function moneySettings(env: Environment): { config?: Config; problems: string[] } {
  const problems: string[] = [];
  const production = env.NODE_ENV === 'production';
  if (production && env.PAYMENT_GATEWAY === undefined) {
    problems.push('PAYMENT_GATEWAY: required when NODE_ENV=production (stripe, or sandbox to take no real money)');
  }
  const gateway = env.PAYMENT_GATEWAY ?? 'sandbox';
  if (gateway === 'stripe' && env.STRIPE_SECRET_KEY === undefined) {
    problems.push('STRIPE_SECRET_KEY: required when PAYMENT_GATEWAY=stripe (sk_live_… or sk_test_…)');
  }
  if (production && env.PAYMENT_ACTION_URL === undefined) {
    problems.push('PAYMENT_ACTION_URL: required when NODE_ENV=production (where customers complete a payment, with {paymentId})');
  }
  if (problems.length > 0) return { problems };
  return { problems, config: { ...env, PAYMENT_GATEWAY: gateway, PAYMENT_ACTION_URL: env.PAYMENT_ACTION_URL ?? DEVELOPMENT_PAYMENT_ACTION_URL } };
}

/**
 * Express's `trust proxy`: which proxies may name the client in X-Forwarded-For, so per-IP rate
 * limits count clients, not the load balancer. A hop count (1), `true`, or addresses and subnets;
 * unset or `false` trusts none, and the client is the connection's peer.
 */
function trustProxySetting(value: string | undefined): boolean | number | string {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  return /^\d+$/.test(value) ? Number(value) : value;
}

/** `host:port`, or a bare port on loopback: a listener meant for the machine's own network. */
function listenAddress(text: string): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  return colon < 0 ? { host: '127.0.0.1', port: Number(text) } : { host: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses `env` (empty strings count as unset); throws a ConfigError naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  const { config, problems } = moneySettings(parsed.data);
  if (!config) throw new ConfigError(problems);
  return config;
}

/** For process entry points: a bad environment ends the process with the message naming each variable. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
}
