/**
 * The bench worker's memory, by isolate: RSS of the process, and the V8 heap of its main thread and
 * of each workflow thread (the SDK runs workflows in worker threads, one per Worker with
 * `reuseV8Context`), each read after a full collection, so a heap figure is what is retained and
 * not garbage waiting for the collector. Optionally a heap snapshot of every isolate.
 *
 * The bench asks by writing a request file and sending SIGWINCH to the worker (ignored by default;
 * the SDK's runtime shuts the worker down on SIGUSR2, and SIGUSR1 starts Node's inspector); the worker's main
 * thread asks its workflow threads over a BroadcastChannel (bench/heap-probe.cjs, preloaded into
 * every thread) and writes the answer file. A signal and a file because the worker is a process of
 * its own (bench/stack.ts) with no other channel to the bench.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

const CHANNEL = 'bench-worker-memory';
const MEMORY_SIGNAL = 'SIGWINCH';
/** A thread that has not acknowledged a reading within this long is taken not to exist. */
const ACK_WINDOW_MS = 1000;

export interface HeapFigures {
  usedBytes: number;
  totalBytes: number;
  externalBytes: number;
}

export interface WorkerMemory {
  rssBytes: number;
  /** `process.memoryUsage()` of the main thread: its heap, and array buffers and external memory of the whole process. */
  main: HeapFigures & { arrayBuffersBytes: number };
  /** One per workflow thread. */
  threads: Array<HeapFigures & { threadId: number; snapshotFile: string | null }>;
  mainSnapshotFile: string | null;
}

interface MemoryRequest {
  id: string;
  snapshotDir?: string;
}

export const memoryRequestFile = (readyFile: string) => `${readyFile}.memory-request`;
export const memoryAnswerFile = (readyFile: string) => `${readyFile}.memory`;

/** In the worker: answer every SIGWINCH by reading the memory the request file asks for. */
export function answerMemoryRequests(readyFile: string): void {
  v8.setFlagsFromString('--expose-gc');
  const collectGarbage = runInNewContext('gc') as () => void;
  process.on(MEMORY_SIGNAL, () => {
    const request = JSON.parse(readFileSync(memoryRequestFile(readyFile), 'utf8')) as MemoryRequest;
    void readOwnMemory(request, collectGarbage).then((memory) => {
      const answer = memoryAnswerFile(readyFile);
      writeFileSync(`${answer}.tmp`, JSON.stringify({ id: request.id, memory }));
      renameSync(`${answer}.tmp`, answer);
    });
  });
}

interface ThreadMessage {
  type: 'ack' | 'heap';
  id: string;
  threadId: number;
  heap?: v8.HeapInfo;
  snapshotFile?: string | null;
}

async function readOwnMemory(request: MemoryRequest, collectGarbage: () => void): Promise<WorkerMemory> {
  const channel = new BroadcastChannel(CHANNEL);
  const acknowledged = new Set<number>();
  const threads: WorkerMemory['threads'] = [];
  channel.onmessage = (event) => {
    const message = (event as MessageEvent).data as ThreadMessage;
    if (message.id !== request.id) return;
    if (message.type === 'ack') acknowledged.add(message.threadId);
    else if (message.heap) threads.push({ threadId: message.threadId, snapshotFile: message.snapshotFile ?? null, ...heapFigures(message.heap) });
  };
  channel.postMessage({ type: 'read', id: request.id, snapshotDir: request.snapshotDir });
  await sleep(ACK_WINDOW_MS);
  // A snapshot of a large heap takes a while; every thread that acknowledged is waited for.
  while (threads.length < acknowledged.size) await sleep(100);
  channel.close();
  collectGarbage();
  const usage = process.memoryUsage();
  const mainSnapshotFile = request.snapshotDir ? v8.writeHeapSnapshot(path.join(request.snapshotDir, `${request.id}-main.heapsnapshot`)) : null;
  return {
    rssBytes: process.memoryUsage.rss(),
    main: { usedBytes: usage.heapUsed, totalBytes: usage.heapTotal, externalBytes: usage.external, arrayBuffersBytes: usage.arrayBuffers },
    threads: threads.sort((a, b) => a.threadId - b.threadId),
    mainSnapshotFile,
  };
}

function heapFigures(heap: v8.HeapInfo): HeapFigures {
  return { usedBytes: heap.used_heap_size, totalBytes: heap.total_heap_size, externalBytes: heap.external_memory };
}

/** In the bench: the worker's memory now (see the module comment). */
export async function readWorkerMemory(worker: { pid(): number }, readyFile: string, options: { snapshotDir?: string } = {}): Promise<WorkerMemory> {
  const id = `m${Date.now()}`;
  const answer = memoryAnswerFile(readyFile);
  rmSync(answer, { force: true });
  writeFileSync(memoryRequestFile(readyFile), JSON.stringify({ id, snapshotDir: options.snapshotDir } satisfies MemoryRequest));
  process.kill(worker.pid(), MEMORY_SIGNAL);
  const deadline = Date.now() + 600_000;
  while (Date.now() < deadline) {
    if (existsSync(answer)) {
      const parsed = JSON.parse(readFileSync(answer, 'utf8')) as { id: string; memory: WorkerMemory };
      if (parsed.id === id) return parsed.memory;
    }
    await sleep(200);
  }
  throw new Error('the worker did not answer the memory reading');
}

/** V8 heap used in every isolate of the worker. */
export function heapUsedBytes(memory: WorkerMemory): number {
  return memory.main.usedBytes + memory.threads.reduce((sum, t) => sum + t.usedBytes, 0);
}
