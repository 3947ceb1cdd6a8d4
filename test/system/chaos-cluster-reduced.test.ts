/**
 * The reduced chaos run on the production topology, inside `npm test`:
 * `npm run test:chaos -- --engine cluster --reduced` as a child process, as an operator runs
 * it (its own cluster: the Temporal server on Postgres, three NATS nodes, two each of api,
 * worker and relay). Every cluster drill runs with 20 sagas: the Temporal server SIGKILLed,
 * the stream's leader node SIGKILLed, a worker of two, the relay holding most partitions,
 * an api of two while the other serves. The test reads the run's report and asserts what
 * the drills promise, so a failure names the drill and the broken invariant.
 *
 * The seed is fixed (tools/fixtures/seed.ts) and printed; `SEED=<n>` or `SEED=random` asks
 * for another; reproduce with `npm run test:chaos -- --engine cluster --reduced --seed <seed>`.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CLUSTER_DRILLS } from '../../tools/chaos/cluster-drills';
import type { DrillResult } from '../../tools/chaos/drills';
import type { Violation } from '../../tools/chaos/invariants';
import { chooseSeed } from '../../tools/fixtures/seed';
import { runScript } from '../support/run-script';

const ROOT = path.resolve(__dirname, '..', '..');
/** Seen: 60–105 s on 2 cores with the cluster tools cached; the run's own watchdog ends it well before this. */
const RUN_TIMEOUT_MS = 15 * 60_000;

interface Report {
  seed: number;
  engine: string;
  drills: DrillResult[];
  final: Violation[];
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-chaos-cluster-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('chaos drills on the cluster, reduced run', () => {
  it(
    'when the Temporal server, a NATS node, a worker, the busiest relay and an api are killed under load, then every saga comes to rest and every invariant holds after each',
    async () => {
      const seed = chooseSeed();
      process.stderr.write(`chaos cluster reduced run: seed ${seed} (SEED=<n> or SEED=random for another)\n`);
      const reportFile = path.join(dir, 'report.json');
      const logFile = path.join(ROOT, 'test-artifacts', `chaos-cluster-reduced-${seed}.log`);
      await mkdir(path.dirname(logFile), { recursive: true });
      const { code, output } = await runScript('tools/chaos/run.ts', [
        '--engine',
        'cluster',
        '--reduced',
        '--seed',
        String(seed),
        '--out',
        reportFile,
      ]);
      await writeFile(logFile, output);

      const hint = `seed ${seed}; log in ${logFile}; reproduce with npm run test:chaos -- --engine cluster --reduced --seed ${seed}`;
      if (code === 2) throw new Error(`chaos run could not finish (${hint}):\n${output.slice(-4_000)}`);
      const report = JSON.parse(await readFile(reportFile, 'utf8')) as Report;
      expect(report.seed).toBe(seed);
      expect(report.engine).toBe('cluster');

      expect(report.drills.map((d) => d.drill)).toEqual(Object.keys(CLUSTER_DRILLS));
      const summary = report.drills.map((d) => ({
        drill: d.drill,
        settled: d.settled,
        violations: d.violations.map((v) => `${v.invariant} ${v.subject}: ${v.detail}`).slice(0, 10),
        findings: d.findings.slice(0, 10),
      }));
      expect({ hint, summary }).toEqual({
        hint,
        summary: report.drills.map((d) => ({ drill: d.drill, settled: true, violations: [], findings: [] })),
      });
      for (const drill of report.drills) expect(drill.accepted).toBeGreaterThan(0);
      // Each fault hit sagas in flight (a fault on an idle system proves nothing).
      expect(report.drills.filter((d) => !(d.inFlightAtFault! > 0)).map((d) => d.drill)).toEqual([]);
      // The notes the faults write only when they saw what they were after.
      const notes = (drill: string): string =>
        report.drills.find((d) => d.drill === drill)?.notes.join('\n') ?? '';
      expect(notes('nats-node-kill')).toMatch(/then went on: [1-9]\d* events at once/);
      expect(notes('relay-kill')).toMatch(/its share moved in \d+ ms/);
      expect(notes('api-replica-kill')).toMatch(/the other api accepted [1-9]\d* POSTs/);
      expect(report.final.map((v) => `${v.invariant} ${v.subject}: ${v.detail}`)).toEqual([]);
      expect(code).toBe(0);
    },
    RUN_TIMEOUT_MS,
  );
});
