/**
 * The system under test on the dev engine (./engine.ts), started the way `npm start` starts
 * it: the embedded stack in a fresh temporary data directory (or the pieces given by URL),
 * migrations, the bench's catalog (lib/workload.ts) with a huge stock, then worker, relay and api as child processes (`node --import tsx …`),
 * each logging to <dataDir>/logs/<name>.log. Children are separate processes so /proc
 * can tell their CPU apart.
 *
 * One difference from `npm start`: the worker gets a workflow bundle built here, from the
 * current workflows/ (WORKFLOW_BUNDLE_PATH, as in the Docker image), instead of bundling
 * at start; the code it runs is the same, and the bench does not wait for webpack twice.
 */
import { upsertProducts } from '../../store/products';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { migrate } from '../../store/migrate';
import { createPool } from '../../store/pool';
import { choosePorts, launch, waitUntilReady, type ManagedProcess } from '../dev/processes';
import { startStack, type Stack } from '../dev/stack';
import { ensureTools } from '../dev/tools';
import { bundleWorkflows } from './bundle';
import type { BenchConfig } from './config';
import { CATALOG, catalogSkus } from './lib/workload';

const ROOT = path.resolve(__dirname, '..', '..');
const READY_TIMEOUT_MS = 120_000;
/** Enough for any run: the bench never lets stock be the limit. */
const BENCH_STOCK = 2_000_000_000;

const PROCESSES = [
  { name: 'worker', entry: 'worker/main.ts', stopTimeoutMs: 20_000 },
  { name: 'relay', entry: 'relay/main.ts', stopTimeoutMs: 10_000 },
  { name: 'api', entry: 'api/server.ts', stopTimeoutMs: 10_000 },
] as const;
export type ServiceName = (typeof PROCESSES)[number]['name'];

export interface System {
  dataDir: string;
  stack: Stack;
  apiUrl: string;
  /** Every api replica (the cluster engine has two); the load goes to each in turn. */
  apiUrls?: readonly string[];
  /** Which pieces were started here (the others came by URL: no CPU figures for them). */
  embedded: { postgres: boolean; temporal: boolean; nats: boolean };
  /** Stops one service early (the drain test stops the relay). */
  stopService(name: ServiceName): Promise<void>;
  /** Stops api, then relay and worker, then the stack. Safe to call twice. */
  stop(): Promise<void>;
}

export interface SystemHooks {
  log(line: string): void;
  /** A service died on its own: the bench must stop. */
  onServiceExit(name: ServiceName, how: string, logFile: string): void;
}

/** The data directory is created first and handed back at once, so it can be kept on failure. */
export async function createDataDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'order-saga-bench-'));
}

export async function startSystem(config: BenchConfig, dataDir: string, hooks: SystemHooks): Promise<System> {
  const tools = await ensureTools(hooks.log);
  const [stackResult, bundleResult] = await Promise.allSettled([
    startStack({ ...config.external, dataDir, tools, fresh: true, log: hooks.log }),
    buildSagaBundle(dataDir),
  ]);
  if (stackResult.status === 'rejected') throw stackResult.reason;
  const stack = stackResult.value;
  const children = new Map<ServiceName, ManagedProcess>();
  let stopping = false;
  let stopped: Promise<void> | undefined;

  const stopService = async (name: ServiceName): Promise<void> => {
    const spec = PROCESSES.find((candidate) => candidate.name === name)!;
    const child = children.get(name);
    children.delete(name);
    await child?.stop(spec.stopTimeoutMs);
  };
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      stopping = true;
      await stopService('api');
      await Promise.all([stopService('relay'), stopService('worker')]);
      await stack.stop();
    })());

  try {
    if (bundleResult.status === 'rejected') throw bundleResult.reason;
    await prepareDatabase(stack.databaseUrl);
    const [port] = await choosePorts('api', [3000], hooks.log);
    const env: NodeJS.ProcessEnv = {
      ...config.childEnv,
      DATABASE_URL: stack.databaseUrl,
      TEMPORAL_ADDRESS: stack.temporalAddress,
      TEMPORAL_UI_URL: stack.temporalUiUrl,
      NATS_URL: stack.natsUrl,
      HOST: '127.0.0.1',
      PORT: String(port),
      WORKFLOW_BUNDLE_PATH: bundleResult.value,
    };
    for (const { name, entry } of PROCESSES) {
      const child = launch({
        name,
        command: process.execPath,
        args: ['--import', 'tsx', entry],
        cwd: ROOT,
        env,
        logFile: path.join(dataDir, 'logs', `${name}.log`),
        stopSignal: 'SIGTERM',
      });
      children.set(name, child);
      void child.exited.then(({ code, signal, error }) => {
        if (stopping || children.get(name) !== child) return;
        hooks.onServiceExit(name, error ? error.message : (signal ?? `exit code ${code}`), child.logFile);
      });
    }
    const apiUrl = `http://127.0.0.1:${port}`;
    // /readyz: the API answers and reaches Postgres and Temporal.
    await waitUntilReady(children.get('api')!, () => answers(`${apiUrl}/readyz`), READY_TIMEOUT_MS);
    return {
      dataDir,
      stack,
      apiUrl,
      embedded: {
        postgres: config.external.databaseUrl === undefined,
        temporal: config.external.temporalAddress === undefined,
        nats: config.external.natsUrl === undefined,
      },
      stopService,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function buildSagaBundle(dataDir: string): Promise<string> {
  const code = await bundleWorkflows(require.resolve('../../workflows'));
  const file = path.join(dataDir, 'saga-workflow-bundle.js');
  await writeFile(file, code);
  return file;
}

/** Migrations, then every product of the bench's catalog and the hot SKU, one statement. */
export async function prepareDatabase(databaseUrl: string): Promise<void> {
  const pool = createPool(databaseUrl, { max: 2, applicationName: 'order-saga-bench' });
  try {
    await migrate(pool);
    const product = { name: 'Benchmark item', priceCents: 1000, available: BENCH_STOCK };
    await upsertProducts(
      pool,
      [...catalogSkus(CATALOG), CATALOG.hotSku].map((sku) => ({ sku, ...product })),
    );
  } finally {
    await pool.end();
  }
}

async function answers(target: string): Promise<boolean> {
  const response = await fetch(target, { signal: AbortSignal.timeout(2_000) });
  return response.status === 200;
}
