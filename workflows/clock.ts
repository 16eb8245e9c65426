/**
 * The workflow clock. Inside the workflow sandbox `Date` is the deterministic workflow time (the
 * time of the current workflow task), the same on every replay; every workflow reads time here so
 * no file has a bare `Date.now()` whose meaning a reader must know the sandbox to trust.
 */
export function now(): Date {
  return new Date();
}

/** Milliseconds from the workflow clock's now until `at` (negative once it has passed). */
export function msUntil(at: Date | string): number {
  return new Date(at).getTime() - now().getTime();
}
