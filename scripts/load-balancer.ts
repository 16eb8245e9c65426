/**
 * nginx in front of the API instances, from the one template every deploy uses
 * (deploy/nginx/billing.conf), run as a foreground child with everything it writes (pid, temp
 * files, logs) in a folder of its own, so several can run beside a system nginx.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ManagedProcess, ProcessGroup } from './services';
import { REPO_ROOT } from './tools';

export const LOAD_BALANCER_TEMPLATE = path.join(REPO_ROOT, 'deploy', 'nginx', 'billing.conf');
const READY_TIMEOUT_MS = 30_000;
const TEMP_DIRS = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'] as const;

export interface LoadBalancerOptions {
  nginx: string;
  /** Its own folder: configuration, pid file, temp files. */
  dir: string;
  /** The public port, on 127.0.0.1. */
  port: number;
  /** The API instances, `host:port` each. */
  upstreams: string[];
  logFile: string;
}

/** Fills the template's `${BILLING_…}` values; the other `$` are nginx's own variables. */
export function renderLoadBalancerConfig(values: { listen: string; apiServers: string; resolver?: string }): string {
  const substitutions: Record<string, string> = {
    BILLING_LISTEN: values.listen,
    BILLING_API_SERVERS: values.apiServers,
    BILLING_RESOLVER: values.resolver ?? '',
  };
  return readFileSync(LOAD_BALANCER_TEMPLATE, 'utf8').replace(/\$\{(BILLING_[A-Z_]+)\}/g, (whole, name: string) => {
    const value = substitutions[name];
    if (value === undefined) throw new Error(`${LOAD_BALANCER_TEMPLATE}: unknown variable ${whole}`);
    return value;
  });
}

/** Starts nginx, resolving once it accepts connections on `port`. Call again after it stopped to restart it as it was. */
export async function startLoadBalancer(group: ProcessGroup, options: LoadBalancerOptions): Promise<ManagedProcess> {
  const configFile = writeConfig(options);
  const nginx = group.spawn('load-balancer', options.nginx, ['-p', options.dir, '-c', configFile, '-e', 'stderr', '-g', 'daemon off;'], {
    logFile: options.logFile,
    // SIGQUIT would wait for every open event stream; SIGTERM closes them, and clients reconnect.
    stopSignal: 'SIGTERM',
  });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await accepts(options.port))) {
    if (nginx.hasExited()) throw new Error(`nginx exited during start-up (see ${options.logFile})`);
    if (Date.now() > deadline) throw new Error(`nginx was not listening on ${options.port} after ${READY_TIMEOUT_MS / 1000}s`);
    await sleep(100);
  }
  return nginx;
}

function writeConfig(options: LoadBalancerOptions): string {
  mkdirSync(options.dir, { recursive: true });
  for (const name of TEMP_DIRS) {
    const dir = path.join(options.dir, name);
    mkdirSync(dir, { recursive: true });
    // As root, nginx's workers run as `nobody` and must be able to write there.
    chmodSync(dir, 0o777);
  }
  const servers = options.upstreams.map((upstream) => `server ${upstream} max_fails=1 fail_timeout=10s;`).join('\n  ');
  const site = path.join(options.dir, 'billing.conf');
  writeFileSync(site, renderLoadBalancerConfig({ listen: `127.0.0.1:${options.port}`, apiServers: servers }));
  const main = [
    'worker_processes auto;',
    `pid ${path.join(options.dir, 'nginx.pid')};`,
    'error_log stderr warn;',
    'events {',
    '  worker_connections 4096;',
    '}',
    'http {',
    // Every request in the bench would be a line; the APIs log what matters.
    '  access_log off;',
    ...TEMP_DIRS.map((name) => `  ${name}_temp_path ${path.join(options.dir, name)};`),
    `  include ${site};`,
    '}',
    '',
  ].join('\n');
  const configFile = path.join(options.dir, 'nginx.conf');
  writeFileSync(configFile, main);
  return configFile;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(false));
    socket.on('connect', () => {
      socket.destroy();
      resolve(true);
    });
  });
}
