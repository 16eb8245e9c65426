import { z } from 'zod';
import type { Database, Transaction } from '../db/client';
import { auditLog } from '../db/schema';
import { isoDateTime } from './contract';

/** One staff action: who did what to which thing, why, and what it came to. */
export interface StaffAction {
  actorId: string;
  /** `<thing>.<verb>`, e.g. `subscription.retry_payment`. */
  action: string;
  target: { type: 'subscription' | 'booking' | 'payment' | 'customer' | 'offering'; id: string };
  reason: string;
  details?: Record<string, unknown>;
}

export const auditEntryJsonSchema = z
  .strictObject({
    id: z.int(),
    action: z.string(),
    targetType: z.string(),
    targetId: z.string(),
    reason: z.string(),
    createdAt: isoDateTime,
  })
  .meta({ id: 'AuditEntry', description: 'The audit log row that records a staff action.' });

export type AuditEntryJson = z.infer<typeof auditEntryJsonSchema>;

/**
 * Writes the action to `audit_log` (the time is the database's) and answers the row as the API
 * shows it. Inside a transaction it commits with the change it records.
 */
export async function recordStaffAction(db: Database | Transaction, action: StaffAction): Promise<AuditEntryJson> {
  const [row] = await db
    .insert(auditLog)
    .values({
      actorId: action.actorId,
      action: action.action,
      targetType: action.target.type,
      targetId: action.target.id,
      reason: action.reason,
      details: action.details ?? {},
    })
    .returning();
  return {
    id: row.id,
    action: row.action,
    targetType: row.targetType,
    targetId: row.targetId,
    reason: action.reason,
    createdAt: row.createdAt.toISOString(),
  };
}
