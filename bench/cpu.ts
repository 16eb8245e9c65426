/**
 * CPU time used by each process of the stack (with its children: PostgreSQL's backends), read
 * from /proc (Linux). Divided by the operations a benchmark performed it says what one operation
 * costs in each process: a figure that holds up on a busy machine, where wall-clock times do not.
 */
import { readdirSync, readFileSync } from 'node:fs';

// USER_HZ: the unit of /proc/<pid>/stat times; 100 on every mainstream Linux build.
const TICKS_PER_SECOND = 100;

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime, in ticks. */
  ticks: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const [utime, stime, cutime, cstime] = [fields[11], fields[12], fields[13], fields[14]].map(Number);
    return { pid, ppid: Number(fields[1]), ticks: utime + stime + cutime + cstime };
  } catch {
    return undefined; // exited meanwhile
  }
}

/** CPU milliseconds used so far by each of `rootPids` and every process below it, summed. */
export function treeCpuMs(rootPids: number | readonly number[]): number {
  const roots = new Set(typeof rootPids === 'number' ? [rootPids] : rootPids);
  const stats = readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((name) => readStat(Number(name)))
    .filter((s): s is ProcStat => s !== undefined);
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  let ticks = 0;
  const pending = stats.filter((s) => roots.has(s.pid));
  while (pending.length > 0) {
    const s = pending.pop()!;
    ticks += s.ticks;
    // A root below another root (never so in a stack) is counted once: as the child it is.
    pending.push(...(children.get(s.pid) ?? []).filter((child) => !roots.has(child.pid)));
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}

export type CpuReading = Record<string, number>;

/**
 * CPU milliseconds so far per name, summed over its process trees (two workers are one `worker`),
 * plus this process as `bench`.
 */
export function readCpu(pids: Record<string, readonly number[]>): CpuReading {
  const usage = process.cpuUsage();
  return {
    ...Object.fromEntries(Object.entries(pids).map(([name, roots]) => [name, treeCpuMs(roots)])),
    bench: (usage.user + usage.system) / 1000,
  };
}

/** CPU milliseconds per operation in each process between two readings. */
export function cpuPerOperation(before: CpuReading, after: CpuReading, operations: number): CpuReading {
  return Object.fromEntries(Object.keys(after).map((name) => [name, (after[name] - (before[name] ?? 0)) / Math.max(1, operations)]));
}
