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
 * taken (`unavailableUnitIds`), are not units of the offering (`unknownUnitIds`), or would take
 * the customer past a fair-use limit (`refusal`).
 */
export type ClaimOutcome =
  | { status: 'held'; hold: HoldView }
  | {
      status: 'conflict';
      unavailableUnitIds: string[];
      /** The units are kept for the offering's waitlist: someone waits for them (activities/hold.ts). */
      reservedForWaitlist?: true;
      /** A waitlist offer's entry left the line before its claim: nothing was claimed. */
      entryNotWaiting?: true;
    }
  | { status: 'rejected'; unknownUnitIds: string[] }
  | { status: 'limited'; refusal: HoldLimitRefusal }
  /** The offering takes no new claims: the business canceled it (`reason` says so). */
  | { status: 'closed'; reason: string };

/** How many units of an offering one customer may hold and book at once, unless staff say otherwise. */
export const DEFAULT_MAX_UNITS_PER_CUSTOMER = 10;

/** The fair-use limit a claim ran into, named as staff and operators set it. */
export type HoldLimit = 'maxUnitsPerCustomer' | 'HOLDS_PER_CUSTOMER_MAX';

export interface HoldLimitRefusal {
  limit: HoldLimit;
  max: number;
  /** What the customer has now: units of the offering held or booked, or live holds. */
  current: number;
  detail: string;
}

export interface HoldLimitQuestion {
  /** Units the claim adds to what the customer has of the offering: net of the units a reschedule lets go, so it may be 0 or less. */
  requested: number;
  /** Units of the offering the customer has now, held by live holds or booked. */
  heldOrBookedOfOffering: number;
  /** The customer's live holds, across every offering. */
  liveHolds: number;
  /** The offering's `maxUnitsPerCustomer`. */
  maxUnitsPerCustomer: number;
  /** HOLDS_PER_CUSTOMER_MAX; absent when the claim is no new hold of the customer's (a booking's reschedule). */
  holdsPerCustomerMax?: number;
}

/**
 * Why a claim may not go ahead under the customer's fair-use limits, or undefined when it may.
 * A claim that adds no units is never refused for units, so a customer over a limit that staff
 * lowered can still move a booking to as many units or fewer.
 */
export function holdLimitRefusal(q: HoldLimitQuestion): HoldLimitRefusal | undefined {
  if (q.requested > 0 && q.heldOrBookedOfOffering + q.requested > q.maxUnitsPerCustomer) {
    const max = q.maxUnitsPerCustomer;
    const current = q.heldOrBookedOfOffering;
    return {
      limit: 'maxUnitsPerCustomer',
      max,
      current,
      detail: `maxUnitsPerCustomer: at most ${max} units of this offering per customer (${current} held or booked, ${q.requested} more asked for)`,
    };
  }
  if (q.holdsPerCustomerMax !== undefined && q.liveHolds >= q.holdsPerCustomerMax) {
    const max = q.holdsPerCustomerMax;
    return {
      limit: 'HOLDS_PER_CUSTOMER_MAX',
      max,
      current: q.liveHolds,
      detail: `HOLDS_PER_CUSTOMER_MAX: at most ${max} live holds per customer, across offerings (${q.liveHolds} live)`,
    };
  }
  return undefined;
}

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

/**
 * The pub/sub channel that carries an offering's `UnitStatusEvent`s, each as `<id> <json>`. Named
 * apart from the channel that carried bare JSON, so that during a rolling deploy no process reads
 * a message in the other format as its own.
 */
export function unitEventsChannel(offeringId: string): string {
  return `unit-events:{${offeringId}}:live`;
}
