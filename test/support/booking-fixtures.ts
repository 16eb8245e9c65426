import { randomUUID } from 'node:crypto';
import { and, eq, inArray, isNull } from 'drizzle-orm';
import type { Database } from '../../db/client';
import { offerings, unitClaims, units } from '../../db/schema';
import type { OfferingKind } from '../../domain/booking';

export interface TestOffering {
  id: string;
  unitIds: string[];
  startsAt: Date;
  endsAt: Date;
}

const DAY = 24 * 60 * 60 * 1000;

/** An offering of its own with `unitCount` units priced `unitAmount` each, written straight to the database. */
export async function insertTestOffering(
  db: Database,
  options: {
    unitCount?: number;
    unitAmount?: number;
    currency?: string;
    startsAt?: Date;
    endsAt?: Date;
    holdTtl?: string;
    requiresSubscription?: boolean;
    freeCancellationUntil?: string | null;
    lateRefundPercent?: number;
    maxUnitsPerCustomer?: number;
    kind?: OfferingKind;
  } = {},
): Promise<TestOffering> {
  const startsAt = options.startsAt ?? new Date(Date.now() + 10 * DAY);
  const endsAt = options.endsAt ?? new Date(startsAt.getTime() + 2 * 60 * 60 * 1000);
  const [offering] = await db
    .insert(offerings)
    .values({
      name: `Test show ${randomUUID()}`,
      kind: options.kind ?? 'seating',
      startsAt,
      endsAt,
      requiresSubscription: options.requiresSubscription ?? false,
      holdTtl: options.holdTtl ?? 'PT5M',
      freeCancellationUntil: options.freeCancellationUntil === undefined ? 'P1D' : options.freeCancellationUntil,
      lateRefundPercent: options.lateRefundPercent ?? 50,
      maxUnitsPerCustomer: options.maxUnitsPerCustomer,
    })
    .returning();
  const rows = await db
    .insert(units)
    .values(
      Array.from({ length: options.unitCount ?? 4 }, (_, i) => ({
        offeringId: offering.id,
        label: `A${String(i + 1).padStart(3, '0')}`,
        amount: options.unitAmount ?? 2500,
        currency: options.currency ?? 'usd',
      })),
    )
    .returning({ id: units.id, label: units.label });
  rows.sort((a, b) => a.label.localeCompare(b.label));
  return { id: offering.id, unitIds: rows.map((r) => r.id), startsAt, endsAt };
}

/** The live claims on some units: what PostgreSQL says holds or books them right now. */
export async function liveClaims(db: Database, unitIds: string[]) {
  return db
    .select()
    .from(unitClaims)
    .where(and(inArray(unitClaims.unitId, unitIds), isNull(unitClaims.releasedAt)));
}

export async function liveClaimsOfOffering(db: Database, offeringId: string) {
  return db
    .select()
    .from(unitClaims)
    .where(and(eq(unitClaims.offeringId, offeringId), isNull(unitClaims.releasedAt)));
}
