/**
 * Preloaded (`node --require`) into the bench worker, where Node runs it again in every worker
 * thread: the SDK runs workflows in threads of their own, each a V8 isolate whose heap
 * `process.memoryUsage()` on the main thread does not see. Each workflow thread answers the main
 * thread's memory reading (bench/worker-memory.ts) on a BroadcastChannel: its heap after a full
 * collection, and a heap snapshot when asked. Plain JavaScript because a thread's preload runs
 * before any TypeScript loader. The main thread's part is in bench/worker-memory.ts.
 */
const { BroadcastChannel, isMainThread, threadId } = require('node:worker_threads');
const path = require('node:path');
const v8 = require('node:v8');
const vm = require('node:vm');

const CHANNEL = 'bench-worker-memory';

// Only the SDK's workflow threads answer, not the TypeScript loader's hooks thread. A thread's argv
// (its script) is set after its preloads run, so it is checked when a reading is asked for.
const isWorkflowThread = () => process.argv.some((arg) => arg.includes('workflow-worker-thread'));

if (!isMainThread) {
  v8.setFlagsFromString('--expose-gc');
  const collectGarbage = vm.runInNewContext('gc');
  const channel = new BroadcastChannel(CHANNEL);
  // The channel must not keep the thread alive when the SDK ends it.
  channel.unref();
  channel.onmessage = ({ data }) => {
    if (!data || data.type !== 'read' || !isWorkflowThread()) return;
    channel.postMessage({ type: 'ack', id: data.id, threadId });
    collectGarbage();
    const snapshotFile = data.snapshotDir ? v8.writeHeapSnapshot(path.join(data.snapshotDir, `${data.id}-thread-${threadId}.heapsnapshot`)) : null;
    channel.postMessage({ type: 'heap', id: data.id, threadId, heap: v8.getHeapStatistics(), snapshotFile });
  };
}
