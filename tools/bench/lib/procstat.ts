/**
 * CPU accounting from Linux /proc, pure parts: parsing /proc/<pid>/stat and /proc/stat,
 * telling which of the bench's descendants is which service, and turning two samples into
 * CPU per service.
 *
 * Bytes written per process are deliberately not reported: /proc/<pid>/io write_bytes
 * counts page-cache pages dirtied, and with large folios (ext4, recent kernels) every
 * commit that re-dirties an fsync'd WAL page is charged a whole folio — on the reference
 * machine Postgres showed ~15 MB "written" per saga for 18 KB of WAL.
 */

export interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks: the process and its reaped children. */
  ticks: number;
}

/**
 * Parses one /proc/<pid>/stat line. `comm` is in parentheses and may itself contain
 * spaces and parentheses, so the fields are counted from the last ')'.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open === -1 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  // After ')': state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17); index 0 is state.
  const fields = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  const field = (number: number): number => Number(fields[number - 3]);
  const ticks = field(14) + field(15) + field(16) + field(17);
  if (!Number.isInteger(pid) || !Number.isFinite(ticks)) return undefined;
  return { pid, comm: text.slice(open + 1, close), ppid: field(4), ticks };
}

export interface CpuTotals {
  /** Ticks spent doing anything but idle and iowait, all CPUs. */
  busy: number;
  /** Ticks idle while some process waited for disk I/O. */
  iowait: number;
  total: number;
}

/** The aggregate `cpu` line of /proc/stat. */
export function parseCpuTotals(text: string): CpuTotals | undefined {
  const line = text.split('\n').find((candidate) => /^cpu\s/.test(candidate));
  if (line === undefined) return undefined;
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (values.length < 4 || values.some((value) => !Number.isFinite(value))) return undefined;
  const total = values.reduce((sum, value) => sum + value, 0);
  const iowait = values[4] ?? 0;
  return { busy: total - (values[3] ?? 0) - iowait, iowait, total };
}

export const ROLES = ['api', 'worker', 'relay', 'temporal', 'postgres', 'nats', 'bench'] as const;
export type Role = (typeof ROLES)[number];

/**
 * Which service a command line belongs to; undefined for anything else. Postgres backends
 * rename themselves ("postgres: postgres orders …"), so they are found through their
 * parent, the postmaster, not by name.
 */
export function classifyCommand(argv: readonly string[]): Exclude<Role, 'bench'> | undefined {
  const program = (argv[0] ?? '').split('/').at(-1) ?? '';
  const has = (suffix: string): boolean => argv.some((arg) => arg.endsWith(suffix));
  if (has('api/server.ts')) return 'api';
  if (has('relay/main.ts')) return 'relay';
  if (has('worker/main.ts')) return 'worker';
  if (program === 'temporal' && argv.includes('start-dev')) return 'temporal';
  if (program === 'temporal-server') return 'temporal'; // the cluster engine's server
  if (program === 'postgres') return 'postgres';
  if (program === 'nats-server') return 'nats';
  return undefined;
}

/**
 * Which service each process belongs to: that of its nearest classified ancestor (itself
 * included) below `root`. Processes outside root's tree are left out.
 */
export function assignRoles(
  processes: readonly ProcStat[],
  root: number,
  roleOf: (pid: number) => Exclude<Role, 'bench'> | undefined,
): Map<number, Role> {
  const byPid = new Map(processes.map((process) => [process.pid, process]));
  const roleWithin = (pid: number): Role | undefined => {
    let role: Role | undefined;
    for (let current = byPid.get(pid); current !== undefined; current = byPid.get(current.ppid)) {
      if (current.pid === root) return role;
      role ??= roleOf(current.pid);
    }
    return undefined;
  };
  const roles = new Map<number, Role>();
  for (const process of processes) {
    const role = roleWithin(process.pid);
    if (role !== undefined) roles.set(process.pid, role);
  }
  return roles;
}

/** Adds up a per-process value by service. */
export function sumByRole(
  roles: ReadonlyMap<number, Role>,
  valueOf: (pid: number) => number | undefined,
): Partial<Record<Role, number>> {
  const totals: Partial<Record<Role, number>> = {};
  for (const [pid, role] of roles) {
    const value = valueOf(pid);
    if (value !== undefined) totals[role] = (totals[role] ?? 0) + value;
  }
  return totals;
}

/** Each service's CPU ticks (processes and their reaped children). */
export function ticksByRole(
  processes: readonly ProcStat[],
  root: number,
  roleOf: (pid: number) => Exclude<Role, 'bench'> | undefined,
): Partial<Record<Role, number>> {
  const ticks = new Map(processes.map((process) => [process.pid, process.ticks]));
  return sumByRole(assignRoles(processes, root, roleOf), (pid) => ticks.get(pid));
}

export interface CpuSample {
  /** Wall-clock ms. */
  atMs: number;
  /** CPU ms used so far, per service found (absent: not ours, e.g. an external Postgres). */
  roles: Partial<Record<Role, number>>;
  machine: CpuTotals;
  /** Ms per tick of /proc/stat (10 with the usual CLK_TCK of 100). */
  msPerTick: number;
  cores: number;
}

export interface CpuReport {
  wallMs: number;
  /** Per service: CPU ms used in the interval and as a share of one core (100 = one core). */
  roles: Partial<Record<Role, { ms: number; pctOfCore: number }>>;
  /** The whole machine's busy share, 0–100 (of all cores). */
  machineBusyPct: number;
  /** Share of all cores idle while waiting for disk I/O, 0–100. */
  machineIowaitPct: number;
  /** Busy share of all cores spent outside our processes (other load on the machine). */
  foreignPct: number;
}

export function cpuBetween(before: CpuSample, after: CpuSample): CpuReport {
  const wallMs = Math.max(1, after.atMs - before.atMs);
  const roles: CpuReport['roles'] = {};
  let ours = 0;
  for (const role of ROLES) {
    const start = before.roles[role];
    const end = after.roles[role];
    if (start === undefined || end === undefined) continue;
    // A postgres backend that exited is reaped into its parent's cutime, never lost, but a
    // process that restarted would go backwards: clamp at zero.
    const ms = Math.max(0, end - start);
    ours += ms;
    roles[role] = { ms, pctOfCore: (ms / wallMs) * 100 };
  }
  const machineTicks = Math.max(1, after.machine.total - before.machine.total);
  const machineBusyPct = ((after.machine.busy - before.machine.busy) / machineTicks) * 100;
  const machineIowaitPct = ((after.machine.iowait - before.machine.iowait) / machineTicks) * 100;
  const capacityMs = wallMs * after.cores;
  const oursPct = (ours / capacityMs) * 100;
  return {
    wallMs,
    roles,
    machineBusyPct,
    machineIowaitPct,
    foreignPct: Math.max(0, machineBusyPct - oursPct),
  };
}

/**
 * Per process, CPU ms per run of a step: its CPU ÷ the runs it finished (null: none). Given
 * a `background` (CPU measured while idle), what each process burns with nothing to do is
 * taken out first, at its idle rate over the step's wall time: without that, a figure taken
 * at a low rate carries more of the background per run than one taken at a higher rate.
 */
export function cpuPerRun(
  step: CpuReport,
  runs: number,
  background?: CpuReport,
): Partial<Record<Role, number>> | null {
  if (runs <= 0) return null;
  const perRun: Partial<Record<Role, number>> = {};
  for (const role of ROLES) {
    const used = step.roles[role];
    if (used === undefined) continue;
    const idleMsPerS = background ? ((background.roles[role]?.ms ?? 0) / background.wallMs) * 1000 : 0;
    perRun[role] = Math.max(0, used.ms - (idleMsPerS * step.wallMs) / 1000) / runs;
  }
  return perRun;
}
