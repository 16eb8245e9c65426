/**
 * Holds: a customer's temporary claim on some units of an offering. A hold lives for the
 * offering's hold TTL unless a booking consumes it or its owner releases it early.
 */
import { durationToMilliseconds, parseDuration, isPositiveDuration } from './period';

export type HoldStatus = 'active' | 'consumed' | 'released' | 'expired';

/** What a unit is right now: free, claimed by a live hold, or claimed by a booking. */
export type UnitStatus = 'available' | 'held' | 'booked';

export const DEFAULT_HOLD_TTL = 'PT5M';
// A hold is a few minutes at a checkout; a day is far past any checkout and keeps units from being parked.
const MAX_HOLD_TTL_MS = 24 * 60 * 60 * 1000;

export interface HoldView {
  id: string;
  offeringId: string;
  unitIds: string[];
  expiresAt: string;
  status: HoldStatus;
}

/**
 * What claiming units for a hold came to: all of them held, or none of them because some are
 * taken (`unavailableUnitIds`) or are not units of the offering (`unknownUnitIds`).
 */
export type ClaimOutcome =
  { status: 'held'; hold: HoldView } | { status: 'conflict'; unavailableUnitIds: string[] } | { status: 'rejected'; unknownUnitIds: string[] };

/** Why a hold TTL is unacceptable, or undefined when it is fine (a positive fixed length up to a day). */
export function holdTtlProblem(ttl: string): string | undefined {
  let ms: number;
  try {
    const duration = parseDuration(ttl);
    if (!isPositiveDuration(duration)) return 'must be longer than zero';
    ms = durationToMilliseconds(duration);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  return ms > MAX_HOLD_TTL_MS ? 'must be at most one day (P1D)' : undefined;
}

export function holdTtlMilliseconds(ttl: string): number {
  const problem = holdTtlProblem(ttl);
  if (problem) throw new RangeError(`hold TTL "${ttl}" ${problem}`);
  return durationToMilliseconds(ttl);
}

/** A unit's status from its live claim: none, a hold's, or a booking's. */
export function unitStatusOf(liveClaim: { bookingId: string | null } | null | undefined): UnitStatus {
  if (!liveClaim) return 'available';
  return liveClaim.bookingId ? 'booked' : 'held';
}

/** The ids that occur more than once, each named once, in first-seen order. */
export function duplicateIds(ids: readonly string[]): string[] {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const id of ids) (seen.has(id) ? repeated : seen).add(id);
  return [...repeated];
}

export function holdWorkflowId(holdId: string): string {
  return `hold-${holdId}`;
}

/** A change of some units' status, published to every API process for live availability. */
export interface UnitStatusEvent {
  offeringId: string;
  units: { id: string; status: UnitStatus }[];
  at: string;
}

/** The pub/sub channel that carries an offering's `UnitStatusEvent`s. */
export function unitEventsChannel(offeringId: string): string {
  return `offering-units:${offeringId}`;
}
