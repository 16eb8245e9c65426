import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import pino from 'pino';
import { censorSecretFields, type Logger } from '../platform/logger';

export const REQUEST_ID_HEADER = 'X-Request-Id';
// A caller's id is kept only if it cannot smuggle anything odd into logs or headers.
const ACCEPTABLE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const PROBE_PATHS = new Set(['/healthz', '/readyz']);

declare module 'http' {
  interface IncomingMessage {
    /** The request id (also the `X-Request-Id` response header). */
    id: string;
    /** A logger whose every line carries `reqId`, then `userId` and `workflowId` once known. */
    log: Logger;
  }
}

/** What the request's log lines say about it, and its logger once one was asked for. */
interface RequestLog {
  /** The logger the request's loggers are children of. */
  parent: Logger;
  /** The parent with the response line's own redaction, for lines that are only that line. */
  responseLine: Logger;
  bindings: Record<string, string>;
  logger?: Logger;
  started: number;
  logged: boolean;
}

const requestLogs = new WeakMap<Request, RequestLog>();

// One accessor and two listeners shared by every request, rather than closures made for each.
const LOG_ACCESSOR: PropertyDescriptor = {
  configurable: true,
  enumerable: true,
  get(this: Request): Logger {
    const log = requestLogs.get(this)!;
    return (log.logger ??= log.parent.child(log.bindings));
  },
  set(this: Request, value: Logger) {
    requestLogs.get(this)!.logger = value;
  },
};

function onResponseClose(this: Response): void {
  logResponse(this);
}

function onResponseError(this: Response, err: Error): void {
  logResponse(this, err);
}

/**
 * Gives every request an id (the caller's `X-Request-Id` when it is sane, else a UUID), echoes
 * it in the response, and makes `req.log` a child logger whose every line carries `reqId`
 * (and `userId` once `requireAuth` ran, `workflowId` once `logWorkflow` did). Logs one line per
 * response, as pino-http did (`req`, `res`, `responseTime`; `err` for a 5xx); successful probes
 * stay quiet.
 *
 * Why not pino-http: it makes three or four child loggers per request up front, and a child
 * serialises and redacts its bindings when made (the redaction paths of platform/logger.ts are
 * wildcards, so every binding is walked), about a fifth of the API's CPU per cheap request even
 * at `warn`, where a successful request writes nothing. Here the child is made only when a line
 * is written. Its children also replaced the logger's error serializer with the standard one,
 * which writes a failed query's parameters; these children keep the logger's own.
 */
export function requestLogger(logger: Logger): RequestHandler {
  const parent = logger.child({}, { serializers: { req: pino.stdSerializers.req, res: pino.stdSerializers.res } });
  // The response line holds only the request, the response and string bindings, which its
  // serialisers censor in one pass (censorSecretFields): no wildcard redaction to walk.
  const responseLine = logger.child(
    {},
    {
      redact: { paths: [] },
      serializers: {
        req: (req: Request) => censorSecretFields(pino.stdSerializers.req(req)),
        res: (res: Response) => censorSecretFields(pino.stdSerializers.res(res)),
      },
    },
  );
  return (req, res, next) => {
    const offered = req.headers['x-request-id'];
    const id = typeof offered === 'string' && ACCEPTABLE_REQUEST_ID.test(offered) ? offered : randomUUID();
    res.setHeader(REQUEST_ID_HEADER, id);
    req.id = id;
    requestLogs.set(req, { parent, responseLine, bindings: { reqId: id }, started: Date.now(), logged: false });
    Object.defineProperty(req, 'log', LOG_ACCESSOR);
    // `close` comes after `finish`, and alone when the client went away first.
    res.once('close', onResponseClose);
    res.once('error', onResponseError);
    next();
  };
}

function logResponse(res: Response, err?: Error): void {
  const { req } = res;
  const log = requestLogs.get(req);
  if (!log || log.logged) return;
  log.logged = true;
  const level =
    err || res.statusCode >= 500 ? 'error' : PROBE_PATHS.has(req.originalUrl.split('?')[0]) ? 'silent' : res.statusCode >= 400 ? 'warn' : 'info';
  if (level === 'silent' || !log.parent.isLevelEnabled(level)) return;
  const responseTime = Date.now() - log.started;
  if (level === 'error') {
    // An error may carry anything: the logger's full redaction.
    const logger = log.parent.child({ ...log.bindings, req });
    logger.error({ res, err: err ?? new Error(`failed with status code ${res.statusCode}`), responseTime }, 'request errored');
    return;
  }
  // One call rather than a child and a call: the same line (bindings first), one serialisation.
  log.responseLine[level](
    { ...log.bindings, req, res, responseTime },
    !req.readableAborted && res.writableEnded ? 'request completed' : 'request aborted',
  );
}

/**
 * Adds `bindings` to every later line of the request's logger and to its response line. Routers
 * mounted without the request logger (some tests) extend `req.log` if they have one.
 */
export function addLogBindings(req: Request, bindings: Record<string, string>): void {
  const log = requestLogs.get(req);
  if (!log) {
    if (req.log) req.log = req.log.child(bindings);
    return;
  }
  Object.assign(log.bindings, bindings);
  if (log.logger) log.logger = log.logger.child(bindings);
}

/**
 * Names the workflow this request starts, signals or updates: the request's later log lines
 * and its response line carry `workflowId`, next to `reqId` and `userId`.
 */
export function logWorkflow(req: Request, res: Response, workflowId: string): void {
  res.locals.workflowId = workflowId;
  addLogBindings(req, { workflowId });
}
