/** Column shapes every table shares (db/schema.ts and its companions). */
import { bigint, timestamp } from 'drizzle-orm/pg-core';

// Money is always integer minor units; bigint in mode 'number' keeps it a JS number (safe to 2^53).
export const money = (name: string) => bigint(name, { mode: 'number' });
export const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
export const updatedAt = () => timestamp('updated_at', { withTimezone: true }).notNull().defaultNow();
