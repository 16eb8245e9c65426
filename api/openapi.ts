import path from 'node:path';
import { OpenApiGeneratorV31, OpenAPIRegistry, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import type { Router } from 'express';
import { z } from 'zod';
import { adminApi } from './admin';
import { adminCheckInApi } from './admin-check-in';
import { adminOfferingCancelApi } from './admin-offering-cancel';
import { adminPaymentApi } from './admin-payments';
import { adminReconciliationApi } from './admin-reconciliation';
import { authApi } from './auth';
import { bookingApi } from './booking';
import { json, problems, type ApiOperation, type ApiResponse } from './contract';
import { couponApi } from './coupon';
import { creditApi } from './credits';
import { healthApi } from './health';
import { invoiceApi } from './invoice';
import { metricsApi } from './metrics';
import { offeringApi } from './offering';
import { paymentApi } from './payment';
import { referralApi } from './referral';
import { paymentMethodApi } from './payment-methods';
import { sandboxApi } from './sandbox';
import { planApi } from './plan';
import { PROBLEM_CONTENT_TYPE } from './problem';
import { apiRouter } from './route';
import { subscriptionApi } from './subscription';
import { subscriptionChangeApi } from './subscription-changes';
import { waitlistApi } from './waitlist';
import { webhookApi } from './webhook';

const BEARER = 'bearerAuth';
const SWAGGER_UI_DIR = path.dirname(require.resolve('swagger-ui-dist/package.json'));
// The only files of swagger-ui-dist served: its own index.html would load the petstore example.
const SWAGGER_UI_ASSETS = new Set(['swagger-ui.css', 'swagger-ui-bundle.js', 'favicon-32x32.png', 'favicon-16x16.png']);
// Swagger UI sets inline styles and shows images as data: URIs; nothing is loaded from elsewhere.
const DOCS_CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

const documentationApi = {
  document: {
    method: 'get',
    path: '/openapi.json',
    summary: 'This document (OpenAPI 3.1)',
    auth: 'public',
    responses: { 200: json('The OpenAPI document', z.looseObject({ openapi: z.string() })) },
  },
  docs: {
    method: 'get',
    path: '/docs',
    summary: 'The API reference, browsable (Swagger UI)',
    auth: 'public',
    responses: { 200: { description: 'An HTML page', contentType: 'text/html', schema: z.string() } },
  },
} satisfies Record<string, ApiOperation>;

/**
 * Every route the app serves, as declared in each router file's table: the routers serve these
 * declarations, and the document, the method guard and the metrics are made from this list.
 */
export function apiOperations(): ApiOperation[] {
  const tables: Array<Record<string, ApiOperation>> = [
    healthApi,
    metricsApi,
    documentationApi,
    authApi,
    planApi,
    subscriptionApi,
    subscriptionChangeApi,
    paymentApi,
    paymentMethodApi,
    creditApi,
    invoiceApi,
    sandboxApi,
    webhookApi,
    offeringApi,
    waitlistApi,
    bookingApi,
    adminApi,
    adminCheckInApi,
    adminOfferingCancelApi,
    adminPaymentApi,
    adminReconciliationApi,
    couponApi,
    referralApi,
  ];
  return tables.flatMap((table) => Object.values(table));
}

/** The OpenAPI 3.1 document, generated from the zod schemas the routes validate and answer with. */
export function openApiDocument(operations: readonly ApiOperation[] = apiOperations()): Record<string, unknown> {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', BEARER, {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'A token from POST /api/v1/auth/login or /signup',
  });
  for (const operation of operations) registry.registerPath(routeConfig(operation));
  const document = new OpenApiGeneratorV31(registry.definitions, { sortComponents: 'alphabetically' }).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Billing orchestrator API',
      version: '1.0.0',
      description:
        'Subscriptions, one-time payments, holds and bookings, each carried out by a Temporal workflow. ' +
        'Errors are application/problem+json (RFC 9457). Money is in integer minor units; times are ISO-8601 UTC.',
    },
  });
  return document as unknown as Record<string, unknown>;
}

/** GET /openapi.json and GET /docs (Swagger UI, served from the swagger-ui-dist package). */
export function openApiRoutes(operations: readonly ApiOperation[]): Router {
  const { router, route } = apiRouter();
  let document: Record<string, unknown> | undefined;

  route(documentationApi.document, (_req, res) => {
    document ??= openApiDocument(operations);
    res.json(document);
  });

  route(documentationApi.docs, (_req, res) => {
    res.set('Content-Security-Policy', DOCS_CONTENT_SECURITY_POLICY).type('html').send(DOCS_PAGE);
  });
  // The page's files, served as static files rather than routes of the API.
  router.use('/docs', (req, res, next) => {
    const asset = req.path.slice(1);
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    if (asset === 'init.js') {
      res.type('js').send("window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });\n");
      return;
    }
    if (!SWAGGER_UI_ASSETS.has(asset)) return next();
    res.sendFile(path.join(SWAGGER_UI_DIR, asset), { maxAge: '1d' });
  });
  return router;
}

const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Billing orchestrator API</title>
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;

function routeConfig(operation: ApiOperation): RouteConfig {
  const { request = {} } = operation;
  const headers = operation.idempotent ? idempotencyHeader.extend(request.headers?.shape ?? {}) : request.headers;
  return {
    method: operation.method,
    path: operation.path,
    summary: operation.summary,
    ...(operation.description ? { description: operation.description } : {}),
    tags: [tagOf(operation.path)],
    ...(operation.auth === 'public' ? {} : { security: [{ [BEARER]: [] }] }),
    request: {
      ...(request.params ? { params: request.params } : {}),
      ...(request.query ? { query: request.query } : {}),
      ...(headers ? { headers } : {}),
      ...(request.body ? { body: { required: true, content: { 'application/json': { schema: request.body } } } } : {}),
    },
    responses: Object.fromEntries(
      Object.entries({ ...commonResponses(operation), ...operation.responses }).map(([status, response]) => [
        status,
        responseConfig(Number(status), response),
      ]),
    ),
  };
}

const idempotencyHeader = z.object({
  'idempotency-key': z
    .string()
    .min(1)
    .max(255)
    .optional()
    .meta({ description: 'Makes a retry safe: a repeat with the same key and body replays the first answer.' }),
});

const retryAfter = { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer' as const } } };

/** Answers every operation of a kind may give, unless it describes them itself. */
function commonResponses(operation: ApiOperation): Record<number, ApiResponse> {
  const { request = {} } = operation;
  return {
    ...(request.body || request.query || request.params ? problems([400, 'Invalid request: `invalidParams` names each bad field']) : {}),
    ...(operation.auth === 'public' ? {} : problems([401, 'No valid bearer token'])),
    ...(operation.auth === 'staff' ? problems([403, 'The staff role is needed']) : {}),
    ...(request.body ? problems([413, 'The body is too large']) : {}),
    // A converging route runs a repeat again rather than answering 409 while the first is in progress.
    ...(operation.idempotent === true ? problems([409, 'A request with this Idempotency-Key is still in progress']) : {}),
    ...(operation.idempotent ? problems([422, 'This Idempotency-Key was used with another body']) : {}),
    ...(operation.unlimited ? {} : problems([429, 'Rate limited; see Retry-After'])),
    ...problems([503, 'A service this request needs is unreachable; see Retry-After']),
  };
}

function responseConfig(status: number, response: ApiResponse) {
  const contentType = response.contentType ?? (status >= 400 ? PROBLEM_CONTENT_TYPE : 'application/json');
  const headers = { ...(status === 429 || status === 503 ? retryAfter : {}), ...response.headers };
  // A body of bytes (a PDF) has a media type and no schema, as OpenAPI 3.1 describes binary content.
  const content = response.schema ? { [contentType]: { schema: response.schema } } : response.contentType ? { [contentType]: {} } : undefined;
  return {
    description: response.description,
    ...(Object.keys(headers).length > 0 ? { headers } : {}),
    ...(content ? { content } : {}),
  };
}

/** `/api/v1/admin/plans` → admin, `/api/v1/bookings/…` → bookings, `/healthz` → operations. */
function tagOf(apiPath: string): string {
  const match = /^\/api\/v1\/([^/]+)/.exec(apiPath);
  return match ? match[1] : 'operations';
}
