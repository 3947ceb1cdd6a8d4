/**
 * `npm run bench` (CONTRACT §8): saga throughput and latency on this machine, next to two
 * baselines from the same run, and what one happy saga costs (CPU per process, Postgres
 * write transactions, history counters), written to
 * tools/bench/results/<timestamp>.{json,svg,md}. `-- --compare a.json b.json` prints two
 * results side by side instead.
 *
 * Phases, in order (bare Temporal runs before the saga, so the saga meets the larger
 * Temporal database: any bias works against the saga ÷ bare ratio, not for it):
 *   1. start the system on the chosen engine (./engine.ts; dev: stack, migrations, the
 *      catalog, worker + relay + api processes)
 *   2. a first saga (waits for the worker), then a warm-up step
 *   3. idle latency: one order at a time
 *   4. bare Temporal: the saga's shape (local activities, activities, task queues) with no-op
 *      steps; idle latency and saturation, and idle latency of the same steps all activities
 *      and all local
 *   5. saturation search of the saga (happy path)
 *   6. half load: 50 % of the saga's saturation (POST latency, saga latency, outbox lag, CPU),
 *      and the per saga counters: write transactions around it, a sample of its histories
 *   7. saturation search with 10 % declined payments
 *   7b. saturation search with every order buying the one hot SKU
 *   8. direct: the same SQL transactions (every step, local or not) without Temporal, over
 *      the catalog's products, then buying the same products in every run (hot rows)
 *   9. backlog drain: relay stopped, N events appended, drained by the relay's code
 * Orders other than the hot SKU's spread over the catalog (lib/workload.ts), from a seeded PRNG.
 * Everything it started is stopped at the end, whatever happens (Ctrl-C included).
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, makeTelemetryFilterString, Runtime } from '@temporalio/worker';
import { loadOrExit, splitUrls } from '../../lib/env';
import { workflowIdFor } from '../../contracts/index';
import { ensureOrdersStream, type NatsConnection } from '../../relay/stream';
import { bundleBareWorkflow, startBareTemporal } from './bare';
import { ENGINES, loadBenchConfig, USAGE, type BenchConfig, type Engine } from './config';
import { EngineUnavailable, resolveEngine, type StartSystem } from './engine';
import { compareTable } from './lib/compare';
import {
  counterStats,
  COUNTER_LABELS,
  formatCounter,
  HISTORY_COUNTERS,
  writeTransactions,
} from './lib/counters';
import { seededRng } from '../fixtures/seed';
import { CATALOG, describeWorkload, orderLinesSource } from './lib/workload';
import { countSagaHistories, transactionIds, writersIncluded, HISTORY_SAMPLE } from './per-saga';
import { createCpuSampler, type CpuSampler } from './cpu';
import { runDirect, type DirectProducts } from './direct';
import { measureDrain, pendingEvents } from './drain';
import { cpuBetween, cpuPerRun, type CpuReport, type CpuSample, type Role } from './lib/procstat';
import {
  bestDirectRun,
  chartSeries,
  contentionLine,
  formatMs,
  formatRate,
  renderMarkdown,
  stepLine,
  summaryTable,
} from './lib/report';
import type {
  BenchResult,
  DrainRecord,
  PerSagaRecord,
  RatePoint,
  SearchRecord,
  ShapeVariantRecord,
  StepRecord,
} from './lib/result';
import {
  judgeStep,
  ladderFrom,
  nextRate,
  saturationOf,
  type Probe,
  type SearchOptions,
} from './lib/saturation';
import { describeShape, shapeVariants, stepLabel } from './lib/saga-shape';
import { stepMetrics } from './lib/step';
import { parseResult, stringifyResult } from './lib/result-json';
import { renderChart } from './lib/svg';
import {
  createHttpDriver,
  runOneAtATime,
  runOpenLoop,
  type Driver,
  type OrderKind,
  type StepRun,
} from './load';
import { dataConverterFor } from '../../lib/payload-codec';
import { createDataDir, type System } from './system';
import { bundleStepRecorder, captureSagaTemplate, type SagaTemplate } from './template';
import { Tracker, followStream } from './tracker';

const say = (line: string): void => void process.stdout.write(`${line}\n`);
/** How long the background (no load: write transactions, CPU) is measured before the half-load step. */
const BACKGROUND_MS = 5_000;
/** The drain test's first, small backlog: its rate sizes the measured one. */
const DRAIN_PROBE_EVENTS = 1_000;
const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** What every phase needs. */
interface Run {
  config: BenchConfig & { engine: Engine };
  signal: AbortSignal;
  tracker: Tracker;
  cpu: CpuSampler;
  startedAtMs: number;
  /** Foreign CPU share of each measured step, for the contention figure. */
  foreign: number[];
  notes: string[];
}

/** Cleanups run last-registered first; each one runs even if an earlier one failed. */
class Cleanup {
  private readonly steps: Array<{ name: string; run: () => Promise<void> }> = [];
  add(name: string, run: () => Promise<void>): void {
    this.steps.push({ name, run });
  }
  async runAll(): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) {
      await step.run().catch((error: unknown) => say(`cleanup: ${step.name} failed: ${message(error)}`));
    }
  }
}

// ---------------------------------------------------------------------------------------
// Steps and searches

type StepPlan = { ratePerS: number; durationMs: number; kindOf: (index: number) => OrderKind; probe?: Probe };

async function measureStep(run: Run, driver: Driver, label: string, step: StepPlan): Promise<StepRecord> {
  return (await measureStepRun(run, driver, label, step)).record;
}

/** One open-loop step: its record, and what it ran (each accepted order's id and sample). */
async function measureStepRun(
  run: Run,
  driver: Driver,
  label: string,
  step: StepPlan,
): Promise<{ record: StepRecord; raw: StepRun }> {
  const { plan } = run.config;
  const backlogAtStart = await settle(run, `${label} at ${step.ratePerS}/s`);
  run.tracker.capturing = true;
  const before = await run.cpu.sample();
  let sending: CpuSample | undefined;
  let raw: StepRun;
  try {
    raw = await runOpenLoop(
      driver,
      run.tracker,
      {
        ...step,
        graceMs: plan.graceMs,
        inflightCap: plan.inflightCap,
        onSendingDone: async () => {
          sending = await run.cpu.sample();
        },
      },
      run.signal,
    );
  } finally {
    run.tracker.capturing = false;
  }
  const after = await run.cpu.sample();
  const record = toRecord(run, label, raw, before, sending, after, step.probe ?? 'ladder', backlogAtStart);
  say(`  ${stepLine(record)}`);
  run.tracker.clearEarly();
  return { record, raw };
}

/**
 * Waits (up to settleMs) for the sagas of earlier steps to finish, so an overloaded step's
 * backlog does not weigh on the next one. Returns what was still running.
 */
async function settle(run: Run, what: string): Promise<number> {
  if (run.tracker.outstanding() === 0) return 0;
  await run.tracker.waitUntilIdle(run.config.plan.settleMs, run.signal);
  const left = run.tracker.outstanding();
  if (left > 0) {
    run.notes.push(
      `${what} started with ${left} sagas of earlier steps still running (not cleared within ${run.config.plan.settleMs / 1000} s): its figures are pessimistic`,
    );
  }
  return left;
}

function toRecord(
  run: Run,
  label: string,
  raw: StepRun,
  before: CpuSample,
  sending: CpuSample | undefined,
  after: CpuSample,
  probe: Probe,
  backlogAtStart: number,
): StepRecord {
  const metrics = stepMetrics(raw.window, raw.samples, raw.requestErrors);
  const verdict =
    raw.window.offeredPerS > 0 ? judgeStep(metrics, run.config.bounds) : { sustained: true, reasons: [] };
  const cpu = run.cpu.available && sending ? cpuBetween(before, sending) : undefined;
  const cpuWhole = run.cpu.available ? cpuBetween(before, after) : undefined;
  if (cpu) run.foreign.push(cpu.foreignPct);
  return { label, probe, ...metrics, ...verdict, backlogAtStart, cpu, cpuWhole };
}

async function measureOneAtATime(
  run: Run,
  driver: Driver,
  label: string,
  orders: number,
): Promise<StepRecord> {
  const backlogAtStart = await settle(run, label);
  run.tracker.capturing = true;
  const before = await run.cpu.sample();
  let raw: StepRun;
  try {
    raw = await runOneAtATime(driver, run.tracker, { orders, timeoutMs: 30_000, pauseMs: 50 }, run.signal);
  } finally {
    run.tracker.capturing = false;
  }
  const after = await run.cpu.sample();
  const record = toRecord(run, label, raw, before, after, after, 'ladder', backlogAtStart);
  say(
    `  ${label.padEnd(9)} ${record.finished}/${orders} finished  POST p50 ${formatMs(record.post.p50)} ms  ` +
      `saga p50/p99 ${formatMs(record.saga.p50)}/${formatMs(record.saga.p99)} ms  errors ${record.errors}`,
  );
  return record;
}

/**
 * Time left for a phase: each search gets an equal share of what the budget leaves after
 * the fixed phases still to come; what one search does not use, the next ones get.
 */
function searchDeadline(run: Run, searchesLeft: number, reservedMs: number): number {
  const end = run.startedAtMs + run.config.plan.budgetMs - reservedMs;
  return Date.now() + Math.max(0, end - Date.now()) / Math.max(1, searchesLeft);
}

async function searchSaturation(
  run: Run,
  driver: Driver,
  label: string,
  ladder: readonly number[],
  options: SearchOptions,
  kindOf: (index: number) => OrderKind,
  deadline: number,
): Promise<SearchRecord> {
  const { plan } = run.config;
  const steps: StepRecord[] = [];
  let stoppedBy: string;
  for (;;) {
    const next = nextRate(steps, ladder, options);
    if (next === undefined) {
      const failed = steps.find((step) => !step.sustained);
      stoppedBy = failed
        ? `not sustained at ${formatRate(failed.offeredPerS)}/s`
        : steps.length >= options.maxSteps
          ? `step limit (${options.maxSteps}) reached, every step sustained`
          : 'top of the ladder reached, every step sustained';
      break;
    }
    if (Date.now() + plan.stepMs + plan.graceMs / 2 > deadline) {
      stoppedBy = `time budget (next would have been ${next.ratePerS}/s)`;
      run.notes.push(
        `${label} search stopped by the time budget before ${next.ratePerS}/s: its saturation is a lower bound`,
      );
      break;
    }
    steps.push(await measureStep(run, driver, label, { ...next, durationMs: plan.stepMs, kindOf }));
  }
  const { sustained, peak } = saturationOf(steps);
  return { steps, sustained: ratePoint(sustained), peak: ratePoint(peak), stoppedBy };
}

const ratePoint = (step: StepRecord | undefined): RatePoint | null =>
  step
    ? { offeredPerS: step.offeredPerS, completedPerS: step.completedPerS, acceptedPerS: step.acceptedPerS }
    : null;

const happyPath = (): OrderKind => 'ok';
/** Every 10th order is declined: 10 % failures, spread evenly. */
const tenPercentDeclined = (index: number): OrderKind => (index % 10 === 9 ? 'declined' : 'ok');

/** An optional phase that is skipped (with a note) once the run's time budget is spent. */
async function withinBudget<T>(run: Run, name: string, phase: () => Promise<T>): Promise<T | null> {
  if (Date.now() > run.startedAtMs + run.config.plan.budgetMs) {
    run.notes.push(`${name} skipped: the ${run.config.plan.budgetMs / 60_000} min time budget was spent`);
    say(`  ${name} skipped (time budget spent)`);
    return null;
  }
  return optional(run, name, phase);
}

/** Runs an optional phase; its failure becomes a note instead of ending the run. */
async function optional<T>(run: Run, name: string, phase: () => Promise<T>): Promise<T | null> {
  try {
    return await phase();
  } catch (error) {
    if (run.signal.aborted) throw error;
    run.notes.push(`${name} failed: ${message(error)}`);
    say(`  ${name} failed: ${message(error)}`);
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// The run

async function bench(
  config: BenchConfig & { engine: Engine },
  startSystem: StartSystem,
  signal: AbortSignal,
  cleanup: Cleanup,
  dataDir: string,
): Promise<BenchResult> {
  const startedAt = new Date();
  const loadAverageAtStart = os.loadavg();
  const run: Run = {
    config,
    signal,
    tracker: new Tracker(),
    cpu: await createCpuSampler(),
    startedAtMs: startedAt.getTime(),
    foreign: [],
    notes: [],
  };
  const { plan } = config;
  say(
    `bench (${config.mode}, ${config.engine} engine, seed ${config.seed}): ${os.cpus().length} cores, load average ${loadAverageAtStart.map((v) => v.toFixed(2)).join(' ')}; data in ${dataDir}`,
  );
  if (!run.cpu.available) run.notes.push('no /proc here: CPU per process is not measured');

  // The bare workflow's bundle, and the saga's with the step recorder, build while the stack starts.
  const bareBundle = bundleBareWorkflow();
  bareBundle.catch(() => undefined); // awaited (and reported) in the bare phase
  const recorderBundle = bundleStepRecorder();
  recorderBundle.catch(() => undefined); // awaited (and reported) after the first saga

  // 1. The system.
  const abortOnExit = new AbortController();
  const system: System = await startSystem(config, dataDir, {
    log: (line) => say(`  ${line}`),
    onServiceExit: (name, how, logFile) => {
      say(`${name} exited unexpectedly (${how}); see ${logFile}`);
      abortOnExit.abort(new Error(`${name} exited unexpectedly (${how})`));
    },
  });
  cleanup.add('system', () => system.stop());
  const phaseSignal = AbortSignal.any([signal, abortOnExit.signal]);
  run.signal = phaseSignal;
  say(`  api ${system.apiUrl} · temporal ${system.stack.temporalAddress} · nats ${system.stack.natsUrl}`);

  const nats = (await connect({
    servers: splitUrls(system.stack.natsUrl),
    name: 'order-saga-bench',
  })) as NatsConnection;
  cleanup.add('nats', () => nats.close());
  await ensureOrdersStream(await jetstreamManager(nats), {
    duplicateWindowMs: config.relay.duplicateWindowMs,
  });
  const follower = await followStream(nats, run.tracker);
  cleanup.add('stream consumer', () => follower.stop());

  const temporalConnection = { ...config.temporal, address: system.stack.temporalAddress };
  const connection = await Connection.connect({
    address: temporalConnection.address,
    ...(temporalConnection.tls ? { tls: temporalConnection.tls } : {}),
    ...(temporalConnection.apiKey ? { apiKey: temporalConnection.apiKey } : {}),
  });
  cleanup.add('temporal client', () => connection.close());
  const client = new Client({
    connection,
    namespace: config.temporal.namespace,
    dataConverter: dataConverterFor(config.encryptionKeys),
  });

  // The main scenarios spread orders over the catalog; the hot-SKU search buys one product.
  const rng = seededRng(config.seed);
  const http = createHttpDriver(
    system.apiUrls ?? system.apiUrl,
    orderLinesSource('spread', CATALOG, rng),
    config.apiToken,
  );
  cleanup.add('http agent', () => Promise.resolve(http.close()));
  const hotHttp = createHttpDriver(
    system.apiUrls ?? system.apiUrl,
    orderLinesSource('hot', CATALOG, rng),
    config.apiToken,
  );
  cleanup.add('hot http agent', () => Promise.resolve(hotHttp.close()));

  // 2. First saga (the worker may still be connecting) and warm-up.
  say('warm-up');
  run.tracker.capturing = true;
  const first = await runOneAtATime(
    http,
    run.tracker,
    { orders: 1, timeoutMs: 120_000, pauseMs: 0 },
    run.signal,
  ).finally(() => void (run.tracker.capturing = false));
  const firstId = first.ids[0];
  if (firstId === undefined || first.samples[0]?.status !== 'COMPLETED') {
    throw new Error(
      `the first order did not complete (${JSON.stringify(first.requestErrors)}, status ${first.samples[0]?.status ?? 'none'})`,
    );
  }
  const firstSample = first.samples[0];
  const firstMs = (firstSample.doneAtMs ?? Number.NaN) - firstSample.dueAtMs;
  say(`  first saga completed in ${formatMs(firstMs)} ms`);
  const template: SagaTemplate = await captureSagaTemplate(
    client,
    workflowIdFor(firstId),
    await recorderBundle,
  );
  const sagaShape = describeShape(template.shape);
  say(`  saga happy path, ${sagaShape} (${template.historyEvents} history events):`);
  say(`    ${template.steps.map(stepLabel).join(' → ')}`);
  // Warm up without flooding a slow system: about four sagas in flight at most.
  const warmupRate = Math.min(
    plan.warmup.ratePerS,
    Math.max(2, Math.floor(4_000 / Math.max(1, firstMs || 1_000))),
  );
  await measureStep(run, http, 'warm-up', {
    ratePerS: warmupRate,
    durationMs: plan.warmup.durationMs,
    kindOf: happyPath,
  });

  // 3. Idle latency.
  say('idle: one order at a time');
  const idle = await measureOneAtATime(run, http, 'idle', plan.idleOrders);

  // Fixed phases still to come, reserved out of the budget for the searches.
  // What they typically take; the budget check before each of them is the hard limit.
  const reserve = {
    half: plan.halfLoadMs + plan.graceMs / 2 + BACKGROUND_MS, // + the background before it

    direct: 2 * plan.direct.concurrency.length * (plan.direct.durationMs + 500), // spread, then the same products
    drain: 3_000 + 2 * plan.drainTargetS * 1_000,
    write: 2_000,
  };
  const searchOptions: SearchOptions = { refine: plan.refine, refineGap: 1.15, maxSteps: plan.maxSteps };

  // 4. Bare Temporal.
  say(`bare Temporal: the saga's shape with no-op steps, ${sagaShape}`);
  const bare = await optional(run, 'bare Temporal baseline', async () => {
    const baseline = await startBareTemporal({
      connection: temporalConnection,
      namespace: config.temporal.namespace,
      encryptionKeys: config.encryptionKeys,
      client,
      bundleCode: await bareBundle,
      shape: template.shape,
      payload: template.input,
      worker: config.worker,
      tracker: run.tracker,
    });
    cleanup.add('bare worker', () => baseline.stop());
    try {
      const driver = baseline.driverFor(template.shape);
      await measureStep(run, driver, 'bare warm', {
        ratePerS: warmupRate,
        durationMs: plan.bare.warmupMs,
        kindOf: happyPath,
      });
      const bareIdle = await measureOneAtATime(run, driver, 'bare idle', plan.bare.idleOrders);
      const variants: ShapeVariantRecord[] = [];
      for (const variant of shapeVariants(template.shape)) {
        const variantDriver = baseline.driverFor(variant.shape);
        const idle = await measureOneAtATime(
          run,
          variantDriver,
          `bare ${variant.name}`,
          plan.bare.idleOrders,
        );
        variants.push({ shape: describeShape(variant.shape), idle });
      }
      const deadline = searchDeadline(run, 4, reserve.half + reserve.direct + reserve.drain + reserve.write);
      const search = await searchSaturation(
        run,
        driver,
        'bare',
        plan.ladder,
        { ...searchOptions, maxSteps: plan.bare.maxSteps },
        happyPath,
        deadline,
      );
      return { shape: sagaShape, idle: bareIdle, variants, search };
    } finally {
      await baseline.stop();
      // Runs still open have no worker now: stop waiting for them.
      const abandoned = run.tracker.abandon();
      if (abandoned > 0)
        run.notes.push(`${abandoned} bare Temporal runs were still open when the bare phase ended`);
    }
  });

  // 5. Saga saturation, happy path.
  say('saga saturation search (happy path)');
  const happy = await searchSaturation(
    run,
    http,
    'saga',
    plan.ladder,
    searchOptions,
    happyPath,
    searchDeadline(run, 3, reserve.half + reserve.direct + reserve.drain + reserve.write),
  );
  // What the saga did: its saturation, or (none sustained) the most it ever completed.
  const sagaRate = happy.sustained?.completedPerS ?? happy.peak?.completedPerS ?? 0;

  // 6. Half load.
  const halfRate = Math.max(1, Math.round(sagaRate / 2));
  if (happy.sustained === null) {
    run.notes.push(
      `no saga step was sustained: "50 %" is ${halfRate}/s, half the most it completed (or 1/s)`,
    );
  }
  say(`half load: ${halfRate}/s for ${plan.halfLoadMs / 1000} s`);
  const counted = await withinBudget(run, 'half load', () =>
    measureCounted(run, http, client, system, 'half load', {
      ratePerS: halfRate,
      durationMs: plan.halfLoadMs,
      kindOf: happyPath,
    }),
  );
  const half = counted?.record ?? null;
  const perSaga = counted?.perSaga ?? null;

  // 7 and 7b. Two more searches from the happy path's rate: 10 % declined, and every order
  // buying the one hot SKU. Quick mode runs each at one rate only.
  const mixStart = plan.mixStartFactor * (happy.sustained?.offeredPerS ?? Math.max(1, Math.round(sagaRate)));
  const variantSearch = async (
    label: string,
    client: Parameters<typeof searchSaturation>[1],
    pattern: Parameters<typeof searchSaturation>[5],
    searchesLeft: number,
    figure: string,
  ) => {
    const result = await withinBudget(run, `${label} search`, () =>
      searchSaturation(
        run,
        client,
        label,
        ladderFrom(plan.ladder, mixStart),
        { ...searchOptions, maxSteps: plan.mixMaxSteps },
        pattern,
        searchDeadline(run, searchesLeft, reserve.direct + reserve.drain + reserve.write),
      ),
    );
    if (result && config.mode === 'quick') {
      run.notes.push(`quick mode runs the ${figure} at one rate only: its figure is a lower bound`);
    }
    return result;
  };
  say('saga saturation search (10 % declined)');
  const mix = await variantSearch('mix', http, tenPercentDeclined, 2, '10 % declined mix');
  say(`saga saturation search (hot SKU: every order buys ${CATALOG.hotSku})`);
  const hot = await variantSearch('hot SKU', hotHttp, happyPath, 1, 'hot-SKU search');

  // 8. Direct.
  // Spread over the catalog like the saga's load (the main figure), then the recipe's own
  // products in every run (the hot-row case).
  const directRuns = async (label: string, products: DirectProducts): Promise<BenchResult['direct']> => {
    say(`direct (${label}): the same transactions without Temporal`);
    const runs: BenchResult['direct'] = [];
    for (const concurrency of plan.direct.concurrency) {
      const result = await withinBudget(run, `direct (${label}) at concurrency ${concurrency}`, () =>
        runDirect(
          {
            databaseUrl: system.stack.databaseUrl,
            poolSize: config.worker.dbPoolSize,
            slowPaymentMs: config.worker.slowPaymentMs,
            template,
            products,
            concurrency,
            durationMs: plan.direct.durationMs,
          },
          run.signal,
        ),
      );
      if (result === null) continue;
      runs.push(result);
      say(
        `  direct    ${String(concurrency).padStart(3)} at once  ${formatRate(result.sagasPerS)} sagas/s  ` +
          `latency p50/p99 ${formatMs(result.latency.p50)}/${formatMs(result.latency.p99)} ms  errors ${result.errors}`,
      );
    }
    return runs;
  };
  const direct = await directRuns('spread', { kind: 'spread', catalog: CATALOG, seed: config.seed });
  const directSameProducts = await directRuns('the same products every run', { kind: 'same' });

  // 9. Backlog drain (last: it stops the relay process).
  say(`backlog drain: ${plan.drainEvents} events`);
  const drain = await withinBudget(run, 'backlog drain', async () => {
    for (let waited = 0; (await pendingEvents(system.stack.databaseUrl)) > 0; waited += 250) {
      if (waited > 30_000) throw new Error('the relay did not catch up within 30 s before the drain test');
      await delay(250, undefined, { signal: run.signal });
    }
    await system.stopService('relay');
    const drainOf = (events: number): Promise<DrainRecord> =>
      measureDrain({
        databaseUrl: system.stack.databaseUrl,
        nats,
        events,
        relay: {
          batchSize: config.relay.batchSize,
          pollIntervalMs: config.relay.pollIntervalMs,
          maxAttempts: config.relay.maxAttempts,
          retentionMs: config.relay.retentionMs,
        },
      });
    // A small probe first, so a slow relay is measured on a backlog of drainTargetS, not minutes.
    const probe = await drainOf(DRAIN_PROBE_EVENTS);
    const events = Math.max(
      DRAIN_PROBE_EVENTS,
      Math.min(plan.drainEvents, Math.round(probe.eventsPerS * plan.drainTargetS)),
    );
    const result = await drainOf(events);
    if (result.events < plan.drainEvents) {
      run.notes.push(
        `backlog drain measured on ${result.events} events, not ${plan.drainEvents}: the relay drained ` +
          `${formatRate(probe.eventsPerS)} events/s in a ${probe.events}-event probe, so the full backlog would have taken ` +
          `${Math.round(plan.drainEvents / probe.eventsPerS)} s`,
      );
    }
    say(
      `  drained ${result.events} events in ${result.seconds.toFixed(2)} s: ${formatRate(result.eventsPerS)} events/s` +
        (result.leftOver > 0 ? ` (${result.leftOver} left over)` : ''),
    );
    return result;
  });

  if (follower.malformed > 0)
    run.notes.push(`${follower.malformed} stream messages could not be read as events`);
  return assemble(run, {
    startedAt,
    loadAverageAtStart,
    system,
    template,
    idle,
    bare,
    happy,
    half,
    perSaga,
    mix,
    hot,
    direct,
    directSameProducts,
    drain,
  });
}

/**
 * A step with the per saga counters (lib/counters.ts): Postgres's transaction id read once
 * earlier steps' sagas and events are done, the step, then read again once its own sagas
 * and their events are done; and the histories of a sample of its completed sagas.
 */
async function measureCounted(
  run: Run,
  driver: Driver,
  client: Client,
  system: System,
  label: string,
  step: StepPlan,
): Promise<{ record: StepRecord; perSaga: PerSagaRecord | null }> {
  const { config } = run;
  const ids = transactionIds(system.stack.databaseUrl);
  try {
    await settle(run, label);
    const quietBefore = await ids.relayCaughtUp(config.plan.settleMs, run.signal);
    // The background, with nothing to do: write transactions and each process's CPU.
    const idleCpuBefore = await run.cpu.sample();
    const idle = await optional(run, `${label} background write transactions`, () =>
      ids.window(() => delay(BACKGROUND_MS, undefined, { signal: run.signal })),
    );
    const backgroundCpu = run.cpu.available ? cpuBetween(idleCpuBefore, await run.cpu.sample()) : null;
    const before = await optional(run, `${label} transaction id before`, () => ids.read());
    const beforeAt = performance.now();
    const { record, raw } = await measureStepRun(run, driver, label, step);
    // The step's late sagas, then the relay's last marks: their writes are the saga's too.
    const finished = await run.tracker.waitUntilIdle(config.plan.settleMs, run.signal);
    const quietAfter = await ids.relayCaughtUp(config.plan.settleMs, run.signal);
    const after = await optional(run, `${label} transaction id after`, () => ids.read());
    const windowMs = performance.now() - beforeAt;
    const completed = raw.accepted.filter(({ sample }) => sample.status === 'COMPLETED');
    if (!quietBefore || !finished || !quietAfter) {
      run.notes.push(
        `${label}: the write transactions per saga were counted with work still under way ` +
          `(${[!quietBefore && 'events of earlier steps unpublished at the start', !finished && 'sagas still running at the end', !quietAfter && 'events unpublished at the end'].filter(Boolean).join(', ')}): approximate`,
      );
    }
    const writes =
      before === null || after === null
        ? null
        : writeTransactions(
            { before, after, ms: windowMs },
            completed.length,
            writersIncluded(config.engine),
            idle,
          );
    const histories = await optional(run, `${label} histories`, () =>
      countSagaHistories(
        client,
        completed.map(({ id }) => id),
      ),
    );
    if (histories && histories.skipped > 0) {
      run.notes.push(
        `${label}: ${histories.skipped} of the sampled sagas' runs had not completed, left out of the history counters`,
      );
    }
    const stats = histories ? counterStats(histories.counts) : null;
    const perSaga: PerSagaRecord = {
      step: label,
      history: stats && histories ? { sampled: histories.counts.length, counters: stats } : null,
      writeTransactions: writes,
      backgroundCpu,
    };
    say(
      `  per saga (${completed.length} completed, ${perSaga.history?.sampled ?? 0} of ${HISTORY_SAMPLE} histories): ` +
        `${writes && !Number.isNaN(writes.perSaga) ? writes.perSaga.toFixed(1) : '–'} Postgres write transactions` +
        (stats
          ? `, ${HISTORY_COUNTERS.map((c) => `${formatCounter(stats[c])} ${COUNTER_LABELS[c]}`).join(', ')}`
          : ''),
    );
    return { record, perSaga };
  } finally {
    await ids.close();
  }
}

function assemble(
  run: Run,
  parts: {
    startedAt: Date;
    loadAverageAtStart: number[];
    system: System;
    template: SagaTemplate;
    idle: StepRecord;
    bare: BenchResult['bare'];
    happy: SearchRecord;
    half: StepRecord | null;
    perSaga: PerSagaRecord | null;
    mix: SearchRecord | null;
    hot: SearchRecord | null;
    direct: BenchResult['direct'];
    directSameProducts: BenchResult['direct'];
    drain: BenchResult['drain'];
  },
): BenchResult {
  const { config } = run;
  const finishedAt = new Date();
  // Ratios compare sustained rates (ladder rungs): completed/s of one rung varies by a few
  // per cent from run to run, which would make two equal rungs look different.
  const sagaPerS = parts.happy.sustained?.offeredPerS ?? null;
  const barePerS = parts.bare?.search?.sustained?.offeredPerS ?? null;
  const directPerS = bestDirectRun({ direct: parts.direct })?.sagasPerS ?? null;
  const foreignCpuPctMean =
    run.foreign.length > 0 ? run.foreign.reduce((sum, value) => sum + value, 0) / run.foreign.length : null;
  const cores = os.cpus().length;
  const contended = (foreignCpuPctMean ?? 0) > 10 || (parts.loadAverageAtStart[0] ?? 0) > 0.5 * cores;

  const cpuMsPerSaga = cpuPerFinished(parts.half);
  const background = parts.perSaga?.backgroundCpu;
  const cpuMsPerSagaBeyondBackground = background ? cpuPerFinished(parts.half, background) : null;
  // The bare step that finished most runs gives the steadiest figure.
  const bareBusiest = (parts.bare?.search?.steps ?? []).reduce<StepRecord | undefined>(
    (best, step) => (best === undefined || step.finished > best.finished ? step : best),
    undefined,
  );
  const cpuMsPerBareRun = cpuPerFinished(bareBusiest);

  const notes = [...run.notes];
  if (sagaPerS !== null && sagaPerS === barePerS) {
    notes.unshift(
      `The saga and bare Temporal were both sustained at ${formatRate(sagaPerS)}/s and not above: within one rung of the ladder, the saga ÷ bare ratio of 1 only says "about equal".`,
    );
  }
  const bareForeign = meanForeign(parts.bare?.search?.steps);
  const sagaForeign = meanForeign(parts.happy.steps);
  if (bareForeign !== null && sagaForeign !== null && Math.abs(bareForeign - sagaForeign) > 15) {
    notes.unshift(
      `Other work on the machine differed between the bare Temporal search (${Math.round(bareForeign)}% of all cores) ` +
        `and the saga search (${Math.round(sagaForeign)}%): the saga ÷ bare ratio compares unequal conditions.`,
    );
  }
  if (contended) {
    notes.unshift(
      'The machine was busy with other work during this run (see the contention line): rerun on a quiet machine for reference figures.',
    );
  }
  notes.push(
    'Saturation rates are ladder rungs (plus at most one midpoint): the true limit lies between the last sustained rate and the first that was not.',
    'The bench\'s own load generator, stream consumer and (for bare Temporal) workers share the same cores; its CPU is the "bench" row.',
  );

  return {
    schema: 3,
    mode: config.mode,
    startedAt: parts.startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationS: (finishedAt.getTime() - parts.startedAt.getTime()) / 1000,
    machine: {
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      cores,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      os: `${os.type()} ${os.release()}`,
      node: process.version,
    },
    contention: {
      loadAverageAtStart: parts.loadAverageAtStart,
      loadAverageAtEnd: os.loadavg(),
      foreignCpuPctMean,
      contended,
    },
    settings: {
      bounds: config.bounds,
      phaseOrder: [
        'first saga',
        'warm-up',
        'idle',
        'bare Temporal',
        'saga search',
        'half load',
        'mix search',
        'hot SKU search',
        'direct (spread)',
        'direct (same products)',
        'drain',
      ],
      worker: { ...config.worker },
      relay: { ...config.relay },
      logLevel: config.logLevel,
      rateLimitMax: config.childEnv.RATE_LIMIT_MAX ?? '',
      embedded: parts.system.embedded,
      engine: config.engine,
      load: {
        seed: config.seed,
        products: CATALOG.products,
        linesPerOrder: CATALOG.linesPerOrder,
        unitsPerLine: CATALOG.unitsPerLine,
        hotSku: CATALOG.hotSku,
      },
      workload:
        `POST /orders: ${describeWorkload(CATALOG, config.seed)} (stock never the limit), tok_ok; the mix sends tok_declined ` +
        "as every 10th order. Open loop at a constant rate; latencies from each request's scheduled send time. " +
        "Saga latency: scheduled POST → the terminal event's occurredAt (its transaction's now()); outbox lag: " +
        'JetStream timestamp − occurredAt (transaction start, so it includes the commit). Postgres with fsync on and ' +
        'the Temporal dev server on SQLite, as npm start runs them.',
    },
    saga: {
      steps: parts.template.steps.map(({ activity, local, taskQueue }) => ({ activity, local, taskQueue })),
      shape: describeShape(parts.template.shape),
      historyEvents: parts.template.historyEvents,
      eventKinds: parts.template.eventKinds,
    },
    idle: parts.idle,
    happy: parts.happy,
    half: parts.half,
    mix: parts.mix,
    hot: parts.hot,
    bare: parts.bare,
    direct: parts.direct,
    directSameProducts: parts.directSameProducts,
    drain: parts.drain,
    ratios: {
      sagaOverBare: sagaPerS !== null && barePerS !== null && barePerS > 0 ? sagaPerS / barePerS : null,
      sagaOverDirect:
        sagaPerS !== null && directPerS !== null && directPerS > 0 ? sagaPerS / directPerS : null,
    },
    perSaga: parts.perSaga,
    cpuMsPerSaga,
    cpuMsPerSagaBeyondBackground,
    cpuMsPerBareRun,
    notes,
  };
}

/** Mean share of all cores used by other work during these steps (null: not measured). */
function meanForeign(steps: readonly StepRecord[] | undefined): number | null {
  const values = (steps ?? []).flatMap((step) => (step.cpu ? [step.cpu.foreignPct] : []));
  return values.length > 0 ? values.reduce((sum, value) => sum + value, 0) / values.length : null;
}

/** Per process, a step's CPU (start to last saga finished) ÷ the sagas it finished, less the background if given. */
function cpuPerFinished(
  step: StepRecord | null | undefined,
  background?: CpuReport,
): Partial<Record<Role, number>> | null {
  return step?.cpuWhole ? cpuPerRun(step.cpuWhole, step.finished, background) : null;
}

// ---------------------------------------------------------------------------------------
// Output

/** The files of a result: <stamp>.json, .svg and .md (tools/bench/results/*.tmp while written). */
async function writeResults(
  result: BenchResult,
  outDir: string,
  formats = ['json', 'svg', 'md'],
): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const stamp = result.startedAt.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const saturation = result.happy?.sustained;
  const chart = renderChart({
    title: `Order saga: latency against offered rate (${result.mode}, ${stamp})`,
    subtitle: `${result.machine.cores} cores, ${result.machine.cpuModel}; load average at start ${result.contention.loadAverageAtStart[0]?.toFixed(2) ?? '?'}${result.contention.contended ? ' (contended)' : ''}`,
    xLabel: 'offered rate (orders or workflows per second)',
    yLabel: 'latency (ms, log scale)',
    series: chartSeries(result),
    markers: saturation
      ? [{ x: saturation.offeredPerS, label: `saga saturation ${formatRate(saturation.completedPerS)}/s` }]
      : [],
  });
  const files = (
    [
      ['json', `${stringifyResult(result)}\n`],
      ['svg', chart],
      ['md', renderMarkdown(result)],
    ] as const
  )
    .filter(([format]) => formats.includes(format))
    .map(([format, content]) => [`${stamp}.${format}`, content] as const);
  const written: string[] = [];
  for (const [name, content] of files) {
    const target = path.join(outDir, name);
    const partial = `${target}.${process.pid}.tmp`; // tools/bench/results/*.tmp is gitignored
    await writeFile(partial, content);
    await rename(partial, target);
    written.push(target);
  }
  return written;
}

async function main(): Promise<number> {
  const config = loadOrExit(() => {
    try {
      return loadBenchConfig(process.argv.slice(2), process.env);
    } catch (error) {
      if (error instanceof TypeError) {
        // parseArgs: unknown option or missing value.
        process.stderr.write(`${error.message}\n${USAGE}\n`);
        process.exit(2);
      }
      throw error;
    }
  });
  if (config.compare) {
    const [a, b] = config.compare;
    const results = await Promise.all([a, b].map(async (file) => parseResult(await readFile(file, 'utf8'))));
    say(compareTable(results[0]!, results[1]!, [path.basename(a), path.basename(b)]));
    return 0;
  }
  if (config.render) {
    const result = parseResult(await readFile(config.render, 'utf8'));
    for (const file of await writeResults(result, path.dirname(config.render), ['svg', 'md'])) {
      say(`wrote ${path.relative(process.cwd(), file)}`);
    }
    return 0;
  }
  if (config.engine === 'both') return benchBothEngines(config.outDir);
  const single = { ...config, engine: config.engine };
  // Before anything starts: an engine that cannot run here costs nothing.
  let startSystem: StartSystem;
  try {
    startSystem = await resolveEngine(single.engine);
  } catch (error) {
    if (!(error instanceof EngineUnavailable)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 1;
  }

  // The in-process bare worker (SDK and Rust core) logs warnings and up only.
  Runtime.install({
    logger: new DefaultLogger('WARN'),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) } },
  });

  const abort = new AbortController();
  let interrupts = 0;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      interrupts++;
      if (interrupts > 1) process.exit(130); // exit hooks still signal every child
      say(`${signal}: stopping everything…`);
      abort.abort(new Error(`interrupted by ${signal}`));
    });
  }

  const cleanup = new Cleanup();
  const dataDir = await createDataDir();
  let ok = false;
  try {
    const result = await bench(single, startSystem, abort.signal, cleanup, dataDir);
    await cleanup.runAll();
    const files = await writeResults(result, config.outDir);
    say('');
    say(summaryTable(result));
    say('');
    say(contentionLine(result));
    for (const note of result.notes) say(`- ${note}`);
    say('');
    for (const file of files) say(`wrote ${path.relative(process.cwd(), file)}`);
    ok = true;
    return 0;
  } catch (error) {
    say(`bench failed: ${message(error)}`);
    return abort.signal.aborted ? 130 : 1;
  } finally {
    await cleanup.runAll();
    if (ok && !config.keepData) {
      await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
    } else {
      say(`data and logs kept in ${dataDir}`);
    }
  }
}

/**
 * `--engine both`: the same bench on the dev engine, then on the cluster, each as its own
 * run (child process, same arguments), then both side by side, printed and written next
 * to their results as <timestamp>-engines.md.
 */
async function benchBothEngines(outDir: string): Promise<number> {
  const args = process.argv
    .slice(2)
    .filter((arg, index, all) => arg !== '--engine' && all[index - 1] !== '--engine');
  const files: string[] = [];
  for (const engine of ENGINES) {
    const before = new Set(await readdir(outDir).catch(() => [] as string[]));
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', __filename, ...args, '--engine', engine], {
        stdio: 'inherit',
      });
      child.on('exit', resolve);
    });
    if (code !== 0) return code ?? 1;
    const written = (await readdir(outDir)).filter((file) => file.endsWith('.json') && !before.has(file));
    if (written.length !== 1) throw new Error(`the ${engine} run wrote ${written.length} result files`);
    files.push(path.join(outDir, written[0]!));
  }
  const [dev, cluster] = await Promise.all(
    files.map(async (file) => parseResult(await readFile(file, 'utf8'))),
  );
  const table = compareTable(dev!, cluster!, ['dev engine', 'cluster engine']);
  const file = files[1]!.replace(/\.json$/, '-engines.md');
  await writeFile(file, `# The bench on both engines\n\n${table}\n`);
  say(table);
  say(`wrote ${path.relative(process.cwd(), file)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${message(error)}\n`);
    process.exit(1);
  },
);
