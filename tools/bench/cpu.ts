/**
 * Samples CPU time of every service the bench started (its descendants in /proc) and of
 * the bench itself, plus the whole machine's busy and iowait time, so a phase can report
 * CPU per saga for each process and how much of the machine other work was using meanwhile.
 */
import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  classifyCommand,
  parseCpuTotals,
  parseProcStat,
  ticksByRole,
  type CpuSample,
  type ProcStat,
  type Role,
} from './lib/procstat';

export const wallNow = (): number => performance.timeOrigin + performance.now();

export interface CpuSampler {
  sample(): Promise<CpuSample>;
  /** False where /proc is missing (not Linux): reports then carry the bench's own CPU only. */
  readonly available: boolean;
}

export async function createCpuSampler(): Promise<CpuSampler> {
  const available = await readFile('/proc/stat', 'utf8').then(
    () => true,
    () => false,
  );
  const msPerTick = 1000 / clockTicksPerSecond();
  const cores = os.cpus().length;
  /** Classification per pid, remembered: a process is read once, not at every sample. */
  const classified = new Map<number, { starttime: string; role: Exclude<Role, 'bench'> | undefined }>();

  async function roleOf(stat: ProcStat, statText: string): Promise<Exclude<Role, 'bench'> | undefined> {
    const { pid } = stat;
    // A pid may be reused by another process: key the cache by its start time too.
    const starttime = statText.slice(statText.lastIndexOf(')') + 2).split(' ')[19] ?? '';
    const cached = classified.get(pid);
    if (cached && cached.starttime === starttime) return cached.role;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    const role = classifyCommand(cmdline.split('\0').filter((arg) => arg !== ''));
    // A child of ours may still be setpriv, about to exec the service: ask again next time.
    if (role !== undefined || stat.ppid !== process.pid) classified.set(pid, { starttime, role });
    return role;
  }

  async function sample(): Promise<CpuSample> {
    const benchMs = cpuMsOfThisProcess();
    if (!available) {
      return {
        atMs: wallNow(),
        roles: { bench: benchMs },
        machine: { busy: 0, iowait: 0, total: 0 },
        msPerTick,
        cores,
      };
    }
    const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
    const processes: ProcStat[] = [];
    const roles = new Map<number, Exclude<Role, 'bench'> | undefined>();
    await Promise.all(
      pids.map(async (pid) => {
        const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
        const parsed = text === undefined ? undefined : parseProcStat(text);
        if (parsed === undefined || text === undefined) return;
        processes.push(parsed);
        roles.set(parsed.pid, await roleOf(parsed, text));
      }),
    );
    const machine = parseCpuTotals(await readFile('/proc/stat', 'utf8')) ?? { busy: 0, iowait: 0, total: 0 };
    const ticks = ticksByRole(processes, process.pid, (pid) => roles.get(pid));
    const msByRole: CpuSample['roles'] = { bench: benchMs };
    for (const [role, value] of Object.entries(ticks) as Array<[Role, number]>)
      msByRole[role] = value * msPerTick;
    return { atMs: wallNow(), roles: msByRole, machine, msPerTick, cores };
  }

  return { sample, available };
}

/** This process' user + system CPU, all threads (the in-process Temporal worker included). */
function cpuMsOfThisProcess(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

function clockTicksPerSecond(): number {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim());
    return Number.isFinite(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
}
