import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CeilingResult, HoldsResult, StormResult } from '../bench/benchmarks';
import { coresBusy, passFigures, scalingOf, toClusterMarkdown, type ClusterBenchResults, type ClusterPass } from '../bench/cluster-report';
import { summarise } from '../bench/stats';

// Figures made up so that every ratio is a round number; nothing here is measured.
const latency = (p50: number) => ({ ...summarise([p50]), p50 });

function ceiling(perSecond: number, cpu: Record<string, number>): CeilingResult {
  return {
    count: 100,
    concurrency: 10,
    elapsedMs: 1000,
    perSecond,
    latencyMs: latency(50),
    failures: 0,
    cpuMsPerOperation: cpu,
    aloneLatencyMs: latency(10),
  };
}

function storm(renewalsPerSecond: number, settledMs: number): StormResult {
  return {
    count: 200,
    renewed: 200,
    drainMs: 4000,
    renewalsPerSecond,
    peakChargesPerSecond: 60,
    latenessMs: latency(2000),
    statuses: { succeeded: 200 },
    cpuMsPerOperation: { temporal: 10, worker: 5, api: 0, postgresql: 5, bench: 0 },
    armedBeforeDue: true,
    armingMs: 3000,
    settledMs,
  };
}

function results(passes: ClusterPass[]): ClusterBenchResults {
  return {
    startedAt: '2026-11-30T00:00:00.000Z',
    machine: { cpus: 2, cpuModel: 'test', memoryGiB: 1, node: 'v20', platform: 'test', loadAverageAtStart: [1, 1, 1], loadAverageAtEnd: [2, 2, 2] },
    sizes: { ceiling: 100, concurrency: 10, storm: 200 } as ClusterBenchResults['sizes'],
    topology: { temporal: 'the Temporal server 1.30.4 on PostgreSQL', historyShards: 16, apis: 2, loadBalancer: 'nginx' },
    tuning: {},
    passes,
    errors: {},
  };
}

const one: ClusterPass = {
  workers: 1,
  loadAverageAtStart: [1, 1, 1],
  loadAverageAtEnd: [1.5, 1, 1],
  ceiling: ceiling(100, { temporal: 6, worker: 4, api: 0, postgresql: 2, bench: 0 }),
  storm: storm(50, 10_000),
};
const two: ClusterPass = {
  workers: 2,
  loadAverageAtStart: [1.5, 1, 1],
  loadAverageAtEnd: [1.9, 1, 1],
  ceiling: ceiling(125, { temporal: 6, worker: 5, api: 0, postgresql: 2, bench: 0 }),
  storm: storm(40, 8000),
  // 200 storm subscriptions: 2 KiB each in the app's database, 10 KiB in Temporal's.
  stormStorage: {
    before: { billing: 1_000_000, temporal: 5_000_000 },
    after: { billing: 1_000_000 + 200 * 2048, temporal: 5_000_000 + 200 * 10_240 },
  },
};

describe('cluster bench report: one worker against two', () => {
  test('two ÷ one is the throughput with two workers over the throughput with one, per benchmark', () => {
    const scaling = scalingOf(results([one, two]));
    assert.deepEqual(
      scaling.map((s) => [s.benchmark, s.ratio]),
      [
        ['ceiling', 1.25],
        ['storm', 0.8],
      ],
    );
  });

  test('a benchmark missing from a pass has no ratio, and one in neither pass no row', () => {
    const scaling = scalingOf(results([one, { ...two, storm: undefined }]));
    assert.equal(scaling.find((s) => s.benchmark === 'storm')?.ratio, undefined);
    assert.equal(
      scaling.find((s) => s.benchmark === 'subscribe'),
      undefined,
    );
  });

  test("cores busy are a kind's CPU over the benchmark's operations divided by its wall-clock time", () => {
    // The ceiling: 100 workflows in 1 s at 6 ms of temporal CPU each is 0.6 of a core.
    assert.deepEqual(coresBusy(passFigures(one, 'ceiling')!), { temporal: 0.6, worker: 0.4, api: 0, postgresql: 0.2, bench: 0 });
    // The storm's reading runs from the due instant until settled: 200 renewals × 10 ms over 8 s.
    assert.equal(coresBusy(passFigures(two, 'storm')!).temporal, 0.25);
  });

  test('the hold benchmark also gives CPU per booking, per hold granted alone and per hold refused', () => {
    const reading = (total: number) => ({ temporal: total / 2, worker: total / 2, api: 0, postgresql: 0, bench: 0 });
    const holds = {
      requests: 100,
      answeredPerSecond: 50,
      elapsedMs: 2000,
      granted: 10,
      latencyMs: latency(100),
      cpuMsPerOperation: reading(4),
      bookings: { cpuMsPerOperation: reading(100) },
      alone: { holdCpuMsPerOperation: reading(40) },
      refusedAgain: { cpuMsPerOperation: reading(2) },
    } as unknown as HoldsResult;
    const markdown = toClusterMarkdown(results([{ ...two, holds }]));
    assert.match(markdown, /\| one booking \(saga with a charge\), 2 workers \| 50\.0 \| 50\.0 \| 0\.00 \| 0\.00 \| 0\.00 \| 100 \|/);
    assert.match(markdown, /\| one hold granted, one at a time, 2 workers \| 20\.0 \| 20\.0 \|/);
    assert.match(markdown, /\| one hold refused \(its units booked\), 2 workers \| 1\.00 \| 1\.00 \|/);
  });

  test('the table shows both passes, the ratio, CPU per operation summed by kind, and the cores busy', () => {
    const markdown = toClusterMarkdown(results([one, two]));
    assert.match(markdown, /16 history shards; 2 API instances behind nginx/);
    assert.match(markdown, /\| 1\. Ceiling[^|]*\| \*\*100 workflows\/s\*\*[^|]*\| \*\*125 workflows\/s\*\*[^|]*\| \*\*1\.25×\*\* \|/);
    assert.match(markdown, /\| 3\. Renewal storm[^|]*\| \*\*50\.0 renewals\/s\*\*[^|]*\| \*\*40\.0 renewals\/s\*\*[^|]*\| \*\*0\.80×\*\* \|/);
    assert.match(markdown, /\| one no-op workflow, 2 workers \| 6\.00 \| 5\.00 \| 0\.00 \| 2\.00 \| 0\.00 \| 13\.0 \|/);
    assert.match(markdown, /\| one no-op workflow, 1 worker \| 0\.60 \| 0\.40 \| 0\.00 \| 0\.20 \| 0\.00 \| 1\.20 \|/);
    assert.match(markdown, /one no-op workflow: with two workers \*\*1\.30 of 2 cores busy\*\* \(temporal 0\.60, worker 0\.50, postgresql 0\.20\)/);
    assert.match(markdown, /1 worker 1\.00 1\.00 1\.00 → 1\.50 1\.00 1\.00; 2 workers 1\.50 1\.00 1\.00 → 1\.90 1\.00 1\.00/);
    assert.match(markdown, /- 2 workers: billing 2\.00 KiB, temporal 10\.0 KiB/);
    assert.doesNotMatch(markdown, /- 1 worker: /);
  });
});
