/**
 * Drill on the cluster: stop the Temporal server proper (its state in PostgreSQL, 16 history
 * shards) in the middle of dunning timelines and start it again, with two workers and two API
 * instances running. The timeline and what must hold are test/drills/temporal-restart-timeline.ts's,
 * as on the dev server (temporal-restart.drill.ts): every reminder, retry and expiry once, none
 * before its time.
 */
import { test } from 'node:test';
import { CLUSTER_TOPOLOGY, withDrill } from './drill-support';
import { restartTemporalMidDunning } from './temporal-restart-timeline';

test(
  'cluster: the Temporal server restarted mid-dunning: reminders, retries and expiry once each, at or after their times',
  { timeout: 10 * 60_000 },
  () => withDrill({ ...CLUSTER_TOPOLOGY }, restartTemporalMidDunning),
);
