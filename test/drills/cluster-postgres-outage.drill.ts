/**
 * Drill on the cluster: stop PostgreSQL for 10 s during a renewal storm, where the one PostgreSQL
 * server holds both the app's database and the Temporal server's, with two workers and two API
 * instances behind nginx. The drill and what must hold are test/drills/postgres-outage-renewals.ts's,
 * as on the dev server (postgres-outage.drill.ts): every renewal lands once, and through nginx the
 * API answers 503 while the database is gone; afterwards every API instance is ready again.
 */
import { test } from 'node:test';
import { CLUSTER_TOPOLOGY, withDrill } from './drill-support';
import { stopPostgresDuringRenewals } from './postgres-outage-renewals';

test(
  'cluster: PostgreSQL (the app’s and Temporal’s) down for 10 s during renewals: every renewal lands once, the API answers 503',
  { timeout: 10 * 60_000 },
  () => withDrill({ ...CLUSTER_TOPOLOGY, durablePostgres: true, gatewayDelayMs: 50 }, stopPostgresDuringRenewals),
);
