import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Context } from '@temporalio/activity';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { and, eq, inArray } from 'drizzle-orm';
import type { DatabaseHandle } from '../db/client';
import { bookings, notifications, offerings } from '../db/schema';
import { bookingWorkflowId } from '../domain/booking';
import { holdWorkflowId } from '../domain/hold';
import type { NotificationInput } from '../domain/notification';
import { insertTestOffering } from '../test/support/booking-fixtures';
import { activitiesFromConfig } from '../activities';
import { insertTestUser } from '../test/support/payment-fixtures';
import { uniqueTaskQueue } from '../test/support/temporal';
import { startConfirmedBooking, startTimeSkippingWorker, type TimeSkippingWorker } from '../test/support/time-skipping-worker';
import { bookingWorkflow, cancelBookingUpdate, rescheduleBookingUpdate } from './booking';
import { claimHoldUpdate, holdWorkflow } from './hold';

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** A reminder the workflow asked the notify activity for, with the workflow time it asked at. */
interface ReminderCall {
  bookingId: string;
  dedupeKey: string;
  subject: string;
  scheduledAt: number;
}

describe('booking reminders (time-skipping)', () => {
  let stack: TimeSkippingWorker;
  let env: TestWorkflowEnvironment;
  let database: DatabaseHandle;
  const taskQueue = uniqueTaskQueue('booking-reminders');
  const reminderCalls: ReminderCall[] = [];

  before(async () => {
    stack = await startTimeSkippingWorker({
      taskQueue,
      activities: ({ config, db, redis, logger }) => {
        const real = activitiesFromConfig(config, { db, redis, logger });
        return {
          ...real,
          notify: async (input: NotificationInput) => {
            // The scheduled time is the server's (time-skipped) clock when the workflow asked for the notice.
            if (input.kind === 'booking_reminder') {
              const { scheduledTimestampMs } = Context.current().info;
              reminderCalls.push({
                bookingId: input.bookingId!,
                dedupeKey: input.dedupeKey,
                subject: input.subject,
                scheduledAt: scheduledTimestampMs,
              });
            }
            return real.notify(input);
          },
        };
      },
    });
    ({ env, database } = stack);
  });

  after(() => stack.close());

  /** A fresh offering starting `startsInMs` from the server's clock that lists `reminders`. */
  async function offeringWithReminders(reminders: string[], startsInMs: number, lastsMs = 2 * HOUR) {
    const startsAt = new Date((await env.currentTimeMs()) + startsInMs);
    const offering = await insertTestOffering(database.db, { startsAt, endsAt: new Date(startsAt.getTime() + lastsMs) });
    await database.db.update(offerings).set({ reminders }).where(eq(offerings.id, offering.id));
    return offering;
  }

  /** A confirmed booking of one unit of a fresh offering that lists `reminders`. */
  async function bookWithReminders(reminders: string[], startsInMs: number) {
    const user = await insertTestUser(database.db);
    const offering = await offeringWithReminders(reminders, startsInMs);
    const { startsAt, endsAt } = offering;

    const holdId = randomUUID();
    const holdHandle = await env.client.workflow.start(holdWorkflow, {
      workflowId: holdWorkflowId(holdId),
      taskQueue,
      args: [{ holdId, userId: user.id, offeringId: offering.id, unitIds: offering.unitIds.slice(0, 1), ttlMs: 5 * MINUTE }],
    });
    assert.equal((await holdHandle.executeUpdate(claimHoldUpdate)).status, 'held');

    const { bookingId, handle } = await startConfirmedBooking(env, taskQueue, { holdId, userId: user.id });
    return { bookingId, handle, startsAt, endsAt, offering };
  }

  const callsOf = (bookingId: string) => reminderCalls.filter((c) => c.bookingId === bookingId);
  const reminderRows = (bookingId: string) =>
    database.db
      .select()
      .from(notifications)
      .where(and(eq(notifications.bookingId, bookingId), eq(notifications.kind, 'booking_reminder')));

  /** The booking's status when its workflow ends; waiting on the result lets the server skip time. */
  async function finalStatus(handle: WorkflowHandle<typeof bookingWorkflow>) {
    return (await handle.result()).status;
  }

  /** Asks for the notice at the workflow time it is due (a minute's slack for the test server's own clock). */
  function assertSentAt(call: ReminderCall | undefined, due: number, what: string) {
    assert.ok(call, `${what} was not sent`);
    assert.ok(call.scheduledAt >= due, `${what} was sent ${due - call.scheduledAt} ms early`);
    assert.ok(call.scheduledAt < due + MINUTE, `${what} was sent ${call.scheduledAt - due} ms late`);
  }

  test('each reminder is sent once at its offset before the start; the booking still ends a no-show at the end', async () => {
    const { bookingId, handle, startsAt, endsAt } = await bookWithReminders(['P1D', 'PT2H'], 3 * DAY);

    assert.equal(await finalStatus(handle), 'no_show');
    const calls = callsOf(bookingId);
    assert.deepEqual(
      calls.map((c) => c.dedupeKey),
      [
        `${bookingWorkflowId(bookingId)}/notify/reminder:P1D:${startsAt.toISOString()}`,
        `${bookingWorkflowId(bookingId)}/notify/reminder:PT2H:${startsAt.toISOString()}`,
      ],
    );
    assertSentAt(calls[0], startsAt.getTime() - DAY, 'the P1D reminder');
    assertSentAt(calls[1], startsAt.getTime() - 2 * HOUR, 'the PT2H reminder');
    assert.match(calls[0].subject, new RegExp(startsAt.toISOString().replace(/\./g, '\\.')));
    assert.equal((await reminderRows(bookingId)).length, 2, 'one notification each');
    const closedAt = (await handle.describe()).closeTime!.getTime();
    assert.ok(closedAt >= endsAt.getTime(), 'the booking waited for the offering to end');
    assert.equal((await database.db.select().from(bookings).where(eq(bookings.id, bookingId)))[0].status, 'no_show');
  });

  test('a reminder already past when the booking is confirmed is never sent', async () => {
    const { bookingId, handle, startsAt } = await bookWithReminders(['P1D', 'PT2H', 'PT30M'], HOUR);

    assert.equal(await finalStatus(handle), 'no_show');
    const calls = callsOf(bookingId);
    assert.deepEqual(
      calls.map((c) => c.dedupeKey.split(':')[1]),
      ['PT30M'],
    );
    assertSentAt(calls[0], startsAt.getTime() - 30 * MINUTE, 'the PT30M reminder');
  });

  test('a booking canceled between its reminders sends none after the cancel', async () => {
    const { bookingId, handle } = await bookWithReminders(['P1D', 'PT2H'], 3 * DAY);
    // Past the P1D reminder (two days from now), before the PT2H one.
    await env.sleep(2 * DAY + HOUR);
    assert.deepEqual(
      callsOf(bookingId).map((c) => c.dedupeKey.split(':')[1]),
      ['P1D'],
    );

    await handle.executeUpdate(cancelBookingUpdate);
    assert.equal(await finalStatus(handle), 'canceled');
    assert.deepEqual(
      callsOf(bookingId).map((c) => c.dedupeKey.split(':')[1]),
      ['P1D'],
    );
    assert.equal((await reminderRows(bookingId)).length, 1);
  });

  test('a booking canceled before any reminder sends none', async () => {
    const { bookingId, handle } = await bookWithReminders(['P1D', 'PT2H'], 3 * DAY);
    await handle.executeUpdate(cancelBookingUpdate);
    assert.equal(await finalStatus(handle), 'canceled');
    assert.deepEqual(callsOf(bookingId), []);
    assert.deepEqual(await reminderRows(bookingId), []);
  });

  test('a booking moved to another date drops the old date’s reminders and gets the new date’s still ahead; it ends with the new offering', async () => {
    const { bookingId, handle, offering: from } = await bookWithReminders(['P2D', 'P1D'], 4 * DAY);
    // The new date's P5D reminder is already past when the booking moves there.
    const to = await offeringWithReminders(['P5D', 'P2D', 'P1D'], 6 * DAY);
    const seriesId = randomUUID();
    await database.db
      .update(offerings)
      .set({ seriesId })
      .where(inArray(offerings.id, [from.id, to.id]));

    // Past the old date's P2D reminder, still inside its free cancellation window (moves are allowed there).
    await env.sleep(2 * DAY + HOUR);
    const moved = await handle.executeUpdate(rescheduleBookingUpdate, { args: [{ offeringId: to.id, unitIds: [to.unitIds[0]] }] });
    assert.equal(moved.status, 'rescheduled');

    assert.equal(await finalStatus(handle), 'no_show');
    const calls = callsOf(bookingId);
    const workflowId = bookingWorkflowId(bookingId);
    assert.deepEqual(
      calls.map((c) => c.dedupeKey),
      [
        `${workflowId}/notify/reminder:P2D:${from.startsAt.toISOString()}`,
        `${workflowId}/notify/reminder:P2D:${to.startsAt.toISOString()}`,
        `${workflowId}/notify/reminder:P1D:${to.startsAt.toISOString()}`,
      ],
    );
    assertSentAt(calls[0], from.startsAt.getTime() - 2 * DAY, 'the old date’s P2D reminder');
    assertSentAt(calls[1], to.startsAt.getTime() - 2 * DAY, 'the new date’s P2D reminder');
    assertSentAt(calls[2], to.startsAt.getTime() - DAY, 'the new date’s P1D reminder');
    assert.equal((await reminderRows(bookingId)).length, 3);
    const closedAt = (await handle.describe()).closeTime!.getTime();
    assert.ok(closedAt >= to.endsAt.getTime(), 'the booking waited for the new offering to end');
  });
});
