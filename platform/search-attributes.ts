/**
 * Registers the custom search attributes (search-attribute-keys.ts) on the Temporal server
 * through its operator service, the same call on the dev server, a self-hosted cluster and the
 * tests' time-skipping server. Temporal Cloud refuses the operator service: there they are added
 * once with `tcld namespace search-attributes add`, and the check below finds them.
 */
import type { OperatorService } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTES } from './search-attribute-keys';

interface HasOperatorService {
  operatorService: OperatorService;
}

// gRPC status codes the operator service answers with.
const ALREADY_EXISTS = 6;
const UNIMPLEMENTED = 12;

export class SearchAttributesMissingError extends Error {
  constructor(
    readonly namespace: string,
    readonly missing: string[],
  ) {
    super(
      `custom search attributes missing in namespace "${namespace}": ${missing.join(', ')}. ` +
        'The worker registers them at start-up; on Temporal Cloud add them with `tcld namespace search-attributes add`.',
    );
    this.name = 'SearchAttributesMissingError';
  }
}

/**
 * Adds whichever of our search attributes the namespace lacks; answers the names it added.
 * Idempotent: existing ones are left alone, and one added meanwhile by another process is fine.
 * Fails when a name is already registered with another type (queries would then misbehave).
 */
export async function registerSearchAttributes(connection: HasOperatorService, namespace: string): Promise<string[]> {
  const registered = await registeredSearchAttributes(connection, namespace);
  const missing = SEARCH_ATTRIBUTES.filter((key) => !registered?.has(key.name));
  if (registered) assertTypes(registered, namespace);
  if (missing.length === 0) return [];
  try {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((key) => [key.name, indexedValueType(key.type)])),
    });
  } catch (error) {
    if (grpcCode(error) !== ALREADY_EXISTS) throw error;
  }
  return missing.map((key) => key.name);
}

/** Throws a SearchAttributesMissingError naming those not registered in `namespace` yet. */
export async function assertSearchAttributesRegistered(connection: HasOperatorService, namespace: string): Promise<void> {
  const registered = await registeredSearchAttributes(connection, namespace);
  if (!registered) return;
  const missing = SEARCH_ATTRIBUTES.filter((key) => !registered.has(key.name)).map((key) => key.name);
  if (missing.length > 0) throw new SearchAttributesMissingError(namespace, missing);
  assertTypes(registered, namespace);
}

/**
 * Polls `assertSearchAttributesRegistered` for up to `timeoutMs`: an API process that starts
 * beside its worker gives the worker time to register them.
 */
export async function waitForSearchAttributes(connection: HasOperatorService, namespace: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await assertSearchAttributesRegistered(connection, namespace);
    } catch (error) {
      if (!(error instanceof SearchAttributesMissingError) || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/** Custom attributes by name and indexed type; undefined where the server cannot list them (the time-skipping server). */
async function registeredSearchAttributes(connection: HasOperatorService, namespace: string): Promise<Map<string, number> | undefined> {
  try {
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
    return new Map(Object.entries(customAttributes ?? {}).map(([name, type]) => [name, Number(type)]));
  } catch (error) {
    if (grpcCode(error) === UNIMPLEMENTED) return undefined;
    throw error;
  }
}

function assertTypes(registered: Map<string, number>, namespace: string): void {
  for (const key of SEARCH_ATTRIBUTES) {
    const type = registered.get(key.name);
    if (type !== undefined && type !== indexedValueType(key.type)) {
      throw new Error(`search attribute ${key.name} is registered in namespace "${namespace}" with another type than ${key.type}`);
    }
  }
}

function indexedValueType(type: (typeof SEARCH_ATTRIBUTES)[number]['type']): number {
  return temporal.api.enums.v1.IndexedValueType[`INDEXED_VALUE_TYPE_${type}`];
}

function grpcCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}
