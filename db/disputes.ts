import { and, eq, inArray, like, sql } from 'drizzle-orm';
import { formatMoney } from '../domain/money';
import type { Database } from './client';
import { auditLog, notifications, payments, users } from './schema';

/** A dispute (chargeback) the gateway reported on one of our charges. */
export interface GatewayDispute {
  disputeId: string;
  paymentId: string;
  /** The bank's reason (`fraudulent`, `product_not_received` …). */
  reason: string;
  amount: number;
  currency: string;
}

export const PAYMENT_DISPUTED_ACTION = 'payment.disputed';
export const PAYMENT_DISPUTED_NOTIFICATION = 'payment_disputed';

/**
 * Records a dispute once, in one short transaction: the charge becomes `disputed` (only from
 * `succeeded` or `refunded`), an audit row names it (no actor: the gateway did it), and every
 * staff user gets a notification row in the outbox. A dispute already recorded (its audit row
 * exists) changes nothing, so the gateway's retry of the event is harmless. Answers whether it
 * was recorded now and the dedupe keys of the staff notices (for staffAlertWorkflow to deliver).
 */
export async function recordDispute(db: Database, dispute: GatewayDispute): Promise<{ recorded: boolean; staffNoticeKeys: string[] }> {
  return db.transaction(async (tx) => {
    const noticeKeys = async () =>
      (
        await tx
          .select({ key: notifications.dedupeKey })
          .from(notifications)
          .where(like(notifications.dedupeKey, `${disputeNoticePrefix(dispute.disputeId)}%`))
      ).map((row) => row.key);
    // Serialises two deliveries of the same dispute on the charge's row.
    await tx.select({ id: payments.id }).from(payments).where(eq(payments.id, dispute.paymentId)).for('update');
    const [known] = await tx
      .select({ id: auditLog.id })
      .from(auditLog)
      .where(
        and(
          eq(auditLog.action, PAYMENT_DISPUTED_ACTION),
          eq(auditLog.targetId, dispute.paymentId),
          sql`${auditLog.details}->>'disputeId' = ${dispute.disputeId}`,
        ),
      );
    // Recorded by an earlier delivery: its notices are answered again, so a delivery whose
    // workflow start failed can start it now.
    if (known) return { recorded: false, staffNoticeKeys: await noticeKeys() };

    await tx
      .update(payments)
      .set({ status: 'disputed', updatedAt: new Date() })
      .where(and(eq(payments.id, dispute.paymentId), inArray(payments.status, ['succeeded', 'refunded'])));
    await tx.insert(auditLog).values({
      actorId: null,
      action: PAYMENT_DISPUTED_ACTION,
      targetType: 'payment',
      targetId: dispute.paymentId,
      reason: dispute.reason,
      details: { disputeId: dispute.disputeId, amount: dispute.amount, currency: dispute.currency },
    });
    const staff = await tx.select({ id: users.id, email: users.email }).from(users).where(eq(users.role, 'staff'));
    if (staff.length > 0) {
      const amount = formatMoney(dispute.amount, dispute.currency);
      await tx
        .insert(notifications)
        .values(
          staff.map((s) => ({
            userId: s.id,
            kind: PAYMENT_DISPUTED_NOTIFICATION,
            recipient: s.email,
            subject: `Dispute of ${amount} on payment ${dispute.paymentId}`,
            body: `The customer's bank disputes ${amount} of payment ${dispute.paymentId} (reason: ${dispute.reason}, dispute ${dispute.disputeId}). Answer it in the gateway's dashboard before its deadline.`,
            dedupeKey: `${disputeNoticePrefix(dispute.disputeId)}${s.id}`,
          })),
        )
        .onConflictDoNothing({ target: notifications.dedupeKey });
    }
    return { recorded: true, staffNoticeKeys: await noticeKeys() };
  });
}

function disputeNoticePrefix(disputeId: string): string {
  return `dispute/${disputeId}/`;
}
