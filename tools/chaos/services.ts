/**
 * The production processes (api, worker, relay) as children of the drill runner, started
 * the way tools/dev/start.ts starts them (node --import tsx <entry>, configured only by
 * environment, through tools/dev/processes.ts' launch(): own log, own process group,
 * parent-death signal), with their pid at hand: a drill SIGKILLs them, and the soak reads
 * their memory from /proc/<pid>/status.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { launch, type ManagedProcess } from '../dev/processes';

const ROOT = path.resolve(__dirname, '..', '..');

export type ServiceName = 'api' | 'worker' | 'relay';
export const ENTRYPOINTS: Record<ServiceName, string> = {
  api: 'api/server.ts',
  worker: 'worker/main.ts',
  relay: 'relay/main.ts',
};

/** A running child: a ManagedProcess, with its pid (for /proc) and kill() (for the drills). */
export type ChildService = ManagedProcess;

export function spawnService(options: {
  name: string;
  entry: string;
  env: NodeJS.ProcessEnv;
  logFile: string;
}): ChildService {
  return launch({
    name: options.name,
    command: process.execPath,
    args: ['--import', 'tsx', options.entry],
    cwd: ROOT,
    env: options.env,
    logFile: options.logFile,
    stopSignal: 'SIGTERM', // graceful: drains in-flight work
  });
}

/** Resident memory of a process in KiB (VmRSS in /proc/<pid>/status), or undefined. */
export async function residentKiB(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}
