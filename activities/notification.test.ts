import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import { connectDatabase, migrateDatabase, type DatabaseHandle } from '../db/client';
import { notifications } from '../db/schema';
import type { NotificationInput } from '../domain/notification';
import { createLogger } from '../platform/logger';
import { closedLoopbackPort, insertTestUser } from '../test/support/payment-fixtures';
import { createMailer, createNotificationActivities } from './notification';

const logger = createLogger({ LOG_LEVEL: 'silent', NODE_ENV: 'test' });
const MAIL_FROM = 'Billing <billing@example.test>';
let handle: DatabaseHandle;
let user: { id: string; email: string };

before(async () => {
  const url = process.env.DATABASE_URL;
  assert.ok(url, 'DATABASE_URL must be set');
  await migrateDatabase(url);
  handle = connectDatabase(url);
  user = await insertTestUser(handle.db);
});

after(() => handle.close());

function notification(fields: Partial<NotificationInput> = {}): NotificationInput {
  return {
    userId: user.id,
    kind: 'payment_succeeded',
    subject: 'Payment received',
    body: 'Thank you.',
    dedupeKey: `test-notify-${randomUUID()}`,
    ...fields,
  };
}

async function outboxRows(dedupeKey: string) {
  return handle.db.select().from(notifications).where(eq(notifications.dedupeKey, dedupeKey));
}

describe('notify with the log mailer', () => {
  const mailer = createMailer({ SMTP_URL: undefined, MAIL_FROM }, logger);

  test('records the notification for the user once and marks it sent once', async () => {
    assert.equal(mailer.name, 'log');
    const { notify } = createNotificationActivities({ db: handle.db, mailer, logger });
    const input = notification();
    const first = await notify(input);
    const again = await notify(input);
    assert.deepEqual(first, { notificationId: first.notificationId, sent: true });
    assert.deepEqual(again, { notificationId: first.notificationId, sent: false });
    const rows = await outboxRows(input.dedupeKey);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].recipient, user.email);
    assert.equal(rows[0].kind, 'payment_succeeded');
    assert.equal(rows[0].attempts, 1);
    assert.ok(rows[0].sentAt instanceof Date);
  });

  test('an unknown user is a non-retryable failure', async () => {
    const { notify } = createNotificationActivities({ db: handle.db, mailer, logger });
    await assert.rejects(
      notify(notification({ userId: randomUUID() })),
      (error: unknown) => error instanceof ApplicationFailure && error.nonRetryable,
    );
  });
});

describe('notify when SMTP is unreachable', () => {
  test('throws and records the attempt and its error, leaving the mail unsent', async () => {
    const mailer = createMailer({ SMTP_URL: `smtp://127.0.0.1:${await closedLoopbackPort()}`, MAIL_FROM }, logger);
    assert.equal(mailer.name, 'smtp');
    const { notify } = createNotificationActivities({ db: handle.db, mailer, logger });
    const input = notification();
    await assert.rejects(notify(input));
    await assert.rejects(notify(input));
    const [row] = await outboxRows(input.dedupeKey);
    assert.equal(row.attempts, 2);
    assert.equal(row.sentAt, null);
    assert.match(row.lastError ?? '', /ECONNREFUSED/);
  });
});
