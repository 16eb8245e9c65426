import type { Request, RequestHandler } from 'express';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { AppDeps } from './deps';
import { currentUser } from './auth';
import type { RouteTable } from './contract';
import { HttpProblem } from './problem';

const WINDOW_SECONDS = 60;

interface Limit {
  /** Redis key prefix; a limiter is shared by every process using the same one. */
  name: string;
  perMinute: number;
  /** What is counted, for the problem's detail: "payment requests per user". */
  what: string;
}

/**
 * Counts in Redis, so the limit holds across any number of API processes. While Redis is not
 * ready each process counts in memory instead (`insuranceLimiter`): an outage loosens the limit
 * to one per process, it never fails a request.
 */
function rateLimiter(deps: Pick<AppDeps, 'redis' | 'logger'>, limit: Limit, keyOf: (req: Request) => string): RequestHandler {
  const options = { keyPrefix: `rate-limit:${limit.name}`, points: limit.perMinute, duration: WINDOW_SECONDS };
  const limiter = new RateLimiterRedis({
    ...options,
    storeClient: deps.redis,
    rejectIfRedisNotReady: true,
    insuranceLimiter: new RateLimiterMemory(options),
  });
  return async (req, _res, next) => {
    try {
      await limiter.consume(keyOf(req));
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) {
        (req.log ?? deps.logger).warn({ err: rejection, limit: limit.name }, 'rate limiter failed; request let through');
        return next();
      }
      const retryAfter = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
      throw new HttpProblem(
        429,
        'Too Many Requests',
        `At most ${limit.perMinute} ${limit.what} per minute; retry in ${retryAfter} s.`,
        {},
        { 'Retry-After': String(retryAfter) },
      );
    }
    next();
  };
}

/** The client's address: the connection's peer, or whom a proxy trusted by TRUST_PROXY names. */
export function clientAddress(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? 'unknown';
}

/**
 * RATE_LIMIT_IP_PER_MINUTE requests per client address. Operations declared `unlimited` (webhooks,
 * whose sender retries on its own schedule, health probes and /metrics) are not counted.
 */
export function ipRateLimit(deps: Pick<AppDeps, 'redis' | 'logger' | 'config'>, routes: RouteTable): RequestHandler {
  const limit = rateLimiter(
    deps,
    { name: 'ip', perMinute: deps.config.RATE_LIMIT_IP_PER_MINUTE, what: 'requests per client address' },
    clientAddress,
  );
  return (req, res, next) => {
    const method = req.method === 'HEAD' ? 'get' : req.method.toLowerCase();
    const operation = routes.match(req.path)?.operations.find((op) => op.method === method);
    if (operation?.unlimited) return next();
    return limit(req, res, next);
  };
}

// One payment limiter per app's deps, shared by the routers that take payments, so that their
// in-memory fallback also counts subscribe, payments and bookings together.
const paymentLimiters = new WeakMap<object, RequestHandler>();

/**
 * RATE_LIMIT_PAYMENTS_PER_USER_PER_MINUTE requests that charge money (subscribe, one-time
 * payment, booking) per user, all of them counted together. After `requireAuth`.
 */
export function paymentRateLimit(deps: Pick<AppDeps, 'redis' | 'logger' | 'config'>): RequestHandler {
  let limiter = paymentLimiters.get(deps);
  if (!limiter) {
    limiter = rateLimiter(
      deps,
      { name: 'payments', perMinute: deps.config.RATE_LIMIT_PAYMENTS_PER_USER_PER_MINUTE, what: 'payment requests per user' },
      (req) => currentUser(req).id,
    );
    paymentLimiters.set(deps, limiter);
  }
  return limiter;
}
