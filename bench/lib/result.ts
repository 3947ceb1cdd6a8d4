/** The shape of bench/results/<timestamp>.json (types only). */
import type { CpuReport, Role } from './procstat';
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

export interface BenchResult {
  schema: 1;
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
  };
  /** The saga's happy path as recorded in a real run's history. */
  saga: { activities: string[]; historyEvents: number; eventKinds: Record<string, number> } | null;
  idle: StepRecord | null;
  happy: SearchRecord | null;
  half: StepRecord | null;
  mix: SearchRecord | null;
  bare: {
    activities: number;
    idle: StepRecord | null;
    /** Idle latency of the same runs with local activities. */
    localIdle: StepRecord | null;
    search: SearchRecord | null;
  } | null;
  direct: DirectRecord[];
  drain: DrainRecord | null;
  ratios: { sagaOverBare: number | null; sagaOverDirect: number | null };
  /** CPU ms one saga costs each process at half load. */
  cpuMsPerSaga: Partial<Record<Role, number>> | null;
  /** The same for one bare Temporal run (its busiest step). */
  cpuMsPerBareRun: Partial<Record<Role, number>> | null;
  /** What the run could not do, and anything a reader must know to trust the numbers. */
  notes: string[];
}
