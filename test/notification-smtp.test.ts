import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eq } from 'drizzle-orm';
import { SMTPServer } from 'smtp-server';
import { createMailer, createNotificationActivities } from '../activities/notification';
import { connectDatabase, migrateDatabase, type DatabaseHandle } from '../db/client';
import { notifications } from '../db/schema';
import type { NotificationInput } from '../domain/notification';
import { createLogger } from '../platform/logger';
import { insertTestUser } from './support/payment-fixtures';

interface ReceivedMail {
  from: string;
  to: string[];
  raw: string;
}

/** A real SMTP sink on loopback that keeps what it receives and can be told to refuse mail. */
class SmtpSink {
  readonly received: ReceivedMail[] = [];
  refuse = false;
  private readonly server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo: (_address, _session, callback) =>
      callback(this.refuse ? Object.assign(new Error('mailbox busy, try later'), { responseCode: 451 }) : undefined),
    onData: (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        this.received.push({ from, to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') });
        callback();
      });
    },
  });

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const address = this.server.server.address();
    assert.ok(address && typeof address === 'object');
    return `smtp://127.0.0.1:${address.port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  mailsTo(address: string): ReceivedMail[] {
    return this.received.filter((mail) => mail.to.includes(address));
  }
}

const logger = createLogger({ LOG_LEVEL: 'silent', NODE_ENV: 'test' });
const sink = new SmtpSink();
let handle: DatabaseHandle;
let smtpUrl: string;

before(async () => {
  const url = process.env.DATABASE_URL;
  assert.ok(url, 'DATABASE_URL must be set');
  await migrateDatabase(url);
  handle = connectDatabase(url);
  smtpUrl = await sink.listen();
});

after(async () => {
  await sink.close();
  await handle.close();
});

function notification(userId: string): NotificationInput {
  return {
    userId,
    kind: 'grace_reminder',
    subject: `Your payment failed (${randomUUID()})`,
    body: 'Please update your card within 6 days.',
    dedupeKey: `test-smtp-${randomUUID()}`,
  };
}

describe('notify over SMTP', () => {
  test('delivers the mail to the user with its subject and body, once per dedupe key', async () => {
    const user = await insertTestUser(handle.db);
    const mailer = createMailer({ SMTP_URL: smtpUrl, MAIL_FROM: 'Billing <billing@example.test>' }, logger);
    const { notify } = createNotificationActivities({ db: handle.db, mailer, logger });
    const input = notification(user.id);

    // Three attempts at once: one claims and sends; the others find it sent, or find it being
    // sent and throw, which Temporal retries (no row lock is held while the mail server talks).
    const results = await Promise.allSettled([notify(input), notify(input), notify(input)]);
    const sent = results.filter((r) => r.status === 'fulfilled' && r.value.sent);
    assert.equal(sent.length, 1);
    for (const result of results) {
      if (result.status === 'rejected') assert.match(String(result.reason), /being sent by another attempt/);
    }
    assert.equal((await notify(input)).sent, false);

    const mails = sink.mailsTo(user.email);
    assert.equal(mails.length, 1);
    assert.equal(mails[0].from, 'billing@example.test');
    assert.match(mails[0].raw, new RegExp(`^Subject: ${escapeRegExp(input.subject)}\\r?$`, 'm'));
    assert.match(mails[0].raw, /Please update your card within 6 days\./);
    const [row] = await handle.db.select().from(notifications).where(eq(notifications.dedupeKey, input.dedupeKey));
    assert.ok(row.sentAt instanceof Date);
  });

  test('a refused delivery is recorded and thrown; the retry delivers it', async () => {
    const user = await insertTestUser(handle.db);
    const mailer = createMailer({ SMTP_URL: smtpUrl, MAIL_FROM: 'billing@example.test' }, logger);
    const { notify } = createNotificationActivities({ db: handle.db, mailer, logger });
    const input = notification(user.id);

    sink.refuse = true;
    try {
      await assert.rejects(notify(input));
    } finally {
      sink.refuse = false;
    }
    let [row] = await handle.db.select().from(notifications).where(eq(notifications.dedupeKey, input.dedupeKey));
    assert.equal(row.sentAt, null);
    assert.match(row.lastError ?? '', /451/);

    assert.equal((await notify(input)).sent, true);
    [row] = await handle.db.select().from(notifications).where(eq(notifications.dedupeKey, input.dedupeKey));
    assert.equal(row.attempts, 2);
    assert.equal(row.lastError, null);
    assert.equal(sink.mailsTo(user.email).length, 1);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
