/**
 * Keeps processes running as a process manager (systemd, Kubernetes) would in production: one
 * that exits while not asked to is started again after a delay that doubles with each quick
 * death (1 s, 2 s, 4 s … up to 30 s) and falls back to the first once it has stayed up a minute.
 * A worker or API dies when its dependencies vanish under load (postgres.js ends the process when
 * PostgreSQL goes away, porsager/postgres#1154); restarting it is the recovery.
 */
import type { ManagedProcess, ProcessGroup } from './services';
import { describeError } from './tools';

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** Up at least this long, a process that dies is restarted after `initialMs` again. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1000, maxMs: 30_000, resetAfterMs: 60_000 };

/** The delay before the next start, given the previous delay (undefined for the first death) and how long the process was up. */
export function nextRestartDelay(previousMs: number | undefined, upMs: number, policy: BackoffPolicy): number {
  if (previousMs === undefined || upMs >= policy.resetAfterMs) return policy.initialMs;
  return Math.min(previousMs * 2, policy.maxMs);
}

export interface Supervised {
  readonly name: string;
  /** The process running now (or the last one, while a restart waits). */
  current(): ManagedProcess;
  /** Starts so far after unexpected exits. */
  restarts(): number;
}

export interface SupervisorOptions {
  backoff?: BackoffPolicy;
  /** Where restarts are announced, with the process's name; console.log with a `[cluster]` prefix by default. */
  log?: (message: string, name: string) => void;
}

export class Supervisor {
  private stopping = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly backoff: BackoffPolicy;
  private readonly log: (message: string, name: string) => void;

  constructor(
    private readonly group: ProcessGroup,
    options: SupervisorOptions = {},
  ) {
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.log = options.log ?? ((message) => console.log(`[cluster] ${message}`));
  }

  /** Runs `launch` now and again after every unexpected exit; `launch` spawns through the group. */
  supervise(name: string, launch: (group: ProcessGroup) => ManagedProcess): Supervised {
    let current = launch(this.group);
    let startedAt = Date.now();
    let delay: number | undefined;
    let restarts = 0;
    const watch = (managed: ManagedProcess) => {
      void managed.exited.then(() => {
        if (this.stopping) return;
        delay = nextRestartDelay(delay, Date.now() - startedAt, this.backoff);
        this.log(`${name} exited (${exitReason(managed)}); restarting in ${formatDelay(delay)}`, name);
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          if (this.stopping) return;
          try {
            current = launch(this.group);
          } catch (error) {
            // A launch that throws counts as a death: the next try waits longer.
            this.log(`${name} could not start: ${describeError(error)}`, name);
            startedAt = Date.now();
            return watch(managed);
          }
          startedAt = Date.now();
          restarts++;
          watch(current);
        }, delay);
        this.timers.add(timer);
      });
    };
    watch(current);
    return { name, current: () => current, restarts: () => restarts };
  }

  /** Last resort when this process exits without having stopped: no restarts, SIGKILL to every process. */
  killAll(): void {
    this.stopping = true;
    this.group.killAll();
  }

  /** No more restarts; stops every process of the group. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await this.group.stop();
  }
}

function exitReason(managed: ManagedProcess): string {
  const { signalCode, exitCode } = managed.child;
  return signalCode ?? `exit code ${exitCode ?? 'unknown'}`;
}

function formatDelay(ms: number): string {
  return ms >= 1000 ? `${Number((ms / 1000).toFixed(1))} s` : `${ms} ms`;
}
