/**
 * `npm run bench [-- --quick] [-- --engine dev|cluster|both] [-- --seed <n>] [-- --out <dir>]
 * [-- --p99-bound-ms <ms>] [-- --keep-data]`, `npm run bench -- --render <result.json>` to
 * rewrite a result's .md and .svg, or `npm run bench -- --compare <a.json> <b.json>` to
 * print two results side by side: everything the bench reads from its arguments and the
 * environment, read only here.
 *
 * The environment is the one `npm start` passes to its processes: DATABASE_URL,
 * TEMPORAL_ADDRESS, TEMPORAL_UI_URL, NATS_URL (used instead of starting that piece),
 * and every worker/relay knob (WORKER_*, RELAY_*, LOG_LEVEL, …), which reach the api,
 * worker and relay unchanged and configure the baselines the same way.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, hostPort, list, logLevel, optionalString, url, type Env } from '../../lib/env';
import { loadRelayConfig, type RelayConfig } from '../../relay/config';
import { loadTemporalConnection, loadWorkerConfig, type TemporalConnectionConfig } from '../../worker/config';
import {
  generateEncryptionKey,
  KEYS_VARIABLE,
  loadPayloadEncryption,
  SWITCH_VARIABLE,
  type EncryptionKey,
} from '../../lib/payload-codec';
import { DEFAULT_BOUNDS, DEFAULT_LADDER, type SaturationBounds } from './lib/saturation';
import { chooseSeed } from '../fixtures/seed';

/** What the bench runs against: the dev stack (`npm start`'s) or the production topology. */
export const ENGINES = ['dev', 'cluster'] as const;
export type Engine = (typeof ENGINES)[number];

export interface Plan {
  /** The whole run must fit in this (a search stops early rather than overrun it). */
  budgetMs: number;
  warmup: { ratePerS: number; durationMs: number };
  idleOrders: number;
  stepMs: number;
  /** After a step's last answer, how long its sagas may take to finish. */
  graceMs: number;
  /** Before the next step, how long to wait for an overloaded step's backlog to clear. */
  settleMs: number;
  ladder: readonly number[];
  refine: boolean;
  maxSteps: number;
  halfLoadMs: number;
  /** The mix search starts at this share of the happy path's saturation. */
  mixStartFactor: number;
  mixMaxSteps: number;
  bare: { warmupMs: number; idleOrders: number; maxSteps: number };
  direct: { concurrency: readonly number[]; durationMs: number };
  drainEvents: number;
  /** A slow relay is measured on a backlog it drains in about this long, not on all drainEvents. */
  drainTargetS: number;
  inflightCap: number;
}

const FULL: Plan = {
  budgetMs: 540_000, // leaves a minute for the phase under way, settling and shutdown
  warmup: { ratePerS: 20, durationMs: 10_000 },
  idleOrders: 30,
  stepMs: 12_000,
  graceMs: 10_000,
  settleMs: 45_000,
  ladder: DEFAULT_LADDER,
  refine: true,
  maxSteps: 12,
  halfLoadMs: 20_000,
  mixStartFactor: 0.6,
  mixMaxSteps: 5,
  bare: { warmupMs: 5_000, idleOrders: 20, maxSteps: 12 },
  direct: { concurrency: [1, 4, 16, 32], durationMs: 8_000 },
  drainEvents: 20_000,
  drainTargetS: 10,
  inflightCap: 2_000,
};

const QUICK: Plan = {
  budgetMs: 105_000, // CI: the whole run stays around 2 minutes (four searches since the hot SKU's)
  warmup: { ratePerS: 10, durationMs: 3_000 },
  idleOrders: 8,
  stepMs: 3_000,
  graceMs: 4_000,
  settleMs: 10_000,
  ladder: [10, 25, 50, 100, 200, 400],
  refine: false,
  maxSteps: 5,
  halfLoadMs: 5_000,
  mixStartFactor: 1,
  mixMaxSteps: 1,
  bare: { warmupMs: 2_000, idleOrders: 5, maxSteps: 5 },
  direct: { concurrency: [1, 16], durationMs: 2_000 },
  drainEvents: 5_000,
  drainTargetS: 3,
  inflightCap: 1_000,
};

export interface BenchConfig {
  mode: 'quick' | 'full';
  plan: Plan;
  bounds: SaturationBounds;
  outDir: string;
  /** Keep the temporary data directory (logs, databases) even after a clean run. */
  keepData: boolean;
  /** Only rewrite the .md and .svg of this result file; run nothing. */
  render?: string;
  /** Only print these two result files side by side; run nothing. */
  compare?: [string, string];
  /** both: one run on each engine, one after the other, then the two side by side. */
  engine: Engine | 'both';
  /** Seeds the PRNG that draws each order's lines (--seed, else SEED, else a fixed default). */
  seed: number;
  external: { databaseUrl?: string; temporalAddress?: string; temporalUiUrl?: string; natsUrl?: string };
  /** TLS / API key for the bench's own Temporal connections (the address comes from the stack). */
  temporal: Omit<TemporalConnectionConfig, 'address'>;
  /**
   * Payload encryption keys of the bench's own clients and workers; the children get the
   * same through childEnv. PAYLOAD_ENCRYPTION_KEYS, else one generated for the run (the
   * bench measures what production runs), none with PAYLOAD_ENCRYPTION=off.
   */
  encryptionKeys: EncryptionKey[] | undefined;
  /** The first of API_TOKENS, sent as a bearer token when the API requires one. */
  apiToken?: string;
  logLevel: string;
  /**
   * What the api, worker and relay get (plus the endpoints): the caller's environment, with
   * the API's per-caller rate limit lifted unless the caller set one (the bench is a single
   * caller; it measures the saga, not the limiter).
   */
  childEnv: NodeJS.ProcessEnv;
  /** The saga worker's settings, which the bare baseline's workers copy. */
  worker: {
    maxConcurrentActivities: number;
    maxConcurrentWorkflowTasks: number;
    dbPoolSize: number;
    slowPaymentMs: number;
    /** The payments bulkhead's worker: activity slots and task-queue rate (0 = no limit). */
    paymentMaxConcurrentActivities: number;
    paymentMaxActivitiesPerSecond: number;
  };
  relay: Pick<
    RelayConfig,
    'batchSize' | 'pollIntervalMs' | 'maxAttempts' | 'retentionMs' | 'duplicateWindowMs'
  >;
}

export const USAGE =
  'usage: npm run bench [-- --quick] [-- --engine dev|cluster|both] [-- --seed <n>] [-- --out <dir>]\n' +
  '                     [-- --p99-bound-ms <ms>] [-- --keep-data]\n' +
  '       npm run bench -- --render <result.json>\n' +
  '       npm run bench -- --compare <a.json> <b.json>';

const DEFAULT_OUT_DIR = path.resolve(__dirname, 'results');
/** The largest RATE_LIMIT_MAX the API accepts. */
const BENCH_RATE_LIMIT_MAX = '1000000';

// The worker's and relay's own config loaders give the exact defaults and validation the
// child processes will apply; the endpoints are not known yet, so stand-ins fill them.
const STAND_INS: Env = {
  DATABASE_URL: 'postgres://stand-in@127.0.0.1:5432/orders',
  TEMPORAL_ADDRESS: '127.0.0.1:7233',
  NATS_URL: 'nats://127.0.0.1:4222',
};

export function loadBenchConfig(argv: string[], env: Env): BenchConfig {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      'p99-bound-ms': { type: 'string' },
      'keep-data': { type: 'boolean', default: false },
      render: { type: 'string' },
      compare: { type: 'string' },
      engine: { type: 'string', default: 'dev' },
      seed: { type: 'string' },
    },
  });
  const compareWith = positionals[0];
  if (values.compare !== undefined ? positionals.length !== 1 : positionals.length > 0) {
    throw new ConfigError(
      values.compare !== undefined ? '--compare' : 'arguments',
      values.compare !== undefined
        ? 'takes two result files: --compare <a.json> <b.json>'
        : `unexpected ${positionals.join(' ')}`,
    );
  }
  const engine = values.engine ?? 'dev';
  if (!isEngine(engine) && engine !== 'both') {
    throw new ConfigError('--engine', `must be one of ${ENGINES.join(', ')} or both, got "${engine}"`);
  }
  let seed: number;
  try {
    seed = chooseSeed(values.seed ?? optionalString(env, 'SEED'));
  } catch (error) {
    throw new ConfigError(values.seed !== undefined ? '--seed' : 'SEED', (error as Error).message);
  }
  const bound = values['p99-bound-ms'];
  if (bound !== undefined && !/^\d+$/.test(bound)) {
    throw new ConfigError('--p99-bound-ms', `must be a whole number of milliseconds, got "${bound}"`);
  }
  const temporalAddress = optionalString(env, 'TEMPORAL_ADDRESS') && hostPort(env, 'TEMPORAL_ADDRESS');
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres', 'postgresql'], true);
  const temporalUiUrl = url(env, 'TEMPORAL_UI_URL', ['http', 'https'], true);
  const natsUrl = url(env, 'NATS_URL', ['nats', 'tls'], true);
  const given = stripEmpty(env);
  const encryption: Env =
    given[KEYS_VARIABLE] === undefined && given[SWITCH_VARIABLE] !== 'off'
      ? { [KEYS_VARIABLE]: generateEncryptionKey('bench') }
      : {};
  const withStandIns = { ...STAND_INS, ...encryption, ...given };
  const { keys: encryptionKeys } = loadPayloadEncryption(withStandIns, { required: true });
  const worker = loadWorkerConfig(withStandIns);
  const relay = loadRelayConfig(withStandIns);
  const apiToken = list(env, 'API_TOKENS')[0];
  const quick = values.quick ?? false;
  return {
    mode: quick ? 'quick' : 'full',
    plan: quick ? QUICK : FULL,
    bounds: { ...DEFAULT_BOUNDS, ...(bound !== undefined ? { sagaP99Ms: Number(bound) } : {}) },
    outDir: values.out ? path.resolve(values.out) : DEFAULT_OUT_DIR,
    keepData: values['keep-data'] ?? false,
    ...(values.render ? { render: path.resolve(values.render) } : {}),
    ...(values.compare !== undefined && compareWith !== undefined
      ? { compare: [path.resolve(values.compare), path.resolve(compareWith)] as [string, string] }
      : {}),
    engine,
    seed,
    external: {
      ...(databaseUrl ? { databaseUrl } : {}),
      ...(temporalAddress ? { temporalAddress } : {}),
      ...(temporalUiUrl ? { temporalUiUrl } : {}),
      ...(natsUrl ? { natsUrl } : {}),
    },
    temporal: withoutAddress(loadTemporalConnection(withStandIns)),
    encryptionKeys,
    ...(apiToken ? { apiToken } : {}),
    logLevel: logLevel(env),
    childEnv: { RATE_LIMIT_MAX: BENCH_RATE_LIMIT_MAX, ...encryption, ...given },
    worker: {
      maxConcurrentActivities: worker.maxConcurrentActivities,
      maxConcurrentWorkflowTasks: worker.maxConcurrentWorkflowTasks,
      dbPoolSize: worker.dbPoolSize,
      slowPaymentMs: worker.slowPaymentMs,
      paymentMaxConcurrentActivities: worker.payments.maxConcurrentActivities,
      paymentMaxActivitiesPerSecond: worker.payments.maxActivitiesPerSecond,
    },
    relay: {
      batchSize: relay.batchSize,
      pollIntervalMs: relay.pollIntervalMs,
      maxAttempts: relay.maxAttempts,
      retentionMs: relay.retentionMs,
      duplicateWindowMs: relay.duplicateWindowMs,
    },
  };
}

function isEngine(value: string): value is Engine {
  return (ENGINES as readonly string[]).includes(value);
}

function withoutAddress({
  address: _address,
  ...rest
}: TemporalConnectionConfig): Omit<TemporalConnectionConfig, 'address'> {
  return rest;
}

/** Unset and empty are the same to lib/env; keep stand-ins from being overridden by ''. */
function stripEmpty(env: Env): Env {
  return Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ''),
  );
}
