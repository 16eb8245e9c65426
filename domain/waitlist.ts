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
