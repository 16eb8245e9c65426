/**
 * What a heap grew by between two snapshots of the same isolate (bench/footprint.ts with
 * BENCH_HEAP_SNAPSHOT_DIR set writes one of each worker isolate before and after filling the
 * sticky cache): self sizes summed by node type and constructor or name, the difference divided by
 * the workflows added, largest first. Self sizes, not retained sizes: a summary by what the memory
 * is, without a dominator tree.
 *
 *   npx tsx bench/heap-summary.ts BEFORE.heapsnapshot AFTER.heapsnapshot WORKFLOWS [TOP]
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Self bytes and counts by `type:name` (a string's or code's name is its kind, not its text). */
function summarise(file: string): Map<string, { bytes: number; count: number }> {
  const heap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = heap.snapshot.meta.node_fields;
  const types = heap.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const groups = new Map<string, { bytes: number; count: number }>();
  for (let i = 0; i < heap.nodes.length; i += fields.length) {
    const type = types[heap.nodes[i + typeAt]];
    const named = type === 'object' || type === 'closure' || type === 'native' || type === 'synthetic' || type === 'hidden';
    const key = named ? `${type}:${heap.strings[heap.nodes[i + nameAt]].slice(0, 60)}` : type;
    const group = groups.get(key) ?? { bytes: 0, count: 0 };
    group.bytes += heap.nodes[i + sizeAt];
    group.count += 1;
    groups.set(key, group);
  }
  return groups;
}

function main(): void {
  const [before, after, workflows, top = '40'] = process.argv.slice(2);
  const perWorkflow = Number(workflows);
  const a = summarise(before);
  const b = summarise(after);
  const rows = [...b.entries()].map(([key, { bytes, count }]) => {
    const was = a.get(key) ?? { bytes: 0, count: 0 };
    return { key, bytes: (bytes - was.bytes) / perWorkflow, count: (count - was.count) / perWorkflow };
  });
  const total = rows.reduce((sum, r) => sum + r.bytes, 0);
  console.log(`grown per workflow: ${(total / 1024).toFixed(1)} KiB (self sizes)`);
  console.log('| what (type:constructor) | bytes per workflow | objects per workflow |');
  console.log('| --- | --- | --- |');
  for (const r of rows.sort((x, y) => y.bytes - x.bytes).slice(0, Number(top))) {
    console.log(`| ${r.key.replace(/\|/g, '\\|')} | ${r.bytes.toFixed(0)} | ${r.count.toFixed(1)} |`);
  }
}

main();
