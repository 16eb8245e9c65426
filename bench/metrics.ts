/**
 * The Temporal server's own Prometheus metrics and the worker's SDK metrics, read before and after
 * each benchmark: what the server and the worker did during it (tasks matched at once or through
 * the backlog, sticky-cache hits and misses, task latencies), where the CPU table says only how
 * much they used.
 */

/** One scrape: every series (`name{labels}`) and its value. */
export type MetricSample = Map<string, number>;

export interface MetricsUrls {
  temporal: string;
  worker: string;
}

export interface MetricsReading {
  temporal: MetricSample;
  worker: MetricSample;
}

export async function readMetrics(urls: MetricsUrls): Promise<MetricsReading> {
  const [temporal, worker] = await Promise.all([scrape(urls.temporal), scrape(urls.worker)]);
  return { temporal, worker };
}

/** An unreachable endpoint reads as empty: metrics explain a run, they never fail it. */
async function scrape(url: string): Promise<MetricSample> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    return response.ok ? parsePrometheusText(await response.text()) : new Map();
  } catch {
    return new Map();
  }
}

/** One metric of the worker's own, now (a gauge or a counter): no load on the Temporal server. */
export async function readWorkerMetric(urls: MetricsUrls, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sumOf(await scrape(urls.worker), name, labels);
}

/** One metric summed over several endpoints, e.g. every worker of a cluster (one that is down reads as 0). */
export async function sumMetricOver(urls: readonly string[], name: string, labels: Record<string, string> = {}): Promise<number> {
  const samples = await Promise.all(urls.map(scrape));
  return samples.reduce((total, sample) => total + sumOf(sample, name, labels), 0);
}

export function parsePrometheusText(text: string): MetricSample {
  const sample: MetricSample = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const series = line.slice(0, space).trim();
    const value = Number(line.slice(space + 1));
    if (Number.isFinite(value)) sample.set(series, value);
  }
  return sample;
}

/** after − before for every series that moved. */
export function metricDelta(before: MetricSample, after: MetricSample): MetricSample {
  const delta: MetricSample = new Map();
  for (const [series, value] of after) {
    const moved = value - (before.get(series) ?? 0);
    if (moved !== 0) delta.set(series, moved);
  }
  return delta;
}

/**
 * The sum of every series of `name` whose labels contain each of `labels` (e.g.
 * `{operation: 'PollWorkflowTaskQueue'}`).
 */
export function sumOf(sample: MetricSample, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [series, value] of sample) {
    const brace = series.indexOf('{');
    const seriesName = brace === -1 ? series : series.slice(0, brace);
    if (seriesName !== name) continue;
    if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) total += value;
  }
  return total;
}

/** The largest movements by metric name (labels summed), for reading a run's results by eye. */
export function largestMovements(delta: MetricSample, limit = 60): Array<{ name: string; delta: number }> {
  const byName = new Map<string, number>();
  for (const [series, value] of delta) {
    const brace = series.indexOf('{');
    const name = brace === -1 ? series : series.slice(0, brace);
    if (name.endsWith('_bucket')) continue;
    byName.set(name, (byName.get(name) ?? 0) + value);
  }
  return [...byName.entries()]
    .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
    .slice(0, limit)
    .map(([name, value]) => ({ name, delta: value }));
}
