/**
 * A sold-out offering's waitlist: who is next, and which freed units an entry may be offered.
 * Pure rules; the offering's waitlist workflow applies them one offer at a time.
 */

/**
 * `waiting` in line; `offered` a hold of units for it until the offer's TTL; `booked` it booked
 * with that hold; `expired` the offer passed unused; `left` the customer left; `closed` the
 * offering was canceled or started.
 */
export type WaitlistEntryStatus = 'waiting' | 'offered' | 'booked' | 'expired' | 'left' | 'closed';
export const WAITLIST_ENTRY_STATUSES = [
  'waiting',
  'offered',
  'booked',
  'expired',
  'left',
  'closed',
] as const satisfies readonly WaitlistEntryStatus[];
export const LIVE_WAITLIST_STATUSES: readonly WaitlistEntryStatus[] = ['waiting', 'offered'];

/** Units one waitlist entry may ask for; an offering's maxUnitsPerCustomer bounds it further. */
export const MAX_WAITLIST_QUANTITY = 20;

/** The one waitlist workflow of an offering: it alone makes offers, so they are serialised. */
export function waitlistWorkflowId(offeringId: string): string {
  return `waitlist-${offeringId}`;
}

/** A unit nobody claims, as the waitlist sees it. */
export interface FreeUnit {
  id: string;
  type: string | null;
}

/** A waiting entry, in line order. */
export interface WaitingEntry {
  id: string;
  userId: string;
  quantity: number;
  unitType: string | null;
}

export interface PlannedOffer {
  entryId: string;
  userId: string;
  unitIds: string[];
}

/**
 * Which waiting entries the free units go to: in line order, each entry that fits (enough free
 * units of its `unitType`, any type when it names none) takes the first of them; an entry that
 * does not fit keeps its place and the next one may. Units are taken in the order given.
 */
export function planOffers(freeUnits: readonly FreeUnit[], entries: readonly WaitingEntry[]): PlannedOffer[] {
  const left = [...freeUnits];
  const offers: PlannedOffer[] = [];
  for (const entry of entries) {
    if (left.length === 0) break;
    const fitting = left.filter((unit) => entry.unitType === null || unit.type === entry.unitType);
    if (fitting.length < entry.quantity) continue;
    const taken = fitting.slice(0, entry.quantity);
    for (const unit of taken) left.splice(left.indexOf(unit), 1);
    offers.push({ entryId: entry.id, userId: entry.userId, unitIds: taken.map((unit) => unit.id) });
  }
  return offers;
}

/** The notice of an offer: which units are held, until when, and how to take them. */
export function waitlistOfferNotice(offer: { offeringName: string; units: number; holdId: string; expiresAt: string }): {
  subject: string;
  body: string;
} {
  const units = offer.units === 1 ? '1 unit' : `${offer.units} units`;
  return {
    subject: `${offer.offeringName}: your waitlist turn has come`,
    body:
      `${units} of ${offer.offeringName} are held for you until ${offer.expiresAt}.\n` +
      `Book them with hold ${offer.holdId} before then (POST /api/v1/bookings/create); after that the offer passes to the next in line.`,
  };
}
