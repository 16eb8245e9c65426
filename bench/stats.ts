/** Summaries of measured samples. Nothing here judges a figure: benchmarks report, never assert. */

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles of unsorted samples (NaN without samples). */
export function summarise(samples: readonly number[]): LatencySummary {
  const count = samples.length;
  if (count === 0) return { count, p50: Number.NaN, p95: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN };
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(Math.max(1, Math.ceil((p / 100) * count)), count) - 1];
  return { count, p50: at(50), p95: at(95), p99: at(99), max: sorted[count - 1], mean: sorted.reduce((sum, x) => sum + x, 0) / count };
}

/** Per second, from a count and the milliseconds it took. */
export function perSecond(count: number, elapsedMs: number): number {
  return elapsedMs > 0 ? (count * 1000) / elapsedMs : Number.NaN;
}

/** How many of each value, e.g. HTTP statuses: `{ "201": 40, "409": 960 }`. */
export function tally<T extends string | number>(values: readonly T[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[String(value)] = (counts[String(value)] ?? 0) + 1;
  return counts;
}

/**
 * Runs `task(i)` for i in 0..count-1 with at most `concurrency` in flight; answers each task's
 * result (or error) in order. Bounded on purpose: an unbounded burst measures the client's
 * socket queue more than the system under test.
 */
export async function runBounded<T>(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<T>,
): Promise<Array<{ ok: true; value: T } | { ok: false; error: unknown }>> {
  const results = new Array<{ ok: true; value: T } | { ok: false; error: unknown }>(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      try {
        results[i] = { ok: true, value: await task(i) };
      } catch (error) {
        results[i] = { ok: false, error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return results;
}

/** Milliseconds since `start` (a `performance.now()` reading). */
export function since(start: number): number {
  return performance.now() - start;
}

/** mulberry32: a small deterministic generator, so every run asks for the same unit sets. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
