/** The shape of tools/bench/results/<timestamp>.json (types only). */
import type { CounterStat, HistoryCounter, WriteTransactions } from './counters';
import type { CpuReport, Role } from './procstat';
import type { SagaStep } from './saga-shape';
import type { Probe, SaturationBounds } from './saturation';
import type { Summary } from './stats';
import type { StepMetrics } from './step';

export interface StepRecord extends StepMetrics {
  /** 'saga', 'mix', 'bare', 'warm-up', 'idle', 'half load', … */
  label: string;
  sustained: boolean;
  /** How the search chose this rate ('ladder' outside a search). */
  probe: Probe;
  /** Why the step was not sustained (empty when it was). */
  reasons: string[];
  /** Sagas of earlier steps still running when this one started (0 = a clean start). */
  backlogAtStart: number;
  /** CPU while the step was sending (utilisation under that load). */
  cpu: CpuReport | undefined;
  /** CPU from the step's start until its sagas finished (cost of exactly these sagas). */
  cpuWhole: CpuReport | undefined;
}

export interface RatePoint {
  offeredPerS: number;
  completedPerS: number;
  acceptedPerS: number;
}

export interface SearchRecord {
  steps: StepRecord[];
  /** The highest sustained step (null when even the first step was not). */
  sustained: RatePoint | null;
  /** The step that finished most sagas per second, sustained or not. */
  peak: RatePoint | null;
  /** Why the search ended. */
  stoppedBy: string;
}

export interface DirectRecord {
  concurrency: number;
  sagas: number;
  sagasPerS: number;
  latency: Summary;
  errors: number;
  firstError?: string;
}

export interface DrainRecord {
  events: number;
  seconds: number;
  eventsPerS: number;
  batchSize: number;
  leftOver: number;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
}

/** One step of the saga's happy path (without its arguments). */
export type SagaStepRecord = Pick<SagaStep, 'activity' | 'local' | 'taskQueue'>;

/** The bare baseline's idle latency in another shape of the saga's steps. */
export interface ShapeVariantRecord {
  /** e.g. "6 local activities" */
  shape: string;
  idle: StepRecord;
}

/** What one happy saga costs, counted exactly in the half-load step (lib/counters.ts). */
export interface PerSagaRecord {
  /** The step the sagas were counted in ('half load'). */
  step: string;
  /** From the histories of a sample of the step's completed sagas (null: none fetched). */
  history: {
    /** Completed sagas whose histories were counted. */
    sampled: number;
    counters: Record<HistoryCounter, CounterStat>;
  } | null;
  /** From Postgres's transaction ids around the step (null: not measured). */
  writeTransactions: WriteTransactions | null;
  /** CPU of every process with nothing to do, just before the step (absent before 2026-12-06). */
  backgroundCpu?: CpuReport | null;
}

export interface BenchResult {
  /**
   * 3 since per saga counters, the many-SKU load and the hot-SKU search (2: local
   * activities; results of schemas 1 and 2 are read by result-json.ts).
   */
  schema: 3;
  mode: 'quick' | 'full';
  startedAt: string;
  finishedAt: string;
  durationS: number;
  machine: MachineInfo;
  /** Other work on the machine: load averages and CPU used outside the bench's processes. */
  contention: {
    loadAverageAtStart: number[];
    loadAverageAtEnd: number[];
    /** Mean share of all cores busy outside our processes during the measured steps. */
    foreignCpuPctMean: number | null;
    contended: boolean;
  };
  settings: {
    bounds: SaturationBounds;
    phaseOrder: string[];
    worker: Record<string, number>;
    relay: Record<string, number>;
    logLevel: string;
    /** RATE_LIMIT_MAX the API ran with (lifted by the bench unless set by the caller). */
    rateLimitMax: string;
    /** Which pieces the bench started (true) or was given by URL (false: no CPU figures). */
    embedded: { postgres: boolean; temporal: boolean; nats: boolean };
    workload: string;
    /** What the bench ran against (schema 3; older results ran the dev stack). */
    engine?: string;
    /** What the orders bought (schema 3; older results bought one product in every order). */
    load?: {
      seed: number;
      products: number;
      linesPerOrder: { min: number; max: number };
      unitsPerLine: { min: number; max: number };
      hotSku: string;
    };
  };
  /** The saga's happy path, read from a real run (tools/bench/template.ts). */
  saga: {
    /** In order; taskQueue is null for a local activity (and in schema 1 results, unknown). */
    steps: SagaStepRecord[];
    /** e.g. "3 local + 3 activities, 1 on a second task queue" */
    shape: string;
    historyEvents: number;
    eventKinds: Record<string, number>;
  } | null;
  idle: StepRecord | null;
  happy: SearchRecord | null;
  half: StepRecord | null;
  mix: SearchRecord | null;
  /** Saturation search with every order buying the one hot SKU (schema 3). */
  hot: SearchRecord | null;
  bare: {
    /** The saga's shape, which the bare runs copy step by step (the saga ÷ bare ratio). */
    shape: string;
    idle: StepRecord | null;
    /** Idle latency of the same steps in other shapes (all activities, all local), for scale. */
    variants: ShapeVariantRecord[];
    search: SearchRecord | null;
  } | null;
  /** Direct runs over the catalog's products (before 2026-12-06: the recipe's own, every run). */
  direct: DirectRecord[];
  /** Direct runs buying the recipe's own products every run (hot rows); absent before 2026-12-06. */
  directSameProducts?: DirectRecord[];
  drain: DrainRecord | null;
  ratios: { sagaOverBare: number | null; sagaOverDirect: number | null };
  /** Per happy saga counters, from the half-load step (schema 3). */
  perSaga: PerSagaRecord | null;
  /** CPU ms one saga costs each process at half load. */
  cpuMsPerSaga: Partial<Record<Role, number>> | null;
  /**
   * The same less the background (what the processes burn idle, measured just before the
   * step): what one more saga costs, whatever the rate it was measured at. Absent before
   * 2026-12-06.
   */
  cpuMsPerSagaBeyondBackground?: Partial<Record<Role, number>> | null;
  /** The same for one bare Temporal run (its busiest step). */
  cpuMsPerBareRun: Partial<Record<Role, number>> | null;
  /** What the run could not do, and anything a reader must know to trust the numbers. */
  notes: string[];
}
