/** Workflows that exercise the platform itself (test/platform.test.ts), not the product. */
import { proxyActivities, sleep } from '@temporalio/workflow';

export interface PlatformProbeActivities {
  /** Names the task queue the activity ran on. */
  describeWorker(): Promise<string>;
}

const { describeWorker } = proxyActivities<PlatformProbeActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3 },
});

/** Sleeps on a durable timer; returns how much workflow time passed, however little real time did. */
export async function sleepFor(durationMs: number): Promise<number> {
  const before = Date.now();
  await sleep(durationMs);
  return Date.now() - before;
}

/** One activity round trip through a worker. */
export async function greet(name: string): Promise<string> {
  return `hello ${name} from ${await describeWorker()}`;
}
