import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { eq } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import { createBookingActivities } from '../activities/booking';
import { createHoldActivities } from '../activities/hold';
import { createWaitlistActivities } from '../activities/waitlist';
import type { DatabaseHandle } from '../db/client';
import { holds, offerings, waitlistEntries } from '../db/schema';
import { holdWorkflowId } from '../domain/hold';
import type { NotificationInput } from '../domain/notification';
import { waitlistWorkflowId } from '../domain/waitlist';
import { createLogger } from '../platform/logger';
import { insertTestOffering, liveClaims } from '../test/support/booking-fixtures';
import { insertTestUser } from '../test/support/payment-fixtures';
import { uniqueTaskQueue } from '../test/support/temporal';
import { startTimeSkippingWorker, type TimeSkippingWorker } from '../test/support/time-skipping-worker';
import { claimHoldUpdate, holdSettledSignal, holdWorkflow, releaseHoldUpdate } from './hold';
import { entryChangedSignal, offeringCanceledSignal, WAITLIST_RECHECK_MS, waitlistWorkflow } from './waitlist';

const OFFER_TTL_MS = 10 * 60 * 1000;

describe('waitlist workflow (time-skipping)', () => {
  let stack: TimeSkippingWorker;
  let env: TestWorkflowEnvironment;
  let database: DatabaseHandle;
  let redis: Redis;
  const notices: NotificationInput[] = [];
  const taskQueue = uniqueTaskQueue('bookings');
  const logger = createLogger({ LOG_LEVEL: 'silent', NODE_ENV: 'test' });

  before(async () => {
    stack = await startTimeSkippingWorker({
      taskQueue,
      activities: ({ db, redis }) => ({
        ...createHoldActivities({ db, redis, logger }),
        ...createWaitlistActivities({ db, logger }),
        // The notice is recorded here: the outbox has tests of its own.
        notify: async (notice: NotificationInput) => void notices.push(notice),
      }),
    });
    ({ env, database, redis } = stack);
  });

  after(() => stack.close());

  /** A sold-out offering of one unit (held by someone else) and customers waiting for it, in order. */
  async function soldOutWithLine(waiting: number) {
    // Days ahead on the server's clock, which earlier tests of the file have moved on.
    const startsAt = new Date((await env.currentTimeMs()) + 10 * 24 * 60 * 60 * 1000);
    const offering = await insertTestOffering(database.db, { unitCount: 1, startsAt });
    await database.db.update(offerings).set({ waitlistOfferTtl: 'PT10M' }).where(eq(offerings.id, offering.id));
    const holder = await insertTestUser(database.db);
    const holdId = randomUUID();
    const hold = await env.client.workflow.start(holdWorkflow, {
      workflowId: holdWorkflowId(holdId),
      taskQueue,
      args: [{ holdId, userId: holder.id, offeringId: offering.id, unitIds: offering.unitIds, ttlMs: 60 * 60 * 1000 }],
    });
    assert.equal((await hold.executeUpdate(claimHoldUpdate)).status, 'held');
    const entries = [];
    for (let i = 0; i < waiting; i++) {
      const user = await insertTestUser(database.db);
      const [entry] = await database.db.insert(waitlistEntries).values({ offeringId: offering.id, userId: user.id, quantity: 1 }).returning();
      entries.push(entry);
    }
    return { offering, hold, entries };
  }

  async function entry(id: string) {
    const [row] = await database.db.select().from(waitlistEntries).where(eq(waitlistEntries.id, id));
    return row;
  }

  /** Polls (real time, so the server's clock does not jump) until the entry shows `status`. */
  async function entryBecomes(id: string, status: string) {
    for (let i = 0; i < 500; i++) {
      const row = await entry(id);
      if (row.status === status) return row;
      await setTimeout(20);
    }
    assert.fail(`entry ${id} is ${(await entry(id)).status}, never ${status}`);
  }

  /** Starts the offering's line the way a join does: the entry-changed signal, starting the workflow if none runs. */
  function startLine(offeringId: string) {
    return env.client.workflow.signalWithStart(waitlistWorkflow, {
      workflowId: waitlistWorkflowId(offeringId),
      taskQueue,
      args: [{ offeringId }],
      signal: entryChangedSignal,
      signalArgs: [],
    });
  }

  /** The notice sent to a customer; it follows the offer's commit, so it is waited for. */
  async function noticeFor(userId: string) {
    for (let i = 0; i < 500; i++) {
      const found = notices.find((n) => n.userId === userId);
      if (found) return found;
      await setTimeout(20);
    }
    assert.fail(`no notice to ${userId}`);
  }

  test('a waitlist offer that expires passes on to the next entry, which books it', async () => {
    const { offering, hold, entries } = await soldOutWithLine(2);
    const [first, second] = entries;

    // The holder gives the unit back: its release wakes the line, and the first entry is offered it.
    await hold.executeUpdate(releaseHoldUpdate);
    const offered = await entryBecomes(first.id, 'offered');
    assert.ok(offered.holdId && offered.offerExpiresAt);
    assert.equal((await entry(second.id)).status, 'waiting');
    assert.deepEqual(
      (await liveClaims(database.db, offering.unitIds)).map((c) => c.holdId),
      [offered.holdId],
      'the freed unit is held for the first entry only',
    );
    const notice = await noticeFor(first.userId);
    assert.equal(notice.kind, 'waitlist_offer');
    assert.match(notice.body, new RegExp(offered.holdId));

    // Nobody books it: on the workflow clock the offer's TTL passes and it goes to the next entry.
    const offerHold = env.client.workflow.getHandle(holdWorkflowId(offered.holdId));
    const startedAt = await env.currentTimeMs();
    assert.equal(await offerHold.result(), 'expired');
    assert.ok((await env.currentTimeMs()) - startedAt >= OFFER_TTL_MS - 1000, "the offer lasts the offering's waitlistOfferTtl");
    assert.equal((await entry(first.id)).status, 'expired');
    const next = await entryBecomes(second.id, 'offered');
    assert.notEqual(next.holdId, offered.holdId);
    assert.deepEqual(
      (await liveClaims(database.db, offering.unitIds)).map((c) => c.holdId),
      [next.holdId],
    );

    // The second customer books with the offer's hold (the booking saga's own steps): the entry is booked.
    const bookingSteps = createBookingActivities({ db: database.db, redis, logger });
    const bookingId = randomUUID();
    await bookingSteps.beginBooking({ bookingId, holdId: next.holdId!, userId: second.userId, workflowId: `booking-${bookingId}` });
    assert.equal(await bookingSteps.confirmBooking({ bookingId, holdId: next.holdId! }), 'confirmed');
    await env.client.workflow.getHandle(holdWorkflowId(next.holdId!)).signal(holdSettledSignal);
    assert.equal((await entry(second.id)).status, 'booked');
    const [offerRow] = await database.db.select().from(holds).where(eq(holds.id, next.holdId!));
    assert.equal(offerRow.status, 'consumed');

    // Nobody waits any more: the line's workflow ends.
    assert.equal(await env.client.workflow.getHandle(waitlistWorkflowId(offering.id)).result(), 'empty');
  });

  test('while someone waits, only their offer may claim a free unit, and only while they wait', async () => {
    // The claims are called directly, with no workflow around them: no line's workflow makes an offer meanwhile.
    const claims = createHoldActivities({ db: database.db, redis, logger });
    const offering = await insertTestOffering(database.db, { unitCount: 2 });
    const [waiting, gone] = [await insertTestUser(database.db), await insertTestUser(database.db)];
    const outsider = await insertTestUser(database.db);
    const [entryRow] = await database.db.insert(waitlistEntries).values({ offeringId: offering.id, userId: waiting.id, quantity: 1 }).returning();
    const [goneRow] = await database.db
      .insert(waitlistEntries)
      .values({ offeringId: offering.id, userId: gone.id, quantity: 1, status: 'left' })
      .returning();
    const claim = (userId: string, unitId: string, waitlistEntryId?: string) =>
      claims.claimUnits({
        holdId: randomUUID(),
        userId,
        offeringId: offering.id,
        unitIds: [unitId],
        expiresAt: new Date(Date.now() + OFFER_TTL_MS).toISOString(),
        workflowId: 'test',
        waitlistEntryId,
      });

    assert.deepEqual(await claim(outsider.id, offering.unitIds[0]), {
      status: 'conflict',
      unavailableUnitIds: [offering.unitIds[0]],
      reservedForWaitlist: true,
    });
    assert.deepEqual(await claim(gone.id, offering.unitIds[0], goneRow.id), { status: 'conflict', unavailableUnitIds: [], entryNotWaiting: true });
    assert.deepEqual(await liveClaims(database.db, offering.unitIds), [], 'nothing was claimed');

    const offer = await claim(waiting.id, offering.unitIds[0], entryRow.id);
    assert.equal(offer.status, 'held');
    const offered = await entry(entryRow.id);
    assert.equal(offered.status, 'offered');
    assert.equal(offered.holdId, offer.status === 'held' ? offer.hold.id : undefined);

    // Nobody waits now (the one entry is offered): the other unit is anyone's.
    assert.equal((await claim(outsider.id, offering.unitIds[1])).status, 'held');
    // The offer released unbooked: the entry's offer has passed.
    await claims.releaseHold({ holdId: offered.holdId, reason: 'released' });
    assert.equal((await entry(entryRow.id)).status, 'expired');
  });

  /** Waits until the line's workflow has made its first round and waits on its re-check timer. */
  async function firstLookDone(line: WorkflowHandle) {
    for (let i = 0; i < 500; i++) {
      const { events } = await line.fetchHistory();
      if (events?.some((event) => event.timerStartedEventAttributes)) return;
      await setTimeout(20);
    }
    assert.fail('the line never waited for its re-check');
  }

  test('a unit freed without a signal is found by the re-check; the line closes when the offering starts', async () => {
    const claims = createHoldActivities({ db: database.db, redis, logger });
    const startsAt = new Date((await env.currentTimeMs()) + 30 * 60 * 1000);
    const offering = await insertTestOffering(database.db, { unitCount: 1, startsAt });
    await database.db.update(offerings).set({ waitlistOfferTtl: 'PT1H' }).where(eq(offerings.id, offering.id));
    const holder = await insertTestUser(database.db);
    const holdId = randomUUID();
    const expiresAt = new Date(Date.now() + OFFER_TTL_MS).toISOString();
    const held = await claims.claimUnits({
      holdId,
      userId: holder.id,
      offeringId: offering.id,
      unitIds: offering.unitIds,
      expiresAt,
      workflowId: 'test',
    });
    assert.equal(held.status, 'held');
    const entries = [];
    for (let i = 0; i < 2; i++) {
      const user = await insertTestUser(database.db);
      const [row] = await database.db.insert(waitlistEntries).values({ offeringId: offering.id, userId: user.id, quantity: 1 }).returning();
      entries.push(row);
    }
    const line = await startLine(offering.id);

    // Once the line has looked (and found nothing free), the unit is released outside any
    // activity: no signal reaches the line, and its next look finds the unit.
    await firstLookDone(line);
    await claims.releaseHold({ holdId, reason: 'released' });
    await setTimeout(200);
    assert.equal((await entry(entries[0].id)).status, 'waiting');
    await env.sleep(WAITLIST_RECHECK_MS + 1000);
    await entryBecomes(entries[0].id, 'offered');

    // The offering starts with the offer still open and the second entry waiting: both are closed.
    assert.equal(await line.result(), 'closed');
    assert.ok((await env.currentTimeMs()) >= startsAt.getTime());
    assert.deepEqual([(await entry(entries[0].id)).status, (await entry(entries[1].id)).status], ['closed', 'closed']);
  });

  test("the offering's cancel signal ends the line's workflow", async () => {
    const { offering, hold } = await soldOutWithLine(1);
    const line = await startLine(offering.id);
    await line.signal(offeringCanceledSignal);
    assert.equal(await line.result(), 'canceled');
    await hold.executeUpdate(releaseHoldUpdate);
  });
});
