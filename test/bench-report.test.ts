import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CeilingResult, StormResult } from '../bench/benchmarks';
import type { PeerResult } from '../bench/cron-peer';
import { noopAloneP50, ratiosOf, toMarkdown, type BenchResults } from '../bench/report';
import { summarise } from '../bench/stats';

// Figures made up so that every ratio is a round number; nothing here is measured.
const latency = (p50: number) => ({ ...summarise([p50]), p50 });
const cpu = (total: number) => ({ temporal: total / 2, worker: total / 2, postgresql: 0, bench: 0 });

function ceiling(aloneP50: number): CeilingResult {
  return {
    count: 10,
    concurrency: 2,
    elapsedMs: 1000,
    perSecond: 10,
    latencyMs: latency(50),
    failures: 0,
    cpuMsPerOperation: cpu(20),
    aloneLatencyMs: latency(aloneP50),
  };
}

const storm = { renewalsPerSecond: 20, cpuMsPerOperation: cpu(100), latenessMs: latency(1000), statuses: {} } as unknown as StormResult;
const peer: PeerResult = {
  count: 10,
  workers: 2,
  gatewayCallsPerSecond: 100,
  renewed: 10,
  drainMs: 100,
  renewalsPerSecond: 80,
  peakChargesPerSecond: 10,
  latenessMs: latency(50),
  statuses: { succeeded: 10 },
  cpuMsPerOperation: { temporal: 0, worker: 0, postgresql: 2, bench: 3 },
};

function results(extra: Partial<BenchResults>): BenchResults {
  return {
    startedAt: '2026-11-30T00:00:00.000Z',
    machine: { cpus: 2, cpuModel: 'test', memoryGiB: 1, node: 'v20', platform: 'test', loadAverageAtStart: [0, 0, 0] },
    sizes: {} as BenchResults['sizes'],
    temporalPersistence: 'memory',
    temporalDynamicConfig: {},
    tuning: {},
    errors: {},
    ...extra,
  };
}

describe('bench report: the latency ceiling and the cron peer', () => {
  test('the latency ceiling is the mean of the one-at-a-time p50s before and after', () => {
    assert.equal(noopAloneP50(results({ ceilingBefore: ceiling(20), ceilingAfter: ceiling(30) })), 25);
    assert.ok(Number.isNaN(noopAloneP50(results({}))));
  });

  test('one-at-a-time rows are divided by the no-op p50, and the storm by the peer', () => {
    const r = results({ ceilingBefore: ceiling(25), storm, peer });
    r.subscribe = { aloneLatencyMs: latency(75) } as BenchResults['subscribe'];
    const ratios = ratiosOf(r);
    assert.equal(ratios.subscribeAloneP50VsNoop, 3);
    assert.equal(ratios.holdAloneP50VsNoop, undefined);
    assert.equal(ratios.stormVsPeerRenewalsPerSecond, 0.25);
    assert.equal(ratios.stormVsPeerCpuPerRenewal, 20);
  });

  test('the table shows the latency ceiling, the peer row and the storm against the peer', () => {
    const markdown = toMarkdown(results({ ceilingBefore: ceiling(25), storm: { ...storm, count: 10, renewed: 10, drainMs: 500 }, peer }));
    assert.match(markdown, /1b\. Latency ceiling.*p50 \*\*25\.0 ms\*\*/);
    assert.match(markdown, /3b\. Cron peer.*\*\*80\.0 renewals\/s\*\*/);
    assert.match(markdown, /\*\*0\.25× the cron peer's\*\* renewals\/s/);
    assert.match(markdown, /\*\*100 vs 5\.00 ms of CPU per renewal\*\* over every process \(20\.0×\)/);
    assert.match(markdown, /\| Cron peer: one renewal/);
  });

  test('the storm three times: CPU per renewal of each run, their spread and their multiple of the no-op', () => {
    const run = (total: number) => ({ ...storm, count: 10, renewed: 10, drainMs: 500, cpuMsPerOperation: cpu(total) });
    const markdown = toMarkdown(results({ ceilingBefore: ceiling(25), storm: run(100), stormAgain: [run(110), run(120)] }));
    assert.match(
      markdown,
      /3c\. The storm 3 times.*CPU per renewal 100 \/ 110 \/ 120 ms, \*\*max ÷ min 1\.20\*\*.*5\.0× \/ 5\.5× \/ 6\.0× the no-op's CPU/,
    );
  });

  test('read rows are divided by the HTTP ceiling, which is not divided by itself', () => {
    const read = (rps: number, p95: number) => ({
      connections: 50,
      durationSeconds: 5,
      requestsPerSecond: rps,
      requests: rps * 5,
      latencyMs: { ...summarise([p95]), p95 },
      non2xx: 0,
      errors: 0,
      cpuMsPerOperation: cpu(1),
    });
    const markdown = toMarkdown(results({ couponValidation: read(2000, 30), httpCeiling: read(4000, 10) }));
    assert.match(markdown, /5b\. Coupon validation.*\*\*0\.50× the HTTP ceiling's requests\/s, p95 3\.00× its p95\*\*/);
    assert.match(markdown, /5c\. HTTP ceiling[^\n]*errors 0 \|/);
  });
});
