/**
 * A reduced chaos run as the system band runs it: `npm run test:chaos -- [--engine cluster]
 * --reduced --seed <seed>` as a child process (its own stack), its output kept under
 * test-artifacts/, its report read back; and the checks every reduced run must pass.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DrillResult } from '../../tools/chaos/drills';
import type { Violation } from '../../tools/chaos/invariants';
import { chooseSeed } from '../../tools/fixtures/seed';
import { runScript } from './run-script';

const ROOT = path.resolve(__dirname, '..', '..');

export interface ChaosReport {
  seed: number;
  engine?: string;
  drills: DrillResult[];
  final: Violation[];
}

export interface ChaosRun {
  seed: number;
  code: number | null;
  report: ChaosReport;
  /** The seed, the log and the command that reproduces the run: shown with any failure. */
  hint: string;
}

const describeViolation = (v: Violation): string => `${v.invariant} ${v.subject}: ${v.detail}`;

/** Runs the reduced drills of `engine` with the fixed (printed) seed; fails if no report came. */
export async function runReducedChaos(engine: 'dev' | 'cluster'): Promise<ChaosRun> {
  const seed = chooseSeed();
  const name = engine === 'dev' ? 'chaos-reduced' : 'chaos-cluster-reduced';
  const engineArgs = engine === 'dev' ? [] : ['--engine', engine];
  process.stderr.write(
    `${name.replace(/-/g, ' ')} run: seed ${seed} (SEED=<n> or SEED=random for another)\n`,
  );
  const dir = await mkdtemp(path.join(os.tmpdir(), `order-saga-${name}-test-`));
  try {
    const reportFile = path.join(dir, 'report.json');
    const logFile = path.join(ROOT, 'test-artifacts', `${name}-${seed}.log`);
    await mkdir(path.dirname(logFile), { recursive: true });
    const args = [...engineArgs, '--reduced', '--seed', String(seed)];
    const { code, output } = await runScript('tools/chaos/run.ts', [...args, '--out', reportFile]);
    await writeFile(logFile, output);
    const hint = `seed ${seed}; log in ${logFile}; reproduce with npm run test:chaos -- ${args.join(' ')}`;
    // 2 means the run itself could not finish (no report): show why.
    if (code === 2) throw new Error(`chaos run could not finish (${hint}):\n${output.slice(-4_000)}`);
    const report = JSON.parse(await readFile(reportFile, 'utf8')) as ChaosReport;
    return { seed, code, report, hint };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * What every reduced run must show: its seed, every drill of `drills` in order, each under
 * load and settled with no violation and no finding (a failure names the drill and the
 * invariant), the faults of `faults` hitting sagas in flight, nothing wrong at the end, exit 0.
 */
export function expectCleanRun(run: ChaosRun, drills: readonly string[], faults: readonly string[]): void {
  const { report, hint, seed } = run;
  expect(report.seed).toBe(seed);
  expect(report.drills.map((d) => d.drill)).toEqual(drills);
  const summary = report.drills.map((d) => ({
    drill: d.drill,
    settled: d.settled,
    violations: d.violations.map(describeViolation).slice(0, 10),
    findings: d.findings.slice(0, 10),
  }));
  expect({ hint, summary }).toEqual({
    hint,
    summary: report.drills.map((d) => ({ drill: d.drill, settled: true, violations: [], findings: [] })),
  });
  for (const drill of report.drills) expect(drill.accepted).toBeGreaterThan(0);
  // A fault that hit an idle system would prove nothing: each hit sagas in flight.
  const idle = report.drills.filter((d) => faults.includes(d.drill) && !(d.inFlightAtFault! > 0));
  expect(idle.map((d) => d.drill)).toEqual([]);
  expect(report.final.map(describeViolation)).toEqual([]);
  expect(run.code).toBe(0);
}
