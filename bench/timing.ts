/**
 * How the benchmarks time a request: one HTTP answer with its send and receive instants, the
 * latency of requests sent one at a time, and the stage breakdown of a sample of answers from
 * their workflows' histories (bench/history.ts).
 */
import type { requestJson } from '../test/support/api';
import type { BenchContext } from './benchmarks';
import { stagesOf, type Stages } from './history';
import { since, summarise, type LatencySummary } from './stats';

export interface TimedAnswer {
  status: number;
  body: any;
  sentAtMs: number;
  receivedAtMs: number;
  latencyMs: number;
}

export async function timedRequest(url: string, init: NonNullable<Parameters<typeof requestJson>[1]> = {}): Promise<TimedAnswer> {
  const sentAtMs = Date.now();
  const t = performance.now();
  try {
    const response = await fetch(url, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: { ...(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...init.headers },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const text = await response.text();
    // A load balancer's own error page is HTML: its status counts, not as a failed connection.
    const json = (response.headers.get('content-type') ?? '').includes('json');
    const body = text && json ? JSON.parse(text) : { text };
    return { status: response.status, body, sentAtMs, receivedAtMs: Date.now(), latencyMs: since(t) };
  } catch (error) {
    // A connection-level failure counts as status 0, reported beside the HTTP statuses.
    return { status: 0, body: { error: String(error) }, sentAtMs, receivedAtMs: Date.now(), latencyMs: since(t) };
  }
}

// Requests sent one after another before a burst: the latency with nothing else in the way.
export const ALONE = 20;

/** Latency of `count` requests sent one at a time. */
export async function latencyAlone(count: number, send: (i: number) => Promise<{ latencyMs: number }>): Promise<LatencySummary> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) latencies.push((await send(i)).latencyMs);
  return summarise(latencies);
}

/** Stage breakdowns of up to `stageSamples` answers spread evenly over the run. */
export async function sampleStages(ctx: BenchContext, answers: TimedAnswer[], workflowIdOf: (a: TimedAnswer) => string): Promise<Stages[]> {
  const step = Math.max(1, Math.floor(answers.length / ctx.sizes.stageSamples));
  const sample = answers.filter((_, i) => i % step === 0).slice(0, ctx.sizes.stageSamples);
  return Promise.all(
    sample.map(async (a) => {
      const history = await ctx.deps.temporal.workflow.getHandle(workflowIdOf(a)).fetchHistory();
      return stagesOf(history.events ?? [], a.sentAtMs, a.receivedAtMs);
    }),
  );
}
