/**
 * The cluster's supervisor (scripts/supervisor.ts) on real child processes: one that dies, by
 * its own exit or a SIGKILL, is started again after a delay that doubles with each quick death
 * and says so; once stopped, nothing restarts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProcessGroup } from '../scripts/services';
import { nextRestartDelay, Supervisor, type BackoffPolicy } from '../scripts/supervisor';

// Small delays so the test is quick; the policy under test is the same.
const POLICY: BackoffPolicy = { initialMs: 20, maxMs: 80, resetAfterMs: 60_000 };

async function until<T>(what: string, read: () => T | undefined): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const value = read();
    if (value !== undefined) return value;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('nextRestartDelay', () => {
  test('starts at the initial delay, doubles after each quick death up to the cap, and resets after a long run', () => {
    const delays: number[] = [];
    let delay: number | undefined;
    for (let i = 0; i < 5; i++) delays.push((delay = nextRestartDelay(delay, 10, POLICY)));
    assert.deepEqual(delays, [20, 40, 80, 80, 80]);
    assert.equal(nextRestartDelay(80, POLICY.resetAfterMs, POLICY), 20, 'a minute up resets the backoff');
  });
});

describe('Supervisor', () => {
  test('a child that keeps exiting is restarted with a doubling delay, each restart logged', async () => {
    const messages: string[] = [];
    const supervisor = new Supervisor(new ProcessGroup(), { backoff: POLICY, log: (m) => messages.push(m) });
    const crashing = supervisor.supervise('api-2', (group) => group.spawn('api-2', process.execPath, ['-e', 'process.exit(3)']));
    try {
      await until('four restarts', () => (crashing.restarts() >= 4 ? true : undefined));
    } finally {
      await supervisor.stop();
    }
    assert.deepEqual(messages.slice(0, 4), [
      'api-2 exited (exit code 3); restarting in 20 ms',
      'api-2 exited (exit code 3); restarting in 40 ms',
      'api-2 exited (exit code 3); restarting in 80 ms',
      'api-2 exited (exit code 3); restarting in 80 ms',
    ]);
  });

  test('a SIGKILLed child is replaced by a new process; after stop() nothing restarts', async () => {
    const messages: string[] = [];
    const supervisor = new Supervisor(new ProcessGroup(), { backoff: POLICY, log: (m) => messages.push(m) });
    const worker = supervisor.supervise('worker-1', (group) => group.spawn('worker-1', process.execPath, ['-e', 'setInterval(() => {}, 1000)']));
    const first = worker.current();
    process.kill(first.child.pid!, 'SIGKILL');
    const second = await until('a new worker process', () => (worker.current() !== first ? worker.current() : undefined));
    assert.notEqual(second.child.pid, first.child.pid);
    assert.equal(second.hasExited(), false, 'the new process runs');
    assert.deepEqual(messages, ['worker-1 exited (SIGKILL); restarting in 20 ms']);

    await supervisor.stop();
    assert.equal(second.hasExited(), true, 'stop() ended it');
    await sleep(POLICY.maxMs * 3);
    assert.equal(worker.current(), second, 'a process stopped on purpose is not restarted');
    assert.equal(worker.restarts(), 1);
  });
});
