/**
 * The addresses a running `npm start` serves, kept in the ignored `.data/endpoints.json` so that
 * helper commands in a second terminal (`npm run manage`, …) reach the same PostgreSQL, Redis and
 * Temporal without the operator copying URLs. `npm start` writes the file once everything is up
 * and removes it when it stops; a file whose writer is gone (killed, machine rebooted) is stale
 * and ignored.
 *
 * `npm run cluster` records its own in `.data/cluster/endpoints.json`, so that it can run beside
 * `npm start` without either overwriting the other's. Helpers read the file `ENDPOINTS_FILE`
 * names, else `npm start`'s when it runs, else the cluster's.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { REPO_ROOT } from './tools';

export const LOCAL_ENDPOINTS_FILE = path.join(REPO_ROOT, '.data', 'endpoints.json');
export const CLUSTER_ENDPOINTS_FILE = path.join(REPO_ROOT, '.data', 'cluster', 'endpoints.json');

/** The variables a helper may take from the file, in the names the configuration reads. */
const SHARED_VARIABLES = ['DATABASE_URL', 'REDIS_URL', 'TEMPORAL_ADDRESS', 'TEMPORAL_UI_URL'] as const;

const endpointsSchema = z.object({
  pid: z.number().int().positive(),
  startedAt: z.string(),
  API_URL: z.string(),
  TEMPORAL_UI_URL: z.string().optional(),
  DATABASE_URL: z.string(),
  REDIS_URL: z.string(),
  TEMPORAL_ADDRESS: z.string(),
});

export type LocalEndpoints = z.infer<typeof endpointsSchema>;

/** Written through a temporary file and a rename, so a reader never sees half a file. */
export function recordLocalEndpoints(endpoints: Omit<LocalEndpoints, 'pid' | 'startedAt'>, file = LOCAL_ENDPOINTS_FILE): void {
  const record: LocalEndpoints = { pid: process.pid, startedAt: new Date().toISOString(), ...endpoints };
  const staging = `${file}.${process.pid}`;
  // The database URL may carry a password.
  writeFileSync(staging, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  renameSync(staging, file);
}

/** Removes the file if this process wrote it (another `npm start` may have replaced it). */
export function forgetLocalEndpoints(file = LOCAL_ENDPOINTS_FILE): void {
  const current = readRecord(file);
  if (current?.pid === process.pid) rmSync(file, { force: true });
}

/** The endpoints of the `npm start` still running, or undefined when there is none. */
export function readLocalEndpoints(file = LOCAL_ENDPOINTS_FILE): LocalEndpoints | undefined {
  const record = readRecord(file);
  return record && isRunning(record.pid) ? record : undefined;
}

/**
 * Fills DATABASE_URL, REDIS_URL, TEMPORAL_ADDRESS and TEMPORAL_UI_URL from a running
 * `npm start` (or `npm run cluster`, see chooseEndpointsFile) where `env` names none; a variable already set always wins. Returns the names filled.
 */
/** `ENDPOINTS_FILE` when set; else `npm start`'s file when its writer runs; else the cluster's when its runs; else `npm start`'s. */
export function chooseEndpointsFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ENDPOINTS_FILE) return path.resolve(env.ENDPOINTS_FILE);
  return [LOCAL_ENDPOINTS_FILE, CLUSTER_ENDPOINTS_FILE].find((file) => readLocalEndpoints(file)) ?? LOCAL_ENDPOINTS_FILE;
}

export function useLocalEndpoints(env: NodeJS.ProcessEnv = process.env, file = chooseEndpointsFile(env)): string[] {
  const missing = SHARED_VARIABLES.filter((name) => !env[name]);
  if (missing.length === 0) return [];
  const endpoints = readLocalEndpoints(file);
  if (!endpoints) return [];
  const filled = missing.filter((name) => endpoints[name] !== undefined);
  for (const name of filled) env[name] = endpoints[name];
  return filled;
}

function readRecord(file: string): LocalEndpoints | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = endpointsSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, but another user's.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
