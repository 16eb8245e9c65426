/** What the bench and drill worker bundles: every production workflow, plus the ceiling's no-op. */
export * from '../workflows';

/** Does nothing: start to completion measures the server and worker alone (the ceiling). */
export async function noopWorkflow(): Promise<void> {}
