import type { HoldView } from '../domain/hold';
import { holds } from './schema';

export type HoldRow = typeof holds.$inferSelect;

/** A hold's row as the workflows and the API show it. */
export function holdView(hold: HoldRow): HoldView {
  return {
    id: hold.id,
    offeringId: hold.offeringId,
    unitIds: hold.unitIds,
    expiresAt: hold.expiresAt.toISOString(),
    status: hold.status,
  };
}
