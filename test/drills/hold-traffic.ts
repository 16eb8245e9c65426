/**
 * Hold traffic for the Redis drills: lanes of customers asking for 1–2 adjacent units of a small
 * offering (so requests overlap), booking some of the holds they get and releasing the others,
 * while `faults` run at their times. Bookings stay, so by the end most units are booked and any
 * double booking is still there to be found.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { requestJson, type TestUser } from '../support/api';

export interface HoldTrafficOptions {
  apiUrl: string;
  offering: { id: string; unitIds: string[] };
  customers: TestUser[];
  lanes: number;
  durationMs: number;
  /** Things to do at a time after the traffic starts, e.g. stop Redis at 4 s. */
  faults: Array<{ atMs: number; run: () => Promise<void> }>;
}

export interface TrafficAnswer {
  /** Milliseconds after the traffic started. */
  atMs: number;
  request: 'hold' | 'book' | 'release';
  status: number;
}

const BOOK_SHARE = 0.4;

export async function runHoldTraffic(options: HoldTrafficOptions): Promise<TrafficAnswer[]> {
  const answers: TrafficAnswer[] = [];
  const started = Date.now();
  const call = async (request: TrafficAnswer['request'], url: string, init: Parameters<typeof requestJson>[1]) => {
    const atMs = Date.now() - started;
    try {
      const answer = await requestJson(url, init);
      answers.push({ atMs, request, status: answer.status });
      return answer;
    } catch {
      // No HTTP answer at all (connection reset): recorded as status 0.
      answers.push({ atMs, request, status: 0 });
      return undefined;
    }
  };
  const lane = async (n: number) => {
    const customer = options.customers[n % options.customers.length];
    const api = `${options.apiUrl}/api/v1/bookings`;
    while (Date.now() - started < options.durationMs) {
      const size = 1 + Math.floor(Math.random() * 2);
      const first = Math.floor(Math.random() * (options.offering.unitIds.length - size + 1));
      const unitIds = options.offering.unitIds.slice(first, first + size);
      const held = await call('hold', `${api}/holds`, { body: { offeringId: options.offering.id, unitIds }, headers: customer.headers });
      if (held?.status !== 201) continue;
      const holdId: string = held.body.hold.id;
      if (Math.random() < BOOK_SHARE) {
        await call('book', `${api}/create`, { body: { holdId, paymentMethod: 'pm_card_visa' }, headers: customer.headers });
      } else {
        await call('release', `${api}/holds/${holdId}`, { method: 'DELETE', headers: customer.headers });
      }
    }
  };
  const faults = options.faults.map(async (fault) => {
    await sleep(Math.max(0, fault.atMs - (Date.now() - started)));
    await fault.run();
  });
  await Promise.all([...Array.from({ length: options.lanes }, (_, n) => lane(n)), ...faults]);
  return answers;
}
