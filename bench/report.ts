/** The run's results as JSON (bench/results/<timestamp>.json) and as the markdown table in latest.md. */
import type {
  AvailabilityResult,
  CeilingResult,
  FootprintResult,
  HistoryCounts,
  HoldsResult,
  Sizes,
  StormResult,
  SubscribeResult,
} from './benchmarks';
import type { CpuReading } from './cpu';
import { footprintRows } from './footprint';
import type { PeerResult } from './cron-peer';
import { STAGE_NAMES, type Stages } from './history';
import type { ProfileSummary } from './profile';
import type { SoakResult } from './soak';
import { countsText } from './format';
import { soakDetails, soakRow } from './soak-report';
import type { LatencySummary } from './stats';

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  platform: string;
  loadAverageAtStart: number[];
  loadAverageAtEnd?: number[];
}

export interface BenchResults {
  startedAt: string;
  finishedAt?: string;
  label?: string;
  machine: Machine;
  sizes: Sizes;
  /** Where the Temporal dev server keeps its state. */
  temporalPersistence: 'memory' | 'sqlite-file';
  temporalDynamicConfig: Readonly<Record<string, number>>;
  /** The tuning variables the worker and API ran with, and the worker's effective cache size. */
  tuning: Record<string, string | number | null>;
  ceilingBefore?: CeilingResult;
  ceilingAfter?: CeilingResult;
  subscribe?: SubscribeResult;
  holds?: HoldsResult;
  availability?: AvailabilityResult;
  /** GET /coupons/validate of a cached code, same connections and duration as availability. */
  couponValidation?: AvailabilityResult;
  /** GET /healthz, same connections and duration: the HTTP ceiling the read rows compare with. */
  httpCeiling?: AvailabilityResult;
  storm?: StormResult;
  /** The storm's second and third runs, back to back after the first (`sizes.stormRuns`). */
  stormAgain?: StormResult[];
  /** The cron job the storm is compared with (bench/cron-peer.ts). */
  peer?: PeerResult;
  /** The issue's within-run ratios that need two rows (ratiosOf), written into the JSON too. */
  ratios?: RunRatios;
  /** Interactive work under steady background load (bench/soak.ts). */
  soak?: SoakResult;
  footprint?: FootprintResult;
  histories?: HistoryCounts;
  profiles?: Record<string, ProfileSummary>;
  /** What the Temporal server's and the worker's own metrics moved by during each benchmark (bench/metrics.ts). */
  metrics?: Record<string, { temporal: Array<{ name: string; delta: number }>; worker: Array<{ name: string; delta: number }> }>;
  /** The books after the runs, against the gateway's record (scripts/bench.ts): differences must be 0. */
  reconciliation?: {
    customers: number;
    payments: number;
    invoices: number;
    gateway: { source: string; charges: number; refunds: number } | null;
    differences: number;
  };
  errors: Record<string, string>;
}

/** The ceiling the ratios divide by: the mean of the runs before and after the others. */
export function ceilingPerSecond(results: BenchResults): number {
  const runs = [results.ceilingBefore, results.ceilingAfter].filter((c): c is CeilingResult => c !== undefined);
  return runs.reduce((sum, c) => sum + c.perSecond, 0) / Math.max(1, runs.length);
}

/** The latency ceiling: the one-at-a-time no-op workflow's p50, the mean of the runs before and after. */
export function noopAloneP50(results: BenchResults): number {
  const runs = [results.ceilingBefore, results.ceilingAfter].filter((c): c is CeilingResult => c?.aloneLatencyMs !== undefined);
  return runs.length > 0 ? runs.reduce((sum, c) => sum + c.aloneLatencyMs.p50, 0) / runs.length : Number.NaN;
}

export interface RunRatios {
  /** One at a time p50 over the no-op workflow's one-at-a-time p50 (targets: ≤ 3, ≤ 1.5, ≤ 4). */
  subscribeAloneP50VsNoop?: number;
  holdAloneP50VsNoop?: number;
  bookingAloneP50VsNoop?: number;
  /** The storm over the cron peer: renewals/s, and CPU per renewal summed over every process. */
  stormVsPeerRenewalsPerSecond?: number;
  stormVsPeerCpuPerRenewal?: number;
}

export function ratiosOf(r: BenchResults): RunRatios {
  const noop = noopAloneP50(r);
  const overNoop = (l: LatencySummary | undefined) => (l && noop > 0 ? l.p50 / noop : undefined);
  return {
    subscribeAloneP50VsNoop: overNoop(r.subscribe?.aloneLatencyMs),
    holdAloneP50VsNoop: overNoop(r.holds?.alone.holdLatencyMs),
    bookingAloneP50VsNoop: overNoop(r.holds?.alone.bookingLatencyMs),
    stormVsPeerRenewalsPerSecond: r.storm && r.peer ? r.storm.renewalsPerSecond / r.peer.renewalsPerSecond : undefined,
    stormVsPeerCpuPerRenewal: r.storm && r.peer ? cpuTotal(r.storm.cpuMsPerOperation) / cpuTotal(r.peer.cpuMsPerOperation) : undefined,
  };
}

export function cpuTotal(reading: CpuReading): number {
  return Object.values(reading).reduce((sum, x) => sum + x, 0);
}

export function toMarkdown(r: BenchResults): string {
  const ceiling = ceilingPerSecond(r);
  const ratios = ratiosOf(r);
  const timesNoop = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '' : `, **${x.toFixed(1)}× the no-op's p50**`);
  const ratio = (perSecond: number) => (ceiling > 0 ? `${(perSecond / ceiling).toFixed(2)}×` : 'n/a');
  const rows: string[][] = [];
  if (r.ceilingBefore || r.ceilingAfter) {
    const each = [r.ceilingBefore, r.ceilingAfter]
      .filter(Boolean)
      .map((c) => num(c!.perSecond))
      .join(' / ');
    rows.push([
      `1. Ceiling: no-op workflow, start → completion (${r.sizes.ceiling} × 2, ${r.sizes.concurrency} in flight)`,
      `**${num(ceiling)} workflows/s** (before / after the rest: ${each})`,
      '1.00×',
    ]);
    const alone = [r.ceilingBefore, r.ceilingAfter].filter((c): c is CeilingResult => c?.aloneLatencyMs !== undefined);
    if (alone.length > 0)
      rows.push([
        `1b. Latency ceiling: no-op workflow started and awaited one at a time (${alone[0].aloneLatencyMs.count}, before / after the rest)`,
        `p50 **${ms(noopAloneP50(r))}** (${alone.map((c) => latency(c.aloneLatencyMs)).join(' / ')}); the one-at-a-time rows divide by this p50`,
        '',
      ]);
  }
  if (r.subscribe) {
    const s = r.subscribe;
    rows.push([
      `2. Subscribe via the API, first charge on the sandbox gateway (${s.count}, ${s.concurrency} in flight, ${s.users} users)`,
      `**${num(s.perSecond)} subscriptions/s**; latency ${latency(s.latencyMs)} (one at a time: ${latency(s.aloneLatencyMs)}${timesNoop(ratios.subscribeAloneP50VsNoop)}); ${statuses(s.statuses)}`,
      ratio(s.perSecond),
    ]);
  }
  if (r.storm) {
    const s = r.storm;
    rows.push([
      `3. Renewal storm: ${s.count} subscriptions due at one instant`,
      `**${num(s.renewalsPerSecond)} renewals/s** (${s.renewed} charged in ${sec(s.drainMs)}, at most ${s.peakChargesPerSecond} in one second; all asleep in their next run after ${s.settledMs === undefined ? 'n/a' : sec(s.settledMs)}); lateness ${latency(s.latenessMs, 's')}${s.armedBeforeDue ? '' : ' (not all armed before the due instant)'}${peerTimes(ratios)}`,
      ratio(s.renewalsPerSecond),
    ]);
  }
  if (r.storm && r.stormAgain?.length) rows.push(stormRunsRow([r.storm, ...r.stormAgain], r.ceilingBefore?.cpuMsPerOperation));
  if (r.peer) {
    const p = r.peer;
    rows.push([
      `3b. Cron peer: a job polling PostgreSQL (\`FOR UPDATE SKIP LOCKED\`, ${p.workers} workers) renews ${p.count} subscriptions due at one instant, same sandbox gateway, same limit of ${num(p.gatewayCallsPerSecond)} calls/s`,
      `**${num(p.renewalsPerSecond)} renewals/s** (${p.renewed} charged in ${sec(p.drainMs)}, at most ${p.peakChargesPerSecond} in one second); lateness ${latency(p.latenessMs, 's')}; ${countsText(p.statuses)}`,
      ratio(p.renewalsPerSecond),
    ]);
  }
  if (r.holds) {
    const h = r.holds;
    const b = h.bookings;
    const doubles = h.doubleBookings.unitsClaimedTwice + h.doubleBookings.unitsInTwoLiveHolds + h.doubleBookings.unitsInTwoConfirmedBookings;
    rows.push([
      `4. Hold contention: ${h.requests} concurrent requests for 1–4 adjacent of ${h.units} units`,
      `**${num(h.answeredPerSecond)} answers/s**; latency ${latency(h.latencyMs)} (granted ${latency(h.grantedLatencyMs)}, refused ${latency(h.refusedLatencyMs)}); **${h.granted} granted**; ${statuses(h.statuses)}; **double bookings: ${doubles}**`,
      ratio(h.answeredPerSecond),
    ]);
    rows.push([
      `4b. Booking every hold granted (${b.count} at once, saga with a charge)`,
      `latency ${latency(b.latencyMs)}; ${statuses(b.statuses)}`,
      ratio((b.count * 1000) / Math.max(1, b.elapsedMs)),
    ]);
    rows.push([
      `4c. One request at a time (${h.alone.holdLatencyMs.count} each): hold, booking, availability read`,
      `hold ${latency(h.alone.holdLatencyMs)}${timesNoop(ratios.holdAloneP50VsNoop)}; booking ${latency(h.alone.bookingLatencyMs)}${timesNoop(ratios.bookingAloneP50VsNoop)}; availability ${latency(h.alone.availabilityLatencyMs)}`,
      '',
    ]);
    rows.push([
      `4d. The ${h.refusedAgain.count} refused requests again at once (their units booked by then)`,
      `latency ${latency(h.refusedAgain.latencyMs)}; ${statuses(h.refusedAgain.statuses)}`,
      '',
    ]);
  }
  const reads: Array<[string, AvailabilityResult | undefined]> = [
    ['5. Availability reads', r.availability],
    ['5b. Coupon validation', r.couponValidation],
    ['5c. HTTP ceiling: GET /healthz through the same middleware, no work', r.httpCeiling],
  ];
  for (const [title, a] of reads) {
    if (!a) continue;
    rows.push([
      `${title} (autocannon, ${a.connections} connections, ${a.durationSeconds} s)`,
      `**${num(a.requestsPerSecond)} requests/s**, p95 **${ms(a.latencyMs.p95)}** (p50 ${ms(a.latencyMs.p50)}, p99 ${ms(a.latencyMs.p99)}); non-2xx ${a.non2xx}, errors ${a.errors}${overHttpCeiling(a, r.httpCeiling)}`,
      ratio(a.requestsPerSecond),
    ]);
  }
  if (r.soak) rows.push(soakRow(r.soak));
  if (r.footprint) {
    const f = r.footprint;
    rows.push([
      `6. Worker memory with ${f.sleepingAdded} more sleeping subscriptions (${f.runningWorkflows ?? '?'} workflows running in all)`,
      `RSS **${num(f.rssAfterMiB)} MiB** (before them ${num(f.rssBeforeMiB)} MiB, idle at start ${num(f.rssIdleMiB)} MiB); sticky cache ${f.maxCachedWorkflows ?? '?'} workflows`,
      '',
    ]);
    rows.push(...footprintRows(f));
  }
  if (r.histories) {
    const h = r.histories;
    const describe = (c: HistoryCounts['renewalRun']) =>
      c ? `**${c.events} events** (${c.workflowTasks} workflow tasks, ${c.activities} activities, ${c.timers} timers)` : 'n/a';
    rows.push(['6b. History per renewal cycle (one run: wake, charge, project, notify, continue-as-new)', describe(h.renewalRun), '']);
    rows.push(['6c. History per dunning timeline (failed renewal, 3 retries, 3 reminders, expiry)', describe(h.dunningRun), '']);
    rows.push(['6d. History of a first run via the API (subscribe, charge, asleep)', describe(h.subscribeRun), '']);
  }

  const lines = [
    `Machine: ${machineLine(r.machine)}.`,
    `Run: ${r.startedAt}${r.label ? ` (${r.label})` : ''}; Temporal dev server state in ${r.temporalPersistence === 'memory' ? 'memory' : 'a SQLite file'}${dynamicConfig(r.temporalDynamicConfig)}; tuning: ${Object.entries(
      r.tuning,
    )
      .map(([k, v]) => `${k}=${v ?? 'default'}`)
      .join(', ')}.`,
    '',
    '| Benchmark | Result | Ratio to ceiling |',
    '| --- | --- | --- |',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ];
  const cpuRows: Array<[string, CpuReading | undefined]> = [
    ['Ceiling: one no-op workflow', r.ceilingBefore?.cpuMsPerOperation],
    ['Subscribe: one request', r.subscribe?.cpuMsPerOperation],
    ['Renewal storm: one renewal', r.storm?.cpuMsPerOperation],
    ['Cron peer: one renewal (the job runs in the bench process)', r.peer?.cpuMsPerOperation],
    ['Hold contention: one request', r.holds?.cpuMsPerOperation],
    ['Hold refused (4d): one request', r.holds?.refusedAgain?.cpuMsPerOperation],
    ['Hold granted, one at a time: one request', r.holds?.alone.holdCpuMsPerOperation],
    ['Booking: one request', r.holds?.bookings.cpuMsPerOperation],
    ['Availability: one read', r.availability?.cpuMsPerOperation],
    ['Coupon validation: one read', r.couponValidation?.cpuMsPerOperation],
    ['HTTP ceiling: one GET /healthz', r.httpCeiling?.cpuMsPerOperation],
  ];
  const measured = cpuRows.filter((row): row is [string, CpuReading] => row[1] !== undefined);
  if (measured.length > 0)
    lines.push(
      '',
      'CPU per operation, by process (ms; from /proc, so other work on the machine does not count; bench/cpu.ts):',
      '',
      cpuTable(measured),
    );
  if (r.storm && r.peer) lines.push('', stormAgainstPeer(r.storm, r.peer, ratios));
  if (r.soak) lines.push('', ...soakDetails(r.soak));
  const stageTables = [
    r.subscribe && stageTable('Subscribe', r.subscribe.stagesMs, r.subscribe.stageSamples),
    r.holds && r.holds.bookings.stageSamples > 0 && stageTable('Booking', r.holds.bookings.stagesMs, r.holds.bookings.stageSamples),
  ].filter(Boolean);
  if (stageTables.length > 0)
    lines.push(
      '',
      "Where a request's time goes (mean ms per stage, from workflow histories; bench/history.ts):",
      '',
      ...stageTables.join('\n\n').split('\n'),
    );
  if (r.profiles) {
    for (const [name, profile] of Object.entries(r.profiles)) lines.push('', profileTable(name, profile));
  }
  if (r.reconciliation) lines.push('', reconciliationLine(r.reconciliation));
  const errors = Object.entries(r.errors);
  if (errors.length > 0) lines.push('', 'Benchmarks that failed this run:', '', ...errors.map(([name, message]) => `- ${name}: ${message}`));
  return `${lines.join('\n')}\n`;
}

/** The storm's runs side by side: CPU per renewal, its spread (target ≤ 1.15) and its multiple of the no-op's. */
function stormRunsRow(runs: StormResult[], noop: CpuReading | undefined): string[] {
  const cpu = runs.map((s) => cpuTotal(s.cpuMsPerOperation));
  const spread = Math.max(...cpu) / Math.min(...cpu);
  const overNoop = noop ? `; ${cpu.map((x) => `${(x / cpuTotal(noop)).toFixed(1)}×`).join(' / ')} the no-op's CPU` : '';
  return [
    `3c. The storm ${runs.length} times, back to back (${runs[0].count} each)`,
    `CPU per renewal ${cpu.map(num).join(' / ')} ms, **max ÷ min ${spread.toFixed(2)}** (target ≤ 1.15)${overNoop}; ${runs.map((s) => num(s.renewalsPerSecond)).join(' / ')} renewals/s; lateness p99 ${runs.map((s) => sec(s.latenessMs.p99)).join(' / ')}`,
    '',
  ];
}

/** A read row's requests/s and p95 as multiples of the HTTP ceiling's (itself: nothing). */
function overHttpCeiling(a: AvailabilityResult, ceiling: AvailabilityResult | undefined): string {
  if (!ceiling || a === ceiling) return '';
  return `; **${(a.requestsPerSecond / ceiling.requestsPerSecond).toFixed(2)}× the HTTP ceiling's requests/s, p95 ${(a.latencyMs.p95 / ceiling.latencyMs.p95).toFixed(2)}× its p95**`;
}

function peerTimes(ratios: RunRatios): string {
  const x = ratios.stormVsPeerRenewalsPerSecond;
  return x === undefined || !Number.isFinite(x) ? '' : `; **${x.toFixed(2)}× the cron peer's** renewals/s`;
}

function stormAgainstPeer(storm: StormResult, peer: PeerResult, ratios: RunRatios): string {
  const cpu = ratios.stormVsPeerCpuPerRenewal ?? Number.NaN;
  return [
    `Renewal storm against the cron peer, same run: **${num(storm.renewalsPerSecond)} vs ${num(peer.renewalsPerSecond)} renewals/s** (${num(ratios.stormVsPeerRenewalsPerSecond ?? Number.NaN)}×),`,
    `**${num(cpuTotal(storm.cpuMsPerOperation))} vs ${num(cpuTotal(peer.cpuMsPerOperation))} ms of CPU per renewal** over every process (${num(cpu)}×): what durability costs against the cron design.`,
  ].join(' ');
}

export function reconciliationLine(books: NonNullable<BenchResults['reconciliation']>): string {
  const against = books.gateway
    ? `against ${books.gateway.source} (${books.gateway.charges} charges, ${books.gateway.refunds} refunds)`
    : 'in PostgreSQL alone';
  return `Reconciliation after the runs: ${books.customers} customers, ${books.payments} payments, ${books.invoices} invoices, ${against}: **${books.differences} differences**.`;
}

export function machineLine(m: Machine): string {
  return `${m.cpus} cores (${m.cpuModel}), ${m.memoryGiB.toFixed(1)} GiB memory, Node ${m.node}, ${m.platform}; load average ${m.loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')} at the start (other work shares the machine)`;
}

export function cpuTable(rows: Array<[string, CpuReading]>): string {
  const processes = Object.keys(rows[0][1]);
  const total = cpuTotal;
  return [
    `| Operation | ${processes.join(' | ')} | total |`,
    `| --- | ${processes.map(() => '---').join(' | ')} | --- |`,
    ...rows.map(([name, reading]) => `| ${name} | ${processes.map((p) => num(reading[p])).join(' | ')} | ${num(total(reading))} |`),
  ].join('\n');
}

function stageTable(title: string, stages: Stages, samples: number): string {
  const header = `| ${title} (${samples} samples) | ${STAGE_NAMES.join(' | ')} | total |`;
  const divider = `| --- | ${STAGE_NAMES.map(() => '---').join(' | ')} | --- |`;
  const values = `| mean ms | ${STAGE_NAMES.map((n) => `${num(stages[n])} (${pct(stages[n], stages.total)})`).join(' | ')} | ${num(stages.total)} |`;
  return [header, divider, values].join('\n');
}

function profileTable(name: string, p: ProfileSummary): string {
  const rows = (entries: ProfileSummary['top']) => entries.map((t) => `| ${t.name} | ${num(t.selfMs)} | ${pct(t.selfMs, p.busyMs)} |`);
  return [
    `CPU profile of the ${name} process: ${sec(p.busyMs)} busy of ${sec(p.totalMs)} sampled. Self time by package or file, then by function:`,
    '',
    '| Where | Self ms | Share of busy |',
    '| --- | --- | --- |',
    ...rows(p.top),
    '',
    '| Function | Self ms | Share of busy |',
    '| --- | --- | --- |',
    ...rows(p.topFunctions.slice(0, 10)),
  ].join('\n');
}

export function latency(l: LatencySummary, unit: 'ms' | 's' = 'ms'): string {
  const f = unit === 's' ? sec : ms;
  return `p50 ${f(l.p50)}, p95 ${f(l.p95)}, p99 ${f(l.p99)}`;
}

export function statuses(counts: Record<string, number>): string {
  return `HTTP ${countsText(counts)}`;
}

export function num(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

export function ms(x: number): string {
  return `${num(x)} ms`;
}

export function sec(x: number): string {
  return `${num(x / 1000)} s`;
}

function pct(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(0)}%` : 'n/a';
}

function dynamicConfig(values: Readonly<Record<string, number>> | undefined): string {
  const entries = Object.entries(values ?? {});
  if (entries.length === 0) return ', its dynamic config at the defaults';
  return `, dynamic config ${entries.map(([k, v]) => `${k}=${v}`).join(', ')}`;
}
