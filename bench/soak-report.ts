/** The soak's lines in latest.md (bench/soak.ts): its row of the main table, then its own tables. */
import { countsText } from './format';
import type { SoakResult } from './soak';
import type { LatencySummary } from './stats';

/** The row of the main table: the targets as same-run ratios. */
export function soakRow(s: SoakResult): string[] {
  const sub = s.operations.subscribe;
  const rss = Object.entries(s.targets.rssEndOverStart)
    .map(([name, x]) => `${name} ${x.toFixed(2)}×`)
    .join(', ');
  return [
    `7. Soak: ${s.renewing} subscriptions renewing every 30 s, 2 clients each subscribing, reading availability, holding and releasing, opening SSE streams, for ${s.seconds} s`,
    `**${s.targets.lateOrRefused} subscribe/hold/release answers 202 or 503** (target 0); subscribe p95 ${ms(sub.latencyMs.p95)} = **${s.targets.subscribeP95OverIdleP50.toFixed(1)}× the idle one-at-a-time p50** of ${ms(s.idleSubscribeLatencyMs.p50)} (target ≤ 5×); ${s.renewals.charged} renewals charged (${s.renewals.expected} due); RSS end/start: ${rss}`,
    '',
  ];
}

/** Per operation, the backlogs at their largest, and memory and CPU per process. */
export function soakDetails(s: SoakResult): string[] {
  const ops = Object.entries(s.operations).map(
    ([name, o]) =>
      `| ${name} | ${o.latencyMs.count} | ${latency(o.latencyMs)} | ${o.statuses['202'] ?? 0} | ${o.statuses['503'] ?? 0} | ${countsText(o.statuses)} |`,
  );
  const backlog = Object.entries(s.backlogMax)
    .filter(([, b]) => b.count > 0 || b.ageSeconds > 0)
    .map(([queue, b]) => `${queue} ${b.count} (${b.ageSeconds.toFixed(1)} s old)`);
  const waits = Object.entries(s.scheduleToStartMs ?? {}).map(([queue, w]) => `${queue} ${w.meanMs.toFixed(0)} ms (${w.tasks} tasks)`);
  const processes = Object.keys(s.rssStartMiB);
  const seconds = s.seconds;
  return [
    `Soak (${s.seconds} s; bench/soak.ts), idle one-at-a-time subscribe before the load: ${latency(s.idleSubscribeLatencyMs)}.`,
    '',
    '| Operation | Answers | Latency | 202 | 503 | HTTP statuses |',
    '| --- | --- | --- | --- | --- | --- |',
    ...ops,
    '',
    `Largest task-queue backlog sampled every 2 s (DescribeTaskQueue: approximate backlog count, its oldest task's age): ${backlog.length > 0 ? backlog.join('; ') : 'none'}.`,
    '',
    `Mean wait from scheduled to started, by queue (the worker's metrics, sticky queues included): ${waits.length > 0 ? waits.join('; ') : 'n/a'}.`,
    '',
    `| Process | ${processes.join(' | ')} |`,
    `| --- | ${processes.map(() => '---').join(' | ')} |`,
    `| RSS start → end (MiB) | ${processes.map((p) => `${s.rssStartMiB[p].toFixed(0)} → ${s.rssEndMiB[p].toFixed(0)}`).join(' | ')} |`,
    `| CPU over the soak (s; cores) | ${processes.map((p) => `${(s.cpuMs[p] / 1000).toFixed(1)}; ${(s.cpuMs[p] / 1000 / seconds).toFixed(2)}`).join(' | ')} |`,
  ];
}

function latency(l: LatencySummary): string {
  return `p50 ${ms(l.p50)}, p95 ${ms(l.p95)}, p99 ${ms(l.p99)}, max ${ms(l.max)}`;
}

function ms(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(0)} ms` : 'n/a';
}
