import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, RequestHandler, Response } from 'express';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../platform/logger';
import { findCurrentUser } from './auth';

export const REQUEST_ID_HEADER = 'X-Request-Id';
// A caller's id is kept only if it cannot smuggle anything odd into logs or headers.
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const PROBE_PATHS = new Set(['/healthz', '/readyz']);

/**
 * Gives every request an id (the caller's `X-Request-Id` when it is sane, else a UUID), echoes
 * it in the response, and makes `req.log` a child logger whose every line carries `reqId`
 * (and `userId` once `requireAuth` ran, `workflowId` once `logWorkflow` did). Logs one line per
 * response; successful probes stay quiet.
 */
export function requestLogger(logger: Logger): RequestHandler {
  return pinoHttp({
    logger,
    quietReqLogger: true,
    genReqId: (req: IncomingMessage, res: ServerResponse) => {
      const offered = req.headers['x-request-id'];
      const id = typeof offered === 'string' && ACCEPTABLE_REQUEST_ID.test(offered) ? offered : randomUUID();
      res.setHeader(REQUEST_ID_HEADER, id);
      return id;
    },
    customProps: (req, res) => {
      const user = findCurrentUser(req as Parameters<typeof findCurrentUser>[0]);
      const workflowId = (res as Partial<Response>).locals?.workflowId as string | undefined;
      return { ...(user ? { userId: user.id } : {}), ...(workflowId ? { workflowId } : {}) };
    },
    customLogLevel: (req, res, err) => {
      if (err || res.statusCode >= 500) return 'error';
      if (PROBE_PATHS.has((req.url ?? '').split('?')[0])) return 'silent';
      return res.statusCode >= 400 ? 'warn' : 'info';
    },
  });
}

/**
 * Names the workflow this request starts, signals or updates: the request's later log lines
 * and its response line carry `workflowId`, next to `reqId` and `userId`.
 */
export function logWorkflow(req: Request, res: Response, workflowId: string): void {
  res.locals.workflowId = workflowId;
  // Routers mounted without the request logger (some tests) have no req.log to extend.
  if (req.log) req.log = req.log.child({ workflowId });
}
