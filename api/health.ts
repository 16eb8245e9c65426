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

/** GET /healthz: the process is up. GET /readyz: PostgreSQL, Redis and Temporal all answer. */
export function healthRoutes(deps: Pick<AppDeps, 'sql' | 'redis' | 'temporal'>): Router {
  const { router, route } = apiRouter();
  const checks: Record<Dependency, () => Promise<unknown>> = {
    postgres: () => deps.sql`select 1`,
    redis: () => deps.redis.ping(),
    temporal: () => deps.temporal.connection.withDeadline(Date.now() + CHECK_TIMEOUT_MS, () => deps.temporal.workflowService.getSystemInfo({})),
  };

  route(healthApi.live, (_req, res) => {
    res.json({ status: 'ok' });
  });

  route(healthApi.ready, async (req, res) => {
    const names = Object.keys(checks) as Dependency[];
    const results = await Promise.all(
      names.map(async (name): Promise<[Dependency, CheckResult]> => {
        try {
          await withTimeout(checks[name](), CHECK_TIMEOUT_MS);
          return [name, 'ok'];
        } catch (err) {
          req.log.warn({ err, dependency: name }, 'readiness check failed');
          return [name, 'unreachable'];
        }
      }),
    );
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
    summary: 'Readiness: PostgreSQL, Redis and Temporal all answer',
    auth: 'public',
    unlimited: true,
    responses: {
      200: json('Ready', z.strictObject({ status: z.literal('ready'), checks: checksSchema })),
      ...problems([503, 'A dependency is unreachable; `checks` says which']),
    },
  },
} satisfies Record<string, ApiOperation>;
