/**
 * Drill: stop the Temporal dev server in the middle of dunning timelines and start it again on
 * the same SQLite file (test/drills/temporal-restart-timeline.ts has the timeline and what must
 * hold). cluster-temporal-restart.drill.ts runs the same on the Temporal server proper.
 */
import { test } from 'node:test';
import { withDrill } from './drill-support';
import { restartTemporalMidDunning } from './temporal-restart-timeline';

test('Temporal restarted mid-dunning: reminders, retries and expiry once each, at or after their times', { timeout: 10 * 60_000 }, () =>
  withDrill({ temporalDbFile: true }, restartTemporalMidDunning),
);
