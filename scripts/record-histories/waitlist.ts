/** Waitlist histories: offers passed on and the line emptied; a line closed by its offering's cancel. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout } from 'node:timers/promises';
import { eq } from 'drizzle-orm';
import { offerings, waitlistEntries } from '../../db/schema';
import { holdWorkflowId } from '../../domain/hold';
import { waitlistWorkflowId } from '../../domain/waitlist';
import { insertTestOffering } from '../../test/support/booking-fixtures';
import { insertTestUser } from '../../test/support/payment-fixtures';
import { claimHoldUpdate, holdWorkflow, releaseHoldUpdate } from '../../workflows/hold';
import { entryChangedSignal, offeringCanceledSignal, waitlistWorkflow } from '../../workflows/waitlist';
import type { Recorder, Scenario } from './recorder';

const OFFER_TTL_MS = 10 * 60 * 1000;

/** A sold-out offering of one unit (a long hold of someone else's) and `waiting` entries, in order. */
async function soldOutWithLine(r: Recorder, waiting: number) {
  // Days ahead on the server's clock, which an earlier scenario may have moved on.
  const startsAt = new Date((await r.env.currentTimeMs()) + 10 * 24 * 60 * 60 * 1000);
  const offering = await insertTestOffering(r.db, { unitCount: 1, startsAt });
  await r.db.update(offerings).set({ waitlistOfferTtl: 'PT10M' }).where(eq(offerings.id, offering.id));
  const holder = await insertTestUser(r.db);
  const holdId = randomUUID();
  const hold = await r.env.client.workflow.start(holdWorkflow, {
    workflowId: holdWorkflowId(holdId),
    taskQueue: r.taskQueue,
    args: [{ holdId, userId: holder.id, offeringId: offering.id, unitIds: offering.unitIds, ttlMs: 60 * 60 * 1000 }],
  });
  assert.equal((await hold.executeUpdate(claimHoldUpdate)).status, 'held');
  const entryIds: string[] = [];
  for (let i = 0; i < waiting; i++) {
    const user = await insertTestUser(r.db);
    const [entry] = await r.db.insert(waitlistEntries).values({ offeringId: offering.id, userId: user.id, quantity: 1 }).returning();
    entryIds.push(entry.id);
  }
  const line = await r.env.client.workflow.signalWithStart(waitlistWorkflow, {
    workflowId: waitlistWorkflowId(offering.id),
    taskQueue: r.taskQueue,
    args: [{ offeringId: offering.id }],
    signal: entryChangedSignal,
    signalArgs: [],
  });
  return { offering, hold, entryIds, line };
}

/** Polls in real time (the server's clock stays put) until the entry is offered; its hold id. */
async function offered(r: Recorder, entryId: string): Promise<string> {
  for (let i = 0; i < 500; i++) {
    const [entry] = await r.db.select().from(waitlistEntries).where(eq(waitlistEntries.id, entryId));
    if (entry.status === 'offered' && entry.holdId) return entry.holdId;
    await setTimeout(20);
  }
  throw new Error(`entry ${entryId} was never offered`);
}

export const WAITLIST_SCENARIOS: Record<string, Scenario> = {
  // The unit frees: offered to the first entry, which lets it expire; passed to the second, which
  // gives it back; nobody waits any more and the line's workflow ends.
  'waitlist-offer-expired-passed-on': async (r) => {
    const { hold, entryIds, line } = await soldOutWithLine(r, 2);
    await hold.executeUpdate(releaseHoldUpdate);
    const firstOffer = await offered(r, entryIds[0]);
    await r.env.sleep(OFFER_TTL_MS + 60_000);
    const secondOffer = await offered(r, entryIds[1]);
    assert.equal(await r.env.client.workflow.getHandle(holdWorkflowId(firstOffer)).result(), 'expired');
    await r.env.client.workflow.getHandle(holdWorkflowId(secondOffer)).executeUpdate(releaseHoldUpdate);
    assert.equal(await line.result(), 'empty');
    return [
      { file: 'waitlist-offer-expired-passed-on', workflowId: line.workflowId },
      { file: 'hold-waitlist-offer-expired', workflowId: holdWorkflowId(firstOffer) },
    ];
  },

  // The offering is canceled while customers wait: the line's workflow stops at the signal.
  'waitlist-offering-canceled': async (r) => {
    const { hold, line } = await soldOutWithLine(r, 1);
    await line.signal(offeringCanceledSignal);
    assert.equal(await line.result(), 'canceled');
    await hold.executeUpdate(releaseHoldUpdate);
    return [{ file: 'waitlist-offering-canceled', workflowId: line.workflowId }];
  },
};
