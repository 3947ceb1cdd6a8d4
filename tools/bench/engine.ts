/**
 * The engine the bench runs against (`--engine dev|cluster`): one function that takes the
 * engine and returns the started system the bench drives. `dev` is today's system
 * (./system.ts: the dev stack of `npm start` plus one api, worker and relay). `cluster`
 * is the production topology (tools/dev/cluster.ts: Temporal server on Postgres, three NATS
 * nodes, two each of api/worker/relay); until that module exports CLUSTER_EXPORT, asking
 * for it fails with one line before anything starts.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { BenchConfig, Engine } from './config';
import { startSystem, type System, type SystemHooks } from './system';

/** Starts the system the bench measures, in its data directory. */
export type StartSystem = (config: BenchConfig, dataDir: string, hooks: SystemHooks) => Promise<System>;

/** The module and export the cluster engine comes from. */
const CLUSTER_MODULE = path.resolve(__dirname, '..', 'dev', 'cluster.ts');
export const CLUSTER_EXPORT = 'startBenchCluster';

export class EngineUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineUnavailable';
  }
}

/**
 * How to start the given engine; throws EngineUnavailable when it cannot be run here. Called
 * before anything starts, so an unavailable engine costs nothing.
 *
 * The cluster module is expected to export `startBenchCluster(config, dataDir, hooks)`
 * returning a System (./system.ts): its endpoints, the api URL the bench posts to, which
 * pieces it started (for CPU per process), stopService('relay') for the drain test, stop().
 */
export async function resolveEngine(engine: Engine): Promise<StartSystem> {
  if (engine === 'dev') return startSystem;
  const exists = await access(CLUSTER_MODULE).then(
    () => true,
    () => false,
  );
  // A path computed at run time: the module may not exist yet, and tsc must not resolve it.
  const loaded = exists ? ((await import(CLUSTER_MODULE)) as Record<string, unknown>) : {};
  const start = loaded[CLUSTER_EXPORT];
  if (typeof start !== 'function') throw new EngineUnavailable('cluster engine not available yet');
  return start as StartSystem;
}
