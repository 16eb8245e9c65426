import { ApplicationFailure } from '@temporalio/common';
import { eq, sql } from 'drizzle-orm';
import nodemailer from 'nodemailer';
import type { Database } from '../db/client';
import { notifications, users } from '../db/schema';
import type { Mailer, NotificationInput, OutgoingMail } from '../domain/notification';
import type { Config } from '../platform/config';
import type { Logger } from '../platform/logger';

/** SMTP through nodemailer when `SMTP_URL` is set; otherwise mail is only logged (development). */
export function createMailer(config: Pick<Config, 'SMTP_URL' | 'MAIL_FROM'>, logger: Logger): Mailer {
  if (!config.SMTP_URL) return logMailer(logger);
  const transport = nodemailer.createTransport(config.SMTP_URL);
  return {
    name: 'smtp',
    async send(mail: OutgoingMail) {
      await transport.sendMail({ from: config.MAIL_FROM, to: mail.to, subject: mail.subject, text: mail.text });
    },
  };
}

function logMailer(logger: Logger): Mailer {
  return {
    name: 'log',
    async send(mail: OutgoingMail) {
      logger.info({ to: mail.to, subject: mail.subject }, 'mail not sent: no SMTP_URL configured');
    },
  };
}

export interface NotificationActivityDeps {
  db: Database;
  mailer: Mailer;
  logger: Logger;
}

export type NotificationActivities = ReturnType<typeof createNotificationActivities>;

export function createNotificationActivities({ db, mailer, logger }: NotificationActivityDeps) {
  /**
   * Records the notification in the outbox once per `dedupeKey` and delivers it once. A failed
   * delivery is recorded on the row and thrown, so Temporal retries it; `sent` says whether this
   * call delivered it (false when an earlier call already had).
   */
  async function notify(input: NotificationInput): Promise<{ notificationId: string; sent: boolean }> {
    await recordInOutbox(db, input);

    const attempt = await db.transaction(async (tx) => {
      // The row lock keeps two concurrent retries from both sending.
      const [row] = await tx.select().from(notifications).where(eq(notifications.dedupeKey, input.dedupeKey)).for('update');
      if (row.sentAt) return { notificationId: row.id, sent: false, error: null };
      try {
        await mailer.send({ to: row.recipient, subject: row.subject, text: row.body });
      } catch (error) {
        await tx
          .update(notifications)
          .set({ attempts: sql`${notifications.attempts} + 1`, lastError: errorMessage(error) })
          .where(eq(notifications.id, row.id));
        return { notificationId: row.id, sent: false, error };
      }
      await tx
        .update(notifications)
        .set({ attempts: sql`${notifications.attempts} + 1`, lastError: null, sentAt: new Date() })
        .where(eq(notifications.id, row.id));
      return { notificationId: row.id, sent: true, error: null };
    });

    if (attempt.error !== null) {
      logger.warn({ notificationId: attempt.notificationId, kind: input.kind, err: attempt.error }, 'notification not delivered');
      throw attempt.error instanceof Error ? attempt.error : new Error(errorMessage(attempt.error));
    }
    if (attempt.sent) logger.info({ notificationId: attempt.notificationId, kind: input.kind, mailer: mailer.name }, 'notification sent');
    return { notificationId: attempt.notificationId, sent: attempt.sent };
  }

  return { notify };
}

async function recordInOutbox(db: Database, input: NotificationInput): Promise<void> {
  const [user] = await db.select({ email: users.email }).from(users).where(eq(users.id, input.userId));
  if (!user) throw ApplicationFailure.nonRetryable(`no user ${input.userId} to notify`, 'UserNotFound');
  await db
    .insert(notifications)
    .values({
      userId: input.userId,
      subscriptionId: input.subscriptionId,
      bookingId: input.bookingId,
      kind: input.kind,
      recipient: user.email,
      subject: input.subject,
      body: input.body,
      dedupeKey: input.dedupeKey,
    })
    .onConflictDoNothing({ target: notifications.dedupeKey });
}

function errorMessage(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 1000);
}
