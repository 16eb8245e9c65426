/** An email on its way out; the mailer is SMTP (nodemailer) when configured, a log line otherwise. */
export interface OutgoingMail {
  to: string;
  subject: string;
  text: string;
}

export interface Mailer {
  readonly name: 'smtp' | 'log';
  send(mail: OutgoingMail): Promise<void>;
}

export type NotificationKind =
  | 'payment_succeeded'
  | 'payment_failed'
  | 'payment_action_required'
  | 'payment_refunded'
  | 'grace_reminder'
  | 'subscription_expired'
  | 'subscription_canceled'
  | 'subscription_changed'
  | 'subscription_paused'
  | 'subscription_resumed'
  | 'booking_confirmed'
  | 'booking_failed'
  | 'booking_canceled'
  /** The business canceled the offering: a full refund. */
  | 'booking_canceled_by_business'
  | 'booking_rescheduled'
  | 'booking_reminder'
  | 'waitlist_offer';

/** A notification to record in the outbox and deliver; `dedupeKey` makes retries a no-op. */
export interface NotificationInput {
  userId: string;
  kind: NotificationKind;
  subject: string;
  body: string;
  dedupeKey: string;
  subscriptionId?: string;
  bookingId?: string;
  /** The charge the notice is about: its invoice number is added when the notice is recorded. */
  paymentId?: string;
}

/**
 * The one dedupe-key format for notifications: a workflow and the event it tells of
 * (`subscription-…/notify/3:paid`). The same event notified again, by a retry, a replay or a
 * run that continued as new, is the same row in the outbox and one email.
 */
export function notificationDedupeKey(workflowId: string, event: string): string {
  return `${workflowId}/notify/${event}`;
}

/** A notice about a charge, naming its invoice: the number in the subject and on a line of its own. */
export function withInvoiceNumber<T extends { subject: string; body: string }>(notice: T, number: string): T {
  return { ...notice, subject: `${notice.subject} (${number})`, body: `${notice.body}\n\nInvoice: ${number}` };
}
