/**
 * Drill: stop PostgreSQL for 10 s in the middle of a renewal storm on the dev server's stack
 * (test/drills/postgres-outage-renewals.ts has the drill and what must hold).
 * cluster-postgres-outage.drill.ts runs the same on the cluster, where Temporal loses its
 * database too.
 */
import { test } from 'node:test';
import { withDrill } from './drill-support';
import { stopPostgresDuringRenewals } from './postgres-outage-renewals';

test('PostgreSQL down for 10 s during renewals: every renewal lands once, the API answers 503', { timeout: 10 * 60_000 }, () =>
  withDrill({ api: true, durablePostgres: true, gatewayDelayMs: 50 }, stopPostgresDuringRenewals),
);
