import { ApplicationFailure } from '@temporalio/common';
import { and, eq, isNull, lt, or, sql } from 'drizzle-orm';
import nodemailer from 'nodemailer';
import type { Database } from '../db/client';
import { notifications, users } from '../db/schema';
import { invoiceOfPayment } from '../db/invoices';
import { withInvoiceNumber, type Mailer, type NotificationInput, type OutgoingMail } from '../domain/notification';
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

// Longer than the activity's start-to-close timeout (NOTIFICATION: 30 s), so a live sender's claim never expires under it.
const SEND_CLAIM_SECONDS = 60;

export interface NotificationActivityDeps {
  db: Database;
  mailer: Mailer;
  logger: Logger;
}

export type NotificationActivities = ReturnType<typeof createNotificationActivities>;

export function createNotificationActivities({ db, mailer, logger }: NotificationActivityDeps) {
  /**
   * Records the notification in the outbox once per `dedupeKey` and delivers it once. Claim,
   * send, record, with no transaction open while the mail server is talked to: the claim
   * (`sending_since`) keeps a concurrent retry from sending too, and one left by a sender that
   * died expires after SEND_CLAIM_SECONDS. A failed delivery is recorded on the row and thrown,
   * so Temporal retries it; `sent` says whether this call delivered it.
   */
  async function notify(input: NotificationInput): Promise<{ notificationId: string; sent: boolean }> {
    await recordInOutbox(db, input);
    return deliverNotification({ dedupeKey: input.dedupeKey });
  }

  /**
   * Delivers a notification already in the outbox (one recorded with a business change, such as
   * the staff notices of a dispute), once, as `notify` does.
   */
  async function deliverNotification({ dedupeKey }: { dedupeKey: string }): Promise<{ notificationId: string; sent: boolean }> {
    const [claimed] = await db
      .update(notifications)
      .set({ sendingSince: sql`now()` })
      .where(
        and(
          eq(notifications.dedupeKey, dedupeKey),
          isNull(notifications.sentAt),
          or(isNull(notifications.sendingSince), lt(notifications.sendingSince, sql`now() - make_interval(secs => ${SEND_CLAIM_SECONDS})`)),
        ),
      )
      .returning();
    if (!claimed) {
      const [row] = await db.select().from(notifications).where(eq(notifications.dedupeKey, dedupeKey));
      if (!row) throw ApplicationFailure.nonRetryable(`no notification ${dedupeKey} in the outbox`, 'NotificationNotFound');
      if (row.sentAt) return { notificationId: row.id, sent: false };
      // Another attempt is sending it now: retried later, this finds it sent (or the claim expired).
      throw new Error(`notification ${row.id} is being sent by another attempt`);
    }
    try {
      await mailer.send({ to: claimed.recipient, subject: claimed.subject, text: claimed.body });
    } catch (error) {
      await db
        .update(notifications)
        .set({ attempts: sql`${notifications.attempts} + 1`, lastError: errorMessage(error), sendingSince: null })
        .where(eq(notifications.id, claimed.id));
      logger.warn({ notificationId: claimed.id, kind: claimed.kind, err: error }, 'notification not delivered');
      throw error instanceof Error ? error : new Error(errorMessage(error));
    }
    await db
      .update(notifications)
      .set({ attempts: sql`${notifications.attempts} + 1`, lastError: null, sentAt: new Date(), sendingSince: null })
      .where(eq(notifications.id, claimed.id));
    logger.info({ notificationId: claimed.id, kind: claimed.kind, mailer: mailer.name }, 'notification sent');
    return { notificationId: claimed.id, sent: true };
  }

  return { notify, deliverNotification };
}

async function recordInOutbox(db: Database, input: NotificationInput): Promise<void> {
  const [user] = await db.select({ email: users.email }).from(users).where(eq(users.id, input.userId));
  if (!user) throw ApplicationFailure.nonRetryable(`no user ${input.userId} to notify`, 'UserNotFound');
  // The invoice is written in the transaction that recorded the charge's outcome, before the
  // workflow sends the notice, so it is there to name (a charge with none is told as it is).
  const invoice = input.paymentId ? await invoiceOfPayment(db, input.paymentId) : undefined;
  const named = invoice ? withInvoiceNumber(input, invoice.number) : input;
  await db
    .insert(notifications)
    .values({
      userId: input.userId,
      subscriptionId: input.subscriptionId,
      bookingId: input.bookingId,
      kind: input.kind,
      recipient: user.email,
      subject: named.subject,
      body: named.body,
      dedupeKey: input.dedupeKey,
    })
    .onConflictDoNothing({ target: notifications.dedupeKey });
}

function errorMessage(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 1000);
}
