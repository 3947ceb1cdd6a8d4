/**
 * `npm run test:chaos [-- --reduced] [-- --drills a,b] [-- --seed N|random] [-- --keep] [-- --engine dev|cluster]`
 * `npm run test:chaos -- --soak [--minutes N] [--rate R]`
 *
 * `--engine cluster` runs the cluster's drills (tools/chaos/cluster-drills.ts) with the same
 * load and invariants against the production topology (tools/chaos/cluster-engine.ts:
 * the Temporal server on Postgres, three NATS nodes, two each of api, worker and relay);
 * the default `dev` engine is described below.
 *
 * Starts its own stack (Postgres, Temporal dev server, NATS) on fresh data in a temp dir,
 * migrates, spawns api, worker and relay as child processes, then runs the drills one
 * after another (tools/chaos/drills.ts), each followed by the invariant checker, and a final
 * check over everything. Prints a table and writes report.json; exit code 1 when any
 * invariant or promise broke, 2 when the run itself could not finish.
 *
 * Everything is bounded: each wait has a deadline, the whole run a budget, and every child
 * process is stopped on the way out (also on failure, Ctrl-C, or a budget overrun).
 *
 * The seed (the order mix, the faults' moments): --seed, else the SEED environment variable,
 * else a fixed default (tools/fixtures/seed.ts); `random` asks for a fresh one. It is printed
 * at the start and in the report, so any run can be replayed.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { DefaultLogger, bundleWorkflowCode } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import { migrate } from '../../store/migrate';
import { createPool, type Pool } from '../../store/pool';
import { choosePorts } from '../dev/processes';
import { ensureClusterTools, ensureTools } from '../dev/tools';
import { ensureOrdersStream } from '../../relay/stream';
import { DRILLS, FULL, REDUCED, finalCheck, type DrillEnv, type DrillResult, type Mode } from './drills';
import { CLUSTER_DRILLS, CLUSTER_FULL, CLUSTER_REDUCED } from './cluster-drills';
import { startClusterEngine, type ClusterEngine } from './cluster-engine';
import { Fleet } from './fleet';
import type { Violation } from './invariants';
import { chooseSeed } from '../fixtures/seed';
import { ApiClient, DENIED_CUSTOMER, seededRng } from './load';
import type { ServiceName } from './services';
import { runSoak, type SoakResult } from './soak';
import { startChaosStack, type ChaosStack } from './stack';
import { generateEncryptionKey, workflowBundleConverters } from '../../lib/payload-codec';

const ROOT = path.resolve(__dirname, '..', '..');

const ENGINES = ['dev', 'cluster'] as const;
type Engine = (typeof ENGINES)[number];

/** A bad command line: said in one line, no stack. */
class UsageError extends Error {}

interface RunConfig {
  engine: Engine;
  mode: Mode;
  drills: string[];
  seed: number;
  keep: boolean;
  /** ratePerS undefined: half the saturation rate of the latest `npm run bench` result. */
  soak: { minutes: number; ratePerS: number | undefined } | undefined;
  out: string | undefined;
}

function loadConfig(argv: string[]): RunConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      reduced: { type: 'boolean', default: false },
      drills: { type: 'string' },
      seed: { type: 'string' },
      keep: { type: 'boolean', default: false },
      soak: { type: 'boolean', default: false },
      minutes: { type: 'string', default: '10' },
      rate: { type: 'string' },
      out: { type: 'string' },
      engine: { type: 'string', default: 'dev' },
    },
  });
  const engine = values.engine as Engine;
  if (!ENGINES.includes(engine))
    throw new UsageError(
      `--engine must be one of ${ENGINES.join(', ')} (got ${JSON.stringify(values.engine)})`,
    );
  if (engine === 'cluster' && values.soak) throw new UsageError('--soak runs on the dev engine only');
  const catalog = engine === 'cluster' ? CLUSTER_DRILLS : DRILLS;
  const number = (name: string, text: string, min: number, max: number): number => {
    const value = Number(text);
    if (!Number.isFinite(value) || value < min || value > max)
      throw new UsageError(`--${name} must be a number in ${min}..${max}`);
    return value;
  };
  const drills = values.drills ? values.drills.split(',').map((name) => name.trim()) : Object.keys(catalog);
  const unknown = drills.filter((name) => !(name in catalog));
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown ${engine} drill(s) ${unknown.join(', ')}; known: ${Object.keys(catalog).join(', ')}`,
    );
  }
  return {
    engine,
    mode:
      engine === 'cluster'
        ? values.reduced
          ? CLUSTER_REDUCED
          : CLUSTER_FULL
        : values.reduced
          ? REDUCED
          : FULL,
    drills,
    seed: chooseSeed(values.seed ?? process.env.SEED),
    keep: values.keep ?? false,
    soak: values.soak
      ? {
          minutes: number('minutes', values.minutes ?? '10', 0.5, 120),
          ratePerS: values.rate === undefined ? undefined : number('rate', values.rate, 0.1, 1_000),
        }
      : undefined,
    out: values.out,
  };
}

const started = Date.now();
const log = (line: string): void => {
  process.stderr.write(`[chaos ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
};

/** What has to be undone on the way out, in reverse order of acquisition. */
const resources: {
  stack?: ChaosStack;
  fleet?: Fleet;
  cluster?: ClusterEngine;
  pool?: Pool;
  nats?: NatsConnection;
  temporal?: Connection;
  dataDir?: string;
  keepData: boolean;
} = { keepData: true };
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await resources.fleet?.close().catch(() => undefined);
    resources.cluster?.services.close();
    await resources.nats?.close().catch(() => undefined);
    await resources.temporal?.close().catch(() => undefined);
    await resources.pool?.end().catch(() => undefined);
    await resources.stack?.stop().catch(() => undefined);
    await resources.cluster?.cluster.stop().catch(() => undefined);
    if (resources.dataDir && !resources.keepData)
      await rm(resources.dataDir, { recursive: true, force: true });
    else if (resources.dataDir) log(`data and logs kept in ${resources.dataDir}`);
  })();
  return cleaning;
}

async function main(): Promise<number> {
  const config = loadConfig(process.argv.slice(2));
  // Budget for the whole run: generous, but a hung run still ends by itself.
  const budgetMs = config.soak
    ? config.soak.minutes * 60_000 + 15 * 60_000
    : config.drills.length * (config.mode.name === 'full' ? 8 * 60_000 : 3 * 60_000) + 10 * 60_000;
  const watchdog = setTimeout(() => {
    log(`!! the run exceeded its budget of ${Math.round(budgetMs / 60_000)} min; stopping`);
    void cleanup().finally(() => process.exit(2));
  }, budgetMs);
  watchdog.unref();

  log(
    `${config.engine === 'cluster' ? 'engine cluster, ' : ''}mode ${config.soak ? 'soak' : config.mode.name}, seed ${config.seed}`,
  );
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-chaos-'));
  await chmod(dataDir, 0o755); // Postgres runs as user postgres and must enter it
  resources.dataDir = dataDir;
  log(`data in ${dataDir}`);
  const drillEnv =
    config.engine === 'cluster' ? await clusterDrillEnv(config, dataDir) : await devDrillEnv(config, dataDir);

  if (config.soak) {
    const ratePerS = config.soak.ratePerS ?? (await halfSaturationRate());
    const result = await runSoak(drillEnv, { minutes: config.soak.minutes, ratePerS });
    printSoak(result);
    await writeReport(config, dataDir, { seed: config.seed, soak: result });
    resources.keepData = config.keep || !result.pass;
    return result.pass ? 0 : 1;
  }

  const drills = config.engine === 'cluster' ? CLUSTER_DRILLS : DRILLS;
  const runSince = new Date(Date.now() - 5_000);
  const results: DrillResult[] = [];
  for (const name of config.drills) {
    const result = await drills[name]!(drillEnv);
    results.push(result);
    log(
      `drill ${name}: ${result.violations.length} violation(s), ${result.findings.length} finding(s), ` +
        `recovered in ${result.recoveryMs === null ? '—' : `${(result.recoveryMs / 1000).toFixed(1)} s`}`,
    );
  }
  const final = await finalCheck(drillEnv, results, runSince);
  printTable(config, results, final);
  await writeReport(config, dataDir, {
    seed: config.seed,
    ...(config.engine === 'cluster' ? { engine: config.engine } : {}),
    mode: config.mode,
    drills: results,
    final,
  });
  const failed =
    final.length > 0 ||
    results.some((result) => !result.settled || result.violations.length > 0 || result.findings.length > 0);
  resources.keepData = config.keep || failed;
  return failed ? 1 : 0;
}

/** The dev engine: tools/chaos/stack.ts' Postgres, Temporal dev server and NATS, and one api, worker and relay. */
async function devDrillEnv(config: RunConfig, dataDir: string): Promise<DrillEnv> {
  const tools = await ensureTools((line) => log(line));
  const bundlePath = path.join(dataDir, 'workflow-bundle.js');
  const [stack] = await Promise.all([
    startChaosStack({ dataDir, tools, log }).then((s) => (resources.stack = s)),
    bundleWorkflowCode({
      workflowsPath: path.join(ROOT, 'workflows', 'index.ts'),
      logger: new DefaultLogger('WARN'),
      ...workflowBundleConverters,
    }).then(({ code }) => writeFile(bundlePath, code)),
  ]);
  log(`stack up: ${stack.databaseUrl} · ${stack.temporalAddress} · ${stack.natsUrl}`);

  const pool = createPool(stack.databaseUrl, { max: 4, applicationName: 'order-saga-chaos' });
  resources.pool = pool;
  await migrate(pool);
  const nats = (await connect({
    servers: stack.natsUrl,
    name: 'order-saga-chaos',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  })) as NatsConnection;
  resources.nats = nats;
  await ensureOrdersStream(await jetstreamManager(nats));

  const [apiPort] = await choosePorts('api', [0]);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const base: NodeJS.ProcessEnv = {
    ...Object.fromEntries(
      ['PATH', 'HOME', 'TMPDIR'].flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
    ),
    DATABASE_URL: stack.databaseUrl,
    TEMPORAL_ADDRESS: stack.temporalAddress,
    TEMPORAL_UI_URL: stack.temporalUiUrl,
    NATS_URL: stack.natsUrl,
    LOG_LEVEL: 'info',
    PAYLOAD_ENCRYPTION_KEYS: process.env.PAYLOAD_ENCRYPTION_KEYS ?? generateEncryptionKey('chaos'),
  };
  const env: Record<ServiceName, NodeJS.ProcessEnv> = {
    // The drills are one client at a high rate: the per-caller rate limit would refuse most of it.
    api: { ...base, PORT: String(apiPort), HOST: '127.0.0.1', RATE_LIMIT_MAX: '1000000' },
    worker: { ...base, WORKFLOW_BUNDLE_PATH: bundlePath, FRAUD_DENY_LIST: DENIED_CUSTOMER },
    relay: { ...base },
  };
  const fleet = new Fleet({ logsDir: stack.logsDir, env, apiUrl, log });
  resources.fleet = fleet;
  await Promise.all([fleet.start('worker'), fleet.start('relay'), fleet.start('api')]);
  log(`api ${apiUrl}, worker and relay running`);

  const temporalConnection = await Connection.connect({ address: stack.temporalAddress });
  resources.temporal = temporalConnection;
  const drillEnv: DrillEnv = {
    stack,
    temporal: new Client({ connection: temporalConnection }),
    fleet,
    pool,
    nats,
    api: new ApiClient(apiUrl),
    rng: seededRng(config.seed),
    mode: config.mode,
    runId: randomUUID().slice(0, 6),
    log,
  };

  return drillEnv;
}

/**
 * The cluster engine: tools/dev/cluster-stack.ts' production topology on fresh data, its
 * NATS clients on every node, the load spread over both apis.
 */
async function clusterDrillEnv(config: RunConfig, dataDir: string): Promise<DrillEnv> {
  const tools = await ensureClusterTools((line) => log(line));
  const engine = await startClusterEngine({
    dataDir,
    tools,
    encryptionKeys: process.env.PAYLOAD_ENCRYPTION_KEYS ?? generateEncryptionKey('chaos'),
    // Each service reads only its own: the apis the rate limit (the drills are one client
    // at a high rate), the workers the fraud deny list.
    serviceEnv: { LOG_LEVEL: 'info', RATE_LIMIT_MAX: '1000000', FRAUD_DENY_LIST: DENIED_CUSTOMER },
    log,
  });
  resources.cluster = engine;
  const { cluster } = engine;
  log(
    `cluster up: ${cluster.databaseUrl} · ${cluster.temporalAddress} · ${cluster.natsUrl} · ${cluster.apiUrls.join(', ')}`,
  );
  const pool = createPool(cluster.databaseUrl, { max: 4, applicationName: 'order-saga-chaos' });
  resources.pool = pool;
  const nats = (await connect({
    servers: cluster.natsUrls,
    name: 'order-saga-chaos',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  })) as NatsConnection;
  resources.nats = nats;
  const temporalConnection = await Connection.connect({ address: cluster.temporalAddress });
  resources.temporal = temporalConnection;
  return {
    stack: engine.stack,
    temporal: new Client({ connection: temporalConnection }),
    fleet: engine.services,
    pool,
    nats,
    api: new ApiClient(cluster.apiUrls),
    rng: seededRng(config.seed),
    mode: config.mode,
    runId: randomUUID().slice(0, 6),
    log,
  };
}

/**
 * Half the saturation rate, as the latest `npm run bench` result (tools/bench/results/*.json)
 * measured it (its `half.offeredPerS`); 5/s when there is none.
 */
async function halfSaturationRate(): Promise<number> {
  const dir = path.join(ROOT, 'tools', 'bench', 'results');
  const latest = (await readdir(dir).catch(() => [] as string[]))
    .filter((name) => name.endsWith('.json'))
    .sort()
    .pop();
  if (latest) {
    const result = JSON.parse(await readFile(path.join(dir, latest), 'utf8')) as {
      half?: { offeredPerS?: unknown };
    };
    const rate = result.half?.offeredPerS;
    if (typeof rate === 'number' && rate > 0) {
      log(`soak rate ${rate}/s: half the saturation rate of tools/bench/results/${latest}`);
      return rate;
    }
  }
  log('soak rate 5/s: no benchmark result in tools/bench/results (pass --rate, or run npm run bench first)');
  return 5;
}

const seconds = (ms: number | null): string => (ms === null ? '—' : `${(ms / 1000).toFixed(1)} s`);

function summarize(violations: readonly Violation[]): string {
  if (violations.length === 0) return 'pass';
  const kinds = [...new Set(violations.map((v) => v.invariant))];
  return `FAIL ${violations.length} (${kinds.join(', ')})`;
}

function printTable(config: RunConfig, results: readonly DrillResult[], final: readonly Violation[]): void {
  const rows = results.map((r) => [
    r.drill,
    `${r.accepted}/${r.sagas}`,
    r.inFlightAtFault === null ? '—' : String(r.inFlightAtFault),
    r.settled ? seconds(r.recoveryMs) : 'NOT SETTLED',
    summarize(r.violations),
    r.findings.length === 0 ? 'none' : `${r.findings.length}`,
    String(r.unexpectedOutcomes.length),
  ]);
  const header = [
    'drill',
    'sagas (accepted/placed)',
    'in flight at fault',
    'time to recover',
    'invariants',
    'findings',
    'unexpected outcomes',
  ];
  const lines = [
    `\nchaos run (${config.engine === 'cluster' ? 'cluster, ' : ''}${config.mode.name}, seed ${config.seed})\n`,
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
    `| whole run | ${results.reduce((n, r) => n + r.accepted, 0)} | — | — | ${summarize(final)} | — | — |`,
    '',
  ];
  for (const r of results) {
    lines.push(
      `${r.drill} (${seconds(r.durationMs)}): HTTP ${Object.entries(r.statuses)
        .map(([s, n]) => `${s}×${n}`)
        .join(' ')}`,
    );
    for (const note of r.notes) lines.push(`  · ${note}`);
    for (const finding of r.findings) lines.push(`  !! ${finding}`);
    for (const v of r.violations.slice(0, 20)) lines.push(`  ✗ ${v.invariant} ${v.subject}: ${v.detail}`);
    if (r.violations.length > 20)
      lines.push(`  … ${r.violations.length - 20} more violations in report.json`);
    if (r.unexpectedOutcomes.length > 0) {
      lines.push(
        `  ? ${r.unexpectedOutcomes.length} unexpected outcome(s): ${r.unexpectedOutcomes.slice(0, 5).join('; ')}`,
      );
    }
  }
  for (const v of final.slice(0, 20)) lines.push(`  ✗ whole run: ${v.invariant} ${v.subject}: ${v.detail}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

function printSoak(result: SoakResult): void {
  const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;
  const lines = [
    `\nsoak: ${result.minutes} min at ${result.ratePerS}/s (achieved ${result.achievedRatePerS}/s, ${result.accepted} orders), warm-up ${result.warmupS} s\n`,
    '| process | RSS after warm-up | RSS at the end | max RSS | max growth | within 10 % |',
    '| --- | --- | --- | --- | --- | --- |',
    ...result.rss.map(
      (r) =>
        `| ${r.service} | ${mib(r.afterWarmupKiB)} | ${mib(r.lastKiB)} | ${mib(r.maxKiB)} | ${r.maxGrowthPct} % | ${r.pass ? 'yes' : 'NO'} |`,
    ),
    '',
    `outbox backlog after warm-up: max ${result.outbox.maxPendingAfterWarmup}, mean first third ${result.outbox.firstThirdMean}, last third ${result.outbox.lastThirdMean} → ${result.outbox.pass ? 'not growing' : 'GROWING'}`,
    `settled: ${result.settled}; invariants: ${summarize(result.violations)}; findings: ${result.findings.length === 0 ? 'none' : result.findings.join('; ')}`,
    `soak ${result.pass ? 'PASSED' : 'FAILED'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function writeReport(config: RunConfig, dataDir: string, report: unknown): Promise<void> {
  const file = config.out ?? path.join(dataDir, 'report.json');
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  log(`report written to ${file}`);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    log(`${signal}: stopping`);
    void cleanup().finally(() => process.exit(130));
  });
}

main()
  .then(
    async (code) => {
      await cleanup();
      process.exit(code);
    },
    async (error: unknown) => {
      if (error instanceof UsageError) process.stderr.write(`test:chaos: ${error.message}\n`);
      else log(`run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      await cleanup();
      process.exit(2);
    },
  )
  .catch(() => process.exit(2));
