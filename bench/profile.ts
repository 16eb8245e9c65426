/**
 * Summarises a V8 CPU profile (`node --cpu-prof`) as self time per package or source file, and
 * the busiest functions: where a process spent its CPU, not where it waited.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../scripts/tools';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  startTime: number;
  endTime: number;
  samples: number[];
}

export interface ProfileSummary {
  totalMs: number;
  /** Not idle: total minus V8's `(idle)`. */
  busyMs: number;
  top: Array<{ name: string; selfMs: number }>;
  topFunctions: Array<{ name: string; selfMs: number }>;
}

/** Merges every profile in `dir` (one per process exit) into one summary. */
export function summariseProfiles(dir: string, topN = 15): ProfileSummary {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir}`);
  const byGroup = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  for (const file of files) {
    const profile = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as CpuProfile;
    const msPerSample = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length);
    const nodes = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
    totalMs += (profile.endTime - profile.startTime) / 1000;
    for (const id of profile.samples) {
      const frame = nodes.get(id)!;
      if (frame.functionName === '(idle)') {
        idleMs += msPerSample;
        continue;
      }
      add(byGroup, groupOf(frame.url, frame.functionName), msPerSample);
      add(byFunction, `${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`, msPerSample);
    }
  }
  return { totalMs, busyMs: totalMs - idleMs, top: topOf(byGroup, topN), topFunctions: topOf(byFunction, topN) };
}

function add(map: Map<string, number>, key: string, ms: number): void {
  map.set(key, (map.get(key) ?? 0) + ms);
}

function topOf(map: Map<string, number>, n: number): Array<{ name: string; selfMs: number }> {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, selfMs]) => ({ name, selfMs }));
}

/** An npm package, a Node built-in module, one of our files, or V8's own bucket. */
function groupOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(V8 built-ins)';
  const inPackage = /.*node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (inPackage) return inPackage[1];
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
  return shortUrl(url);
}

function shortUrl(url: string): string {
  const file = url.replace(/^file:\/\//, '');
  const inPackage = /.*node_modules\/(.*)/.exec(file);
  if (inPackage) return inPackage[1];
  return file.startsWith(REPO_ROOT) ? path.relative(REPO_ROOT, file) : file;
}
