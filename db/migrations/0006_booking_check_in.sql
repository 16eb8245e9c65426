ALTER TABLE "bookings" ADD COLUMN "confirmation_code" text;--> statement-breakpoint
ALTER TABLE "bookings" ADD COLUMN "checked_in_at" timestamp with time zone;--> statement-breakpoint
CREATE UNIQUE INDEX "bookings_confirmation_code_idx" ON "bookings" USING btree ("confirmation_code");