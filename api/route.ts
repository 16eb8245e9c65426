import { Router, type RequestHandler } from 'express';
import type { AppDeps } from './deps';
import { requireAuth, requireRole } from './auth';
import type { ApiOperation } from './contract';
import { idempotencyScope } from './derived-ids';
import { idempotent } from './idempotency';

/**
 * A router whose routes are served from their declarations (`ApiOperation`s, one table per router
 * file): the declared path and method are where a route is mounted, so the OpenAPI document, the
 * 405 method guard and the metrics' route labels, all made from the same declarations, cannot
 * disagree with what is served. Routes carry their full path; the app mounts routers at its root.
 */
export interface ApiRouter {
  router: Router;
  /**
   * Serves `operation` at its method and path. Its guards come from the declaration, so the
   * document cannot promise what is not enforced: the bearer token (and the staff role) that its
   * `auth` names, then the given middlewares (a rate limit, a raw-body parser), then
   * `Idempotency-Key` replay when it is `idempotent`, then the handler, which comes last.
   */
  route: (operation: ApiOperation, ...handlers: [...RouteHandler[], RouteHandler]) => void;
}

/** A route's handler or middleware; its path parameters are single segments (`{id}`), never lists. */
export type RouteHandler = RequestHandler<Record<string, string>>;

/** What the declared guards need; a router of public routes only needs nothing. */
export type RouteGuardDeps = Pick<AppDeps, 'config' | 'db'>;

export function apiRouter(deps?: RouteGuardDeps): ApiRouter {
  const router = Router();
  const guards = deps && lazyGuards(deps);
  return {
    router,
    route(operation, ...handlers) {
      const before = handlers.slice(0, -1);
      const handler = handlers[handlers.length - 1];
      if (!guards && (operation.auth !== 'public' || operation.idempotent)) {
        throw new Error(`${operation.method.toUpperCase()} ${operation.path} needs guards; pass deps to apiRouter`);
      }
      router[operation.method](
        expressPath(operation.path),
        ...(operation.auth === 'public' ? [] : [guards!.authenticated()]),
        ...(operation.auth === 'staff' ? [guards!.staffOnly] : []),
        ...before,
        ...(operation.idempotent ? [guards!.idempotent(operation)] : []),
        handler,
      );
    },
  };
}

/**
 * The router, entered only by requests whose path starts with the literal beginning of one of its
 * routes (compared as Express compares, ignoring case): every request used to walk every route of
 * the ~25 routers mounted before its own, a tenth of the API's CPU for a cheap answer such as a
 * refused hold. A router with anything but plain routes (a middleware, a pattern) is always entered.
 */
export function enteredOnlyForItsPaths(router: Router): RequestHandler {
  const prefixes: string[] = [];
  for (const layer of router.stack) {
    const path = layer.route?.path;
    if (typeof path !== 'string') return router;
    prefixes.push(path.slice(0, path.search(/[:*{}()?+\\]|$/)).toLowerCase());
  }
  const enter: RequestHandler = (req, res, next) => {
    const path = req.path.toLowerCase();
    if (prefixes.some((prefix) => path.startsWith(prefix))) return router(req, res, next);
    next();
  };
  // Listed as the router it enters (Router#listRoutes recurses into a handler with a stack).
  return Object.assign(enter, { stack: router.stack, listRoutes: () => (router as unknown as { listRoutes(): unknown[] }).listRoutes() });
}

/** Express's form of a declared path: `/api/v1/subscriptions/{id}` → `/api/v1/subscriptions/:id`. */
export function expressPath(openApiPath: string): string {
  return openApiPath.replace(/\{(\w+)\}/g, ':$1');
}

// Built once per router, on first use: verifying tokens derives the signing key.
function lazyGuards(deps: RouteGuardDeps) {
  let authenticated: RequestHandler | undefined;
  return {
    authenticated: () => (authenticated ??= requireAuth(deps)),
    staffOnly: requireRole('staff'),
    // Scoped to the declared route, not the request's spelling of it.
    idempotent: (operation: ApiOperation) =>
      idempotent(deps, { scope: idempotencyScope(operation), converges: operation.idempotent === 'converges' }),
  };
}
