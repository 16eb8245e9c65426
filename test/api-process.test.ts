import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';

const ROOT = path.join(__dirname, '..');

function startApiProcess(env: NodeJS.ProcessEnv): { child: ChildProcessWithoutNullStreams; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/api.ts'], { cwd: ROOT, env });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function listeningUrl(output: () => string, exited: Promise<unknown>): Promise<string> {
  let stopped = false;
  void exited.then(() => (stopped = true));
  for (;;) {
    const match = /"url":"(http:\/\/localhost:\d+)"/.exec(output());
    if (match) return match[1];
    if (stopped) throw new Error(`the API exited before listening:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('the API process serves until SIGTERM, then finishes and exits 0', async () => {
  const api = startApiProcess({ ...process.env, PORT: '0', LOG_LEVEL: 'info' });
  const url = await listeningUrl(api.output, api.exited);

  const ready = await fetch(`${url}/readyz`);
  assert.equal(ready.status, 200);

  api.child.kill('SIGTERM');
  assert.equal(await api.exited, 0);
  assert.match(api.output(), /"msg":"stopped"/);
});

test('a bad configuration stops start-up with exit 1 and names the variable', async () => {
  const api = startApiProcess({ ...process.env, JWT_SECRET: 'too-short' });
  assert.equal(await api.exited, 1);
  assert.match(api.output(), /JWT_SECRET/);
});
