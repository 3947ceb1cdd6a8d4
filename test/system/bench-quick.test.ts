/**
 * `npm run bench -- --quick` end to end, inside `npm test`, so the benchmark keeps working:
 * it starts its own stack, drives the saga, the bare-Temporal and the direct-SQL baselines
 * and the relay drain, and writes its JSON, chart and summary. This test checks that every
 * figure the README table quotes was measured (not that it is fast: speed is the bench's
 * own report, never a timed test).
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BenchResult, StepRecord } from '../../tools/bench/lib/result';
import { parseResult } from '../../tools/bench/lib/result-json';
import { HISTORY_COUNTERS } from '../../tools/bench/lib/counters';
import { runScript } from '../support/run-script';

/** The quick run budgets itself under 2 minutes; this only stops a hang. */
const RUN_TIMEOUT_MS = 6 * 60_000;

let outDir: string;
beforeAll(async () => {
  outDir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-bench-test-'));
});
afterAll(async () => {
  await rm(outDir, { recursive: true, force: true });
});

/** A step that ran sagas to the end and timed them. */
function expectMeasured(step: StepRecord | null | undefined): void {
  expect(step).toBeTruthy();
  expect(step!.finished).toBeGreaterThan(0);
  expect(step!.saga.p50).toBeGreaterThan(0);
  expect(Number.isFinite(step!.saga.p50)).toBe(true);
}

describe('npm run bench -- --quick', () => {
  it(
    'measures the saga, both baselines and the relay, and writes the result, the chart and the summary',
    async () => {
      const { code, output } = await runScript('tools/bench/run.ts', ['--quick', '--out', outDir]);
      if (code !== 0) throw new Error(`bench exited with ${code}:\n${output.slice(-4_000)}`);

      const files = await readdir(outDir);
      const json = files.find((name) => name.endsWith('.json'));
      expect(json).toBeDefined();
      const stem = json!.replace(/\.json$/, '');
      expect(files).toEqual(expect.arrayContaining([`${stem}.md`, `${stem}.svg`]));
      const result: BenchResult = parseResult(await readFile(path.join(outDir, json!), 'utf8'));
      expect(result.mode).toBe('quick');

      // The saga: idle latency, a saturation search, half load with POST latency and lag.
      expectMeasured(result.idle);
      expect(result.idle!.errors).toBe(0);
      expect(result.happy?.peak?.completedPerS).toBeGreaterThan(0);
      expectMeasured(result.half);
      expect(result.half!.post.p99).toBeGreaterThan(0);
      expect(result.half!.outboxLag.count).toBeGreaterThan(0);
      expect(result.mix?.steps.length).toBeGreaterThan(0);
      // The baselines, from the same run, and the ratios between them; bare Temporal in the saga's shape.
      expect(result.saga?.steps.length).toBeGreaterThan(0);
      expect(result.bare?.shape).toBe(result.saga?.shape);
      expectMeasured(result.bare?.idle);
      expect(result.bare?.search?.peak?.completedPerS).toBeGreaterThan(0);
      // Direct: over the catalog's products, then the same products in every run.
      expect(result.direct.length).toBeGreaterThan(0);
      expect(result.directSameProducts?.length).toBeGreaterThan(0);
      for (const run of [...result.direct, ...(result.directSameProducts ?? [])]) {
        expect(run.errors).toBe(0);
        expect(run.sagasPerS).toBeGreaterThan(0);
      }
      // Ratios of the sustained rates (the rates offered at the highest sustained step, as the
      // report says); a search that sustained no rate (a contended machine) has none.
      const saga = result.happy?.sustained?.offeredPerS;
      const bare = result.bare?.search?.sustained?.offeredPerS;
      if (saga !== undefined && bare !== undefined)
        expect(result.ratios.sagaOverBare).toBeCloseTo(saga / bare, 1);
      else expect(result.ratios.sagaOverBare).toBeNull();
      // The relay drained its whole backlog; CPU per saga for each process.
      expect(result.drain?.eventsPerS).toBeGreaterThan(0);
      expect(result.drain?.leftOver).toBe(0);
      expect(Object.keys(result.cpuMsPerSaga ?? {})).toEqual(
        expect.arrayContaining(['worker', 'api', 'temporal']),
      );

      // Per happy saga counters (half load): exact counts, so integers; never how many.
      const perSaga = result.perSaga;
      expect(perSaga?.history?.sampled).toBeGreaterThan(0);
      const counters = perSaga!.history!.counters;
      const positiveInteger = (value: number): void => {
        expect(Number.isInteger(value)).toBe(true);
        expect(value).toBeGreaterThan(0);
      };
      // A saga always has events, workflow tasks and at least one activity (the payments bulkhead).
      for (const counter of ['events', 'workflowTasks', 'activities'] as const) {
        positiveInteger(counters[counter].min);
        positiveInteger(counters[counter].max);
      }
      // The others may rightly be 0 (patches retired, steps no longer local): measured, whole.
      for (const counter of HISTORY_COUNTERS) {
        expect(Number.isInteger(counters[counter].min) && counters[counter].min >= 0).toBe(true);
      }
      const writes = perSaga!.writeTransactions!;
      positiveInteger(writes.transactions);
      positiveInteger(writes.sagas);
      expect(writes.perSaga).toBeCloseTo(writes.transactions / writes.sagas, 6);
      // Spread over many SKUs from a seed it names; the hot SKU ran as its own search.
      expect(result.settings.load?.products).toBeGreaterThan(1);
      expect(Number.isInteger(result.settings.load?.seed)).toBe(true);
      expect(result.hot?.steps.length).toBeGreaterThan(0);
      expect(result.settings.engine).toBe('dev');

      const markdown = await readFile(path.join(outDir, `${stem}.md`), 'utf8');
      expect(markdown).toMatch(/\| *sagas\/s/i);
      expect(markdown).toMatch(/\| per happy saga at 50 %: workflow tasks/);
      const svg = await readFile(path.join(outDir, `${stem}.svg`), 'utf8');
      expect(svg).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
    },
    RUN_TIMEOUT_MS,
  );
});
