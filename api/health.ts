import type { Router } from 'express';
import { z } from 'zod';
import type { AppDeps } from './deps';
import { json, problems, type ApiOperation } from './contract';
import { HttpProblem } from './problem';
import { apiRouter } from './route';

type Dependency = 'postgres' | 'redis' | 'temporal';
type CheckResult = 'ok' | 'unreachable';

// A probe must answer well within an orchestrator's probe timeout even when a dependency hangs.
const CHECK_TIMEOUT_MS = 2_000;

// How long one readiness result answers every probe: a flood of probes (many load balancers,
// each probing each instance, or anyone at all since /readyz is public) costs PostgreSQL, Redis
// and Temporal at most one check per process per second, and a dependency that stops answering
// still turns /readyz into a 503 within about a second (plus CHECK_TIMEOUT_MS if it hangs).
const RESULT_FRESH_MS = 1_000;

type Readiness = Array<[Dependency, CheckResult]>;

/** GET /healthz: the process is up. GET /readyz: PostgreSQL, Redis and Temporal all answer. */
export function healthRoutes(deps: Pick<AppDeps, 'sql' | 'redis' | 'temporal' | 'logger'>): Router {
  const { router, route } = apiRouter();
  const checks: Record<Dependency, () => Promise<unknown>> = {
    postgres: () => deps.sql`select 1`,
    redis: () => deps.redis.ping(),
    temporal: () => deps.temporal.connection.withDeadline(Date.now() + CHECK_TIMEOUT_MS, () => deps.temporal.workflowService.getSystemInfo({})),
  };
  const readiness = sharedWhileFresh(async (): Promise<Readiness> => {
    const names = Object.keys(checks) as Dependency[];
    return Promise.all(
      names.map(async (name): Promise<[Dependency, CheckResult]> => {
        try {
          await withTimeout(checks[name](), CHECK_TIMEOUT_MS);
          return [name, 'ok'];
        } catch (err) {
          // Once per check, not once per probe that shares it.
          deps.logger.warn({ err, dependency: name }, 'readiness check failed');
          return [name, 'unreachable'];
        }
      }),
    );
  }, RESULT_FRESH_MS);

  route(healthApi.live, (_req, res) => {
    res.json({ status: 'ok' });
  });

  route(healthApi.ready, async (_req, res) => {
    const results = await readiness();
    const unreachable = results.filter(([, result]) => result !== 'ok').map(([name]) => name);
    const summary = Object.fromEntries(results);
    if (unreachable.length > 0) {
      throw new HttpProblem(503, 'Not ready', `Not reachable: ${unreachable.join(', ')}.`, {
        checks: summary,
        unreachable,
      });
    }
    res.json({ status: 'ready', checks: summary });
  });

  return router;
}

/**
 * `run` at most once at a time: callers while it runs share its answer, and so do callers up to
 * `freshMs` after it answered; the next caller after that runs it again. `run` must not reject.
 */
function sharedWhileFresh<T>(run: () => Promise<T>, freshMs: number): () => Promise<T> {
  let latest: { answer: Promise<T>; answeredAt?: number } | undefined;
  return () => {
    const stale = latest?.answeredAt !== undefined && Date.now() - latest.answeredAt > freshMs;
    if (latest && !stale) return latest.answer;
    const current: { answer: Promise<T>; answeredAt?: number } = { answer: run() };
    const answered = () => (current.answeredAt = Date.now());
    current.answer.then(answered, answered);
    latest = current;
    return current.answer;
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const checksSchema = z.record(z.enum(['postgres', 'redis', 'temporal']), z.enum(['ok', 'unreachable']));

export const healthApi = {
  live: {
    method: 'get',
    path: '/healthz',
    summary: 'Liveness: the process is up',
    auth: 'public',
    unlimited: true,
    responses: { 200: json('Up', z.strictObject({ status: z.literal('ok') })) },
  },
  ready: {
    method: 'get',
    path: '/readyz',
    summary: 'Readiness: PostgreSQL, Redis and Temporal all answer (one check at most a second old answers every probe)',
    auth: 'public',
    unlimited: true,
    responses: {
      200: json('Ready', z.strictObject({ status: z.literal('ready'), checks: checksSchema })),
      ...problems([503, 'A dependency is unreachable; `checks` says which']),
    },
  },
} satisfies Record<string, ApiOperation>;
