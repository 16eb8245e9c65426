/**
 * The app's processes as deployed (`workers/api.ts`, `workers/worker.ts`) started by a test, and a
 * Temporal namespace of their own: they serve the production task queue names, which no other
 * test's worker may take tasks from.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
// A safety net for a process that never starts, not a performance assertion.
const STARTUP_TIMEOUT_MS = 120_000;

export interface AppProcess {
  child: ChildProcess;
  /** Everything printed so far, stdout and stderr. */
  output(): string;
  /** Resolves with the first match of `pattern` in the output; rejects if the process exits first. */
  waitFor(pattern: RegExp): Promise<RegExpMatchArray>;
  /** SIGTERM, then the exit code once it has drained. */
  stop(): Promise<number | null>;
}

export function startAppProcess(entry: string, env: NodeJS.ProcessEnv): AppProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, entry)], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const waiters = new Set<() => void>();
  const append = (chunk: Buffer) => {
    text += chunk.toString();
    waiters.forEach((wake) => wake());
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => text,
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const done = (settle: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        const timer = setTimeout(
          () => done(() => reject(new Error(`${entry}: no ${pattern} within ${STARTUP_TIMEOUT_MS} ms; output:\n${text}`))),
          STARTUP_TIMEOUT_MS,
        );
        const check = () => {
          const match = pattern.exec(text);
          if (match) done(() => resolve(match));
        };
        waiters.add(check);
        void exited.then(() => {
          if (!pattern.test(text)) done(() => reject(new Error(`${entry} exited before printing ${pattern}; output:\n${text}`)));
        });
        check();
      }),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** A namespace of the processes' own, usable once the frontend's namespace cache has it. */
export async function createNamespace(address: string, namespace: string): Promise<void> {
  await promisify(execFile)(process.env.TEMPORAL_CLI!, ['operator', 'namespace', 'create', '--address', address, '--namespace', namespace]);
  const connection = await Connection.connect({ address });
  try {
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (;;) {
      try {
        await connection.workflowService.listWorkflowExecutions({ namespace, pageSize: 1 });
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(250);
      }
    }
  } finally {
    await connection.close();
  }
}
