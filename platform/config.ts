import { z } from 'zod';

/**
 * Every environment variable the processes read, validated once at start-up.
 * The README's configuration table mirrors this schema; keep them in step.
 */
const isoDuration = z
  .string()
  .regex(/^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$/, 'an ISO-8601 duration such as PT30S or P1D');
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
  REDIS_URL: z.url({ protocol: /^rediss?$/ }),
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  TEMPORAL_TLS_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_KEY_PATH: z.string().min(1).optional(),
  TEMPORAL_UI_URL: z.url().default('http://localhost:8233'),
  JWT_SECRET: z.string().min(32, 'at least 32 characters'),
  JWT_TTL: isoDuration.default('PT1H'),
  STRIPE_SECRET_KEY: z.string().startsWith('sk_').optional(),
  STRIPE_API_URL: z.url().optional(),
  STRIPE_WEBHOOK_SECRET: z.string().min(1),
  PENDING_PAYMENT_TIMEOUT: isoDuration.default('P1D'),
  SMTP_URL: z.url({ protocol: /^smtps?$/ }).optional(),
  MAIL_FROM: z.string().min(3).default('Billing <billing@localhost>'),
  CORS_ORIGINS: commaList.default([]),
  RATE_LIMIT_PAYMENTS_PER_USER_PER_MINUTE: z.coerce.number().int().min(1).default(10),
  RATE_LIMIT_IP_PER_MINUTE: z.coerce.number().int().min(1).default(100),
  TRUST_PROXY: z.string().optional().transform(trustProxySetting),
  // host:port where the worker serves Temporal's own metrics for Prometheus; unset serves none.
  WORKER_METRICS_ADDRESS: z
    .string()
    .regex(/^[^:]+:\d+$/, 'host:port such as 0.0.0.0:9464')
    .optional(),
  // Worker tuning (bench/README.md has the figures behind these). Per worker, i.e. per task queue.
  WORKER_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().min(1).default(100),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: z.coerce.number().int().min(2).default(40),
  // Sticky cache; unset leaves the SDK's size, about 600 workflows per GiB of V8 heap.
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).optional(),
  // Across every worker of the `payments` queue (the server enforces it), so a renewal storm stays
  // under the gateway's request limit: every gateway call, of any workflow, is one activity there.
  GATEWAY_MAX_CALLS_PER_SECOND: z.coerce.number().positive().default(100),
});

export type Config = z.infer<typeof envSchema>;

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
  if (parsed.success) return parsed.data;
  throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
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
