/**
 * A subscription and its notifications as the API shows them: the projection row with dates as
 * ISO-8601 UTC strings, the coupon applied, and the links to its workflow in the Temporal UI.
 */
import { z } from 'zod';
import { notifications, subscriptions } from '../db/schema';
import { COUPON_DURATIONS } from '../domain/coupon';
import { MAX_QUANTITY } from '../domain/proration';
import { isoDateTime } from './contract';
import { workflowLinkFields, type WorkflowLinker } from './temporal-ui';

export type SubscriptionRow = typeof subscriptions.$inferSelect;
export type NotificationRow = typeof notifications.$inferSelect;

/** A subscription as the API shows it: its projection row, dates as ISO-8601 UTC strings. */
export const subscriptionJsonSchema = z
  .strictObject({
    id: z.uuid(),
    userId: z.uuid(),
    planId: z.uuid(),
    status: z.enum(subscriptions.status.enumValues),
    currentPeriodStart: isoDateTime.nullable(),
    currentPeriodEnd: isoDateTime.nullable(),
    nextBillingDate: isoDateTime.nullable(),
    cancelAtPeriodEnd: z.boolean(),
    canceledAt: isoDateTime.nullable(),
    trialEnd: isoDateTime.nullable(),
    graceEndsAt: isoDateTime.nullable().meta({ description: 'While past due: when the subscription expires unless a payment succeeds.' }),
    attemptCount: z.int().min(0).meta({ description: 'While past due: charges made for the unpaid period so far.' }),
    quantity: z.int().min(1).max(MAX_QUANTITY).meta({ description: 'Seats: each period costs the plan amount × quantity.' }),
    scheduledChange: z
      .union([z.strictObject({ planId: z.uuid(), quantity: z.int().min(1).max(MAX_QUANTITY), at: isoDateTime }), z.null()])
      .meta({ description: 'A plan change that applies at the next renewal (`at`); withdraw it with DELETE …/scheduled-change.' }),
    pauseAt: isoDateTime.nullable().meta({ description: 'A pause asked for begins at this instant, the paid period’s end.' }),
    pausedAt: isoDateTime.nullable().meta({ description: 'While paused: when the paid period ended and the pause began.' }),
    resumesAt: isoDateTime.nullable().meta({ description: 'When a pause (asked for or in effect) ends by itself.' }),
    discount: z
      .union([
        z.strictObject({
          couponCode: z.string(),
          percentOff: z.int().min(1).max(100).nullable(),
          amountOff: z.int().min(1).nullable(),
          currency: z.string().nullable(),
          duration: z.enum(COUPON_DURATIONS),
          remainingCycles: z.int().min(0).nullable().meta({ description: 'Charges it still covers; null: forever.' }),
        }),
        z.null(),
      ])
      .meta({ description: 'The coupon applied: percentOff or amountOff off each period it covers.' }),
    ...workflowLinkFields,
    createdAt: isoDateTime,
  })
  .meta({ id: 'Subscription' });

export type SubscriptionJson = z.infer<typeof subscriptionJsonSchema>;

export function toSubscriptionJson(row: SubscriptionRow, link: WorkflowLinker): SubscriptionJson {
  return {
    id: row.id,
    userId: row.userId,
    planId: row.planId,
    status: row.status,
    currentPeriodStart: isoOrNull(row.currentPeriodStart),
    currentPeriodEnd: isoOrNull(row.currentPeriodEnd),
    nextBillingDate: isoOrNull(row.nextBillingDate),
    cancelAtPeriodEnd: row.cancelAtPeriodEnd,
    canceledAt: isoOrNull(row.canceledAt),
    trialEnd: isoOrNull(row.trialEnd),
    graceEndsAt: isoOrNull(row.graceEndsAt),
    attemptCount: row.attemptCount,
    quantity: row.quantity,
    scheduledChange: row.scheduledChange ?? null,
    pauseAt: isoOrNull(row.pauseAt),
    pausedAt: isoOrNull(row.pausedAt),
    resumesAt: isoOrNull(row.resumesAt),
    discount: row.discount ?? null,
    ...link(row.workflowId),
    createdAt: row.createdAt.toISOString(),
  };
}

/** A notification as the API shows it: what was said and when, not to whom. */
export const notificationJsonSchema = z
  .strictObject({
    id: z.uuid(),
    kind: z.string(),
    subject: z.string(),
    createdAt: isoDateTime,
    sentAt: isoDateTime.nullable(),
  })
  .meta({ id: 'Notification' });

export type NotificationJson = z.infer<typeof notificationJsonSchema>;

export function toNotificationJson(row: NotificationRow): NotificationJson {
  return { id: row.id, kind: row.kind, subject: row.subject, createdAt: row.createdAt.toISOString(), sentAt: isoOrNull(row.sentAt) };
}

function isoOrNull(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}
