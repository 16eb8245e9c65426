/**
 * The whole booking path for HTTP tests (test/support/stack.ts serving the bookings queue) and
 * its fixtures. Real time: use short hold TTLs.
 */
import { requestJson, type TestUser } from './api';
import { startTestStack, type TestStack, type TestStackOptions } from './stack';

export type BookingStack = TestStack;

/** `redis` replaces the Redis of both the API and the worker (an unreachable one, say); `config` the environment's. */
export function startBookingStack(options: Pick<TestStackOptions, 'redis' | 'config'> = {}): Promise<BookingStack> {
  return startTestStack({ serves: ['bookings'], ...options });
}

const DAY = 24 * 60 * 60 * 1000;

/** A body for POST /api/v1/admin/offerings: `unitCount` seats at 2500 usd, starting in 10 days. */
export function offeringBody(overrides: Record<string, unknown> = {}, unitCount = 4) {
  const startsAt = new Date(Date.now() + 10 * DAY);
  return {
    name: 'Evening show',
    kind: 'seating',
    startsAt: startsAt.toISOString(),
    endsAt: new Date(startsAt.getTime() + 2 * 60 * 60 * 1000).toISOString(),
    holdTtl: 'PT5M',
    cancellation: { freeUntil: 'P1D', lateRefundPercent: 50 },
    units: Array.from({ length: unitCount }, (_, i) => ({ label: `A${i + 1}`, amount: 2500, currency: 'usd' })),
    ...overrides,
  };
}

export interface CreatedOffering {
  id: string;
  unitIds: string[];
}

/** Creates an offering over HTTP as staff. */
export async function createOffering(stack: BookingStack, overrides: Record<string, unknown> = {}, unitCount = 4): Promise<CreatedOffering> {
  const { status, body } = await requestJson(`${stack.url}/api/v1/admin/offerings`, {
    body: offeringBody(overrides, unitCount),
    headers: stack.staff.headers,
  });
  if (status !== 201) throw new Error(`offering not created: ${status} ${JSON.stringify(body)}`);
  return { id: body.offering.id, unitIds: body.offering.units.map((u: { id: string }) => u.id) };
}

export function placeHold(stack: BookingStack, user: TestUser, offeringId: string, unitIds: string[]) {
  return requestJson(`${stack.url}/api/v1/bookings/holds`, { body: { offeringId, unitIds }, headers: user.headers });
}

export function createBooking(
  stack: BookingStack,
  user: TestUser,
  holdId: string,
  paymentMethod = 'pm_card_visa',
  headers: Record<string, string> = {},
) {
  return requestJson(`${stack.url}/api/v1/bookings/create`, { body: { holdId, paymentMethod }, headers: { ...user.headers, ...headers } });
}

/** Each unit's status, by unit id, as GET /availability answers. */
export async function unitStatuses(stack: BookingStack, offeringId: string): Promise<Record<string, string>> {
  const { body } = await requestJson(`${stack.url}/api/v1/offerings/${offeringId}/availability`);
  return Object.fromEntries(body.units.map((u: { id: string; status: string }) => [u.id, u.status]));
}
