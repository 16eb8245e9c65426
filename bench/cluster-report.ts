/**
 * The cluster run's results (bench/cluster-bench.ts) as JSON and as the markdown of
 * bench/results/cluster-latest.md: each benchmark with one worker process and with two, the ratio
 * two ÷ one, CPU per operation by kind of process (every worker summed as `worker`, every API as
 * `api`), and the cores each kind kept busy, which says where the CPU went when a second worker
 * bought little.
 */
import type { CeilingResult, Sizes, StormResult, SubscribeResult, HoldsResult } from './benchmarks';
import type { CpuReading } from './cpu';
import { cpuTable, cpuTotal, latency, machineLine, num, reconciliationLine, sec, statuses, type BenchResults, type Machine } from './report';

export interface ClusterTopology {
  /** What ran Temporal, e.g. `Temporal server 1.30.4 on PostgreSQL`. */
  temporal: string;
  historyShards: number;
  apis: number;
  loadBalancer: string;
}

/** One pass of the benchmarks with `workers` worker processes running. */
export interface ClusterPass {
  workers: number;
  loadAverageAtStart: number[];
  loadAverageAtEnd?: number[];
  ceiling?: CeilingResult;
  subscribe?: SubscribeResult;
  holds?: HoldsResult;
  storm?: StormResult;
  /** Bytes of each database just before the storm's subscriptions were seeded and once they had settled. */
  stormStorage?: { before: Record<string, number>; after: Record<string, number> };
}

export interface ClusterBenchResults {
  startedAt: string;
  finishedAt?: string;
  label?: string;
  machine: Machine;
  sizes: Sizes;
  topology: ClusterTopology;
  tuning: Record<string, string | number | null>;
  passes: ClusterPass[];
  reconciliation?: BenchResults['reconciliation'];
  errors: Record<string, string>;
}

export type ClusterBenchmark = 'ceiling' | 'subscribe' | 'holds' | 'storm';

/** What one benchmark of one pass came to: its throughput, and the operations and time its CPU reading covers. */
export interface PassFigures {
  perSecond: number;
  operations: number;
  elapsedMs: number;
  cpuMsPerOperation: CpuReading;
  detail: string;
}

const TITLES: Record<ClusterBenchmark, { title: (s: Sizes) => string; unit: string; operation: string }> = {
  ceiling: {
    title: (s) => `1. Ceiling: no-op workflow, start → completion (${s.ceiling}, ${s.concurrency} in flight)`,
    unit: 'workflows/s',
    operation: 'one no-op workflow',
  },
  subscribe: {
    title: (s) => `2. Subscribe through nginx, first charge on the sandbox gateway (${s.subscribe}, ${s.concurrency} in flight)`,
    unit: 'subscriptions/s',
    operation: 'one subscribe',
  },
  holds: {
    title: (s) => `4. Hold contention: ${s.holds} concurrent requests for 1–4 adjacent of ${s.holdUnits} units`,
    unit: 'answers/s',
    operation: 'one hold request',
  },
  storm: { title: (s) => `3. Renewal storm: ${s.storm} subscriptions due at one instant`, unit: 'renewals/s', operation: 'one renewal' },
};
const ORDER: ClusterBenchmark[] = ['ceiling', 'subscribe', 'storm', 'holds'];

/** A benchmark's figures in a pass, or undefined when it did not run (or failed). */
export function passFigures(pass: ClusterPass, benchmark: ClusterBenchmark): PassFigures | undefined {
  switch (benchmark) {
    case 'ceiling': {
      const c = pass.ceiling;
      if (!c) return undefined;
      return {
        perSecond: c.perSecond,
        operations: c.count - c.failures,
        elapsedMs: c.elapsedMs,
        cpuMsPerOperation: c.cpuMsPerOperation,
        detail: latency(c.latencyMs),
      };
    }
    case 'subscribe': {
      const s = pass.subscribe;
      if (!s) return undefined;
      const operations = Object.values(s.statuses).reduce((sum, n) => sum + n, 0);
      return {
        perSecond: s.perSecond,
        operations,
        elapsedMs: s.elapsedMs,
        cpuMsPerOperation: s.cpuMsPerOperation,
        detail: `${latency(s.latencyMs)}; ${statuses(s.statuses)}`,
      };
    }
    case 'holds': {
      const h = pass.holds;
      if (!h) return undefined;
      return {
        perSecond: h.answeredPerSecond,
        operations: h.requests,
        elapsedMs: h.elapsedMs,
        cpuMsPerOperation: h.cpuMsPerOperation,
        detail: `${latency(h.latencyMs)}; ${h.granted} granted`,
      };
    }
    case 'storm': {
      const s = pass.storm;
      if (!s) return undefined;
      const operations = Object.values(s.statuses).reduce((sum, n) => sum + n, 0);
      // The storm's CPU reading runs from the due instant until every renewal has settled.
      return {
        perSecond: s.renewalsPerSecond,
        operations,
        elapsedMs: s.settledMs,
        cpuMsPerOperation: s.cpuMsPerOperation,
        detail: `${s.renewed} charged in ${sec(s.drainMs)}, at most ${s.peakChargesPerSecond} in one second; lateness ${latency(s.latenessMs, 's')}`,
      };
    }
  }
}

/** Cores each kind of process kept busy: its CPU milliseconds over the reading ÷ the wall-clock milliseconds. */
export function coresBusy(figures: Pick<PassFigures, 'cpuMsPerOperation' | 'operations' | 'elapsedMs'>): CpuReading {
  const { cpuMsPerOperation, operations, elapsedMs } = figures;
  return Object.fromEntries(
    Object.entries(cpuMsPerOperation).map(([kind, msPerOperation]) => [kind, (msPerOperation * operations) / Math.max(1, elapsedMs)]),
  );
}

export interface Scaling {
  benchmark: ClusterBenchmark;
  one?: PassFigures;
  two?: PassFigures;
  /** Throughput with two workers ÷ with one. */
  ratio?: number;
}

/** Each benchmark that ran in both passes: its figures with one worker and with two, and two ÷ one. */
export function scalingOf(r: ClusterBenchResults): Scaling[] {
  const one = r.passes.find((p) => p.workers === 1);
  const two = r.passes.find((p) => p.workers === 2);
  return ORDER.map((benchmark) => {
    const a = one && passFigures(one, benchmark);
    const b = two && passFigures(two, benchmark);
    return { benchmark, one: a, two: b, ratio: a && b && a.perSecond > 0 ? b.perSecond / a.perSecond : undefined };
  }).filter((s) => s.one || s.two);
}

export function toClusterMarkdown(r: ClusterBenchResults): string {
  const scaling = scalingOf(r);
  const cell = (f: PassFigures | undefined, unit: string) => (f ? `**${num(f.perSecond)} ${unit}**; ${f.detail}` : 'n/a');
  const lines = [
    `Machine: ${machineLine(r.machine)}; at the end ${(r.machine.loadAverageAtEnd ?? []).map((x) => x.toFixed(2)).join(' ') || 'n/a'}.`,
    `Run: ${r.startedAt}${r.label ? ` (${r.label})` : ''}; ${r.topology.temporal}, ${r.topology.historyShards} history shards; ${r.topology.apis} API instances behind ${r.topology.loadBalancer}; one stack, the second worker stopped for the first pass; tuning: ${Object.entries(
      r.tuning,
    )
      .map(([k, v]) => `${k}=${v ?? 'default'}`)
      .join(', ')}.`,
    `Load average per pass (start → end): ${r.passes.map((p) => `${p.workers} worker${p.workers > 1 ? 's' : ''} ${loadText(p.loadAverageAtStart)} → ${loadText(p.loadAverageAtEnd)}`).join('; ')}.`,
    '',
    '| Benchmark | 1 worker | 2 workers | two ÷ one |',
    '| --- | --- | --- | --- |',
    ...scaling.map(({ benchmark, one, two, ratio }) => {
      const { title, unit } = TITLES[benchmark];
      return `| ${title(r.sizes)} | ${cell(one, unit)} | ${cell(two, unit)} | ${ratio === undefined ? 'n/a' : `**${ratio.toFixed(2)}×**`} |`;
    }),
  ];
  const byPass = (pick: (f: PassFigures) => CpuReading) =>
    scaling.flatMap(({ benchmark, one, two }) =>
      [one, two].flatMap((f, i) =>
        f ? [[`${TITLES[benchmark].operation}, ${i + 1} worker${i > 0 ? 's' : ''}`, pick(f)] as [string, CpuReading]] : [],
      ),
    );
  const cpuRows = [...byPass((f) => f.cpuMsPerOperation), ...r.passes.flatMap(bookingCpuRows)];
  if (cpuRows.length > 0) {
    lines.push(
      '',
      'CPU per operation by kind of process (ms; every worker summed as `worker`, every API as `api`; from /proc, bench/cpu.ts):',
      '',
      cpuTable(cpuRows),
    );
    lines.push(
      '',
      `Where the CPU went: cores each kind kept busy during each benchmark (its CPU time ÷ the benchmark's wall-clock time; the machine has ${r.machine.cpus}):`,
      '',
      cpuTable(byPass(coresBusy)),
      '',
      ...saturation(scaling, r.machine.cpus),
    );
  }
  const storage = r.passes.flatMap((p) => (p.storm && p.stormStorage ? [storageLine(p, p.storm.count, p.stormStorage)] : []));
  if (storage.length > 0)
    lines.push(
      '',
      'PostgreSQL growth over the storm, per subscription seeded, armed, renewed once and asleep in its next run (pg_database_size; pages, so approximate):',
      '',
      ...storage,
    );
  if (r.reconciliation) lines.push('', reconciliationLine(r.reconciliation));
  const errors = Object.entries(r.errors);
  if (errors.length > 0) lines.push('', 'Benchmarks that failed this run:', '', ...errors.map(([name, message]) => `- ${name}: ${message}`));
  return `${lines.join('\n')}\n`;
}

/** The hold benchmark's other readings (bench/holds.ts), for the booking side of the capacity model. */
export function bookingCpuRows(pass: ClusterPass): Array<[string, CpuReading]> {
  const h = pass.holds;
  if (!h) return [];
  const workers = `${pass.workers} worker${pass.workers > 1 ? 's' : ''}`;
  return [
    [`one booking (saga with a charge), ${workers}`, h.bookings.cpuMsPerOperation],
    [`one hold granted, one at a time, ${workers}`, h.alone.holdCpuMsPerOperation],
    [`one hold refused (its units booked), ${workers}`, h.refusedAgain.cpuMsPerOperation],
  ];
}

/** One line per benchmark: cores busy with two workers out of the machine's, and the kinds that used most. */
function saturation(scaling: Scaling[], cpus: number): string[] {
  return scaling.flatMap(({ benchmark, two }) => {
    if (!two) return [];
    const busy = coresBusy(two);
    const top = Object.entries(busy)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([kind, cores]) => `${kind} ${num(cores)}`)
      .join(', ');
    return [`- ${TITLES[benchmark].operation}: with two workers **${num(cpuTotal(busy))} of ${cpus} cores busy** (${top}).`];
  });
}

/** Bytes per storm subscription in each database, for one pass. */
export function storageLine(pass: ClusterPass, count: number, storage: NonNullable<ClusterPass['stormStorage']>): string {
  const perSubscription = Object.keys(storage.after)
    .sort()
    .map((name) => `${name} ${num((storage.after[name] - (storage.before[name] ?? 0)) / Math.max(1, count) / 1024)} KiB`);
  return `- ${pass.workers} worker${pass.workers > 1 ? 's' : ''}: ${perSubscription.join(', ')}`;
}

function loadText(load: number[] | undefined): string {
  return load ? load.map((x) => x.toFixed(2)).join(' ') : 'n/a';
}
