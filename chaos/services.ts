/**
 * The production processes (api, worker, relay) as children of the drill runner, started
 * the way scripts/start.ts starts them (node --import tsx <entry>, configured only by
 * environment), but with their pid at hand: a drill SIGKILLs them, and the soak reads
 * their memory from /proc/<pid>/status.
 *
 * Each runs in its own process group with a parent-death signal (setpriv), so nothing
 * outlives the runner even when it is killed outright; an exit hook covers the rest.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { ExitStatus, ManagedProcess } from '../scripts/processes';

const ROOT = path.resolve(__dirname, '..');

export type ServiceName = 'api' | 'worker' | 'relay';
export const ENTRYPOINTS: Record<ServiceName, string> = {
  api: 'api/server.ts',
  worker: 'worker/main.ts',
  relay: 'worker/relay-main.ts',
};

/** A running child: a ManagedProcess (so waitUntilReady works) with its pid. */
export interface ChildService extends ManagedProcess {
  readonly pid: number | undefined;
  /** Sends a signal to the process (not its group); a process already gone is fine. */
  kill(signal: NodeJS.Signals): void;
}

const running = new Set<number>();
let hookInstalled = false;
let setpriv: boolean | undefined;

export function spawnService(options: {
  name: string;
  entry: string;
  env: NodeJS.ProcessEnv;
  logFile: string;
}): ChildService {
  if (!hookInstalled) {
    hookInstalled = true;
    process.on('exit', () => {
      for (const pid of running) signal(pid, 'SIGKILL');
    });
  }
  setpriv ??=
    process.platform === 'linux' && spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
  const node = [process.execPath, '--import', 'tsx', options.entry];
  const [command, ...args] = setpriv ? ['setpriv', '--pdeathsig', 'SIGKILL', '--', ...node] : node;
  const out = openSync(options.logFile, 'a');
  let logOffset: number;
  let child;
  try {
    writeSync(out, `\n--- ${new Date().toISOString()} ${options.name} starting ---\n`);
    logOffset = fstatSync(out).size;
    child = spawn(command!, args, {
      cwd: ROOT,
      env: options.env,
      stdio: ['ignore', out, out],
      detached: true,
    });
  } finally {
    closeSync(out);
  }
  const pid = child.pid;
  if (pid !== undefined) running.add(pid);
  let status: ExitStatus | undefined;
  const exited = new Promise<ExitStatus>((resolve) => {
    const settle = (result: ExitStatus): void => {
      if (status) return;
      status = result;
      if (pid !== undefined) running.delete(pid);
      resolve(result);
    };
    child.once('exit', (code, sig) => settle({ code, signal: sig }));
    child.once('error', (error) => settle({ code: null, signal: null, error }));
  });
  return {
    name: options.name,
    logFile: options.logFile,
    pid,
    exited,
    hasExited: () => status !== undefined,
    lastLines: (count = 20) => tail(options.logFile, logOffset, count),
    kill: (sig) => {
      if (pid !== undefined && !status) signal(pid, sig);
    },
    async stop(timeoutMs = 10_000) {
      if (status || pid === undefined) return exited;
      signal(pid, 'SIGTERM');
      const outcome = await Promise.race([exited, delay(timeoutMs, 'timeout' as const, { ref: false })]);
      if (outcome !== 'timeout') return outcome;
      signal(-pid, 'SIGKILL');
      return exited;
    },
  };
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // ESRCH: already gone
  }
}

async function tail(file: string, from: number, lines: number): Promise<string> {
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      const start = Math.max(from, size - 65_536);
      const { buffer } = await handle.read(Buffer.alloc(size - start), 0, size - start, start);
      const text = buffer.toString('utf8').trimEnd();
      return text === '' ? '' : text.split('\n').slice(-lines).join('\n');
    } finally {
      await handle.close();
    }
  } catch {
    return '';
  }
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
