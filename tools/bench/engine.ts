/**
 * The engine the bench runs against (`--engine dev|cluster`): one function that takes the
 * engine and returns the started system the bench drives. `dev` is today's system
 * (./system.ts: the dev stack of `npm start` plus one api, worker and relay). `cluster`
 * is the production topology (./cluster-system.ts over tools/dev/cluster-stack.ts: the
 * Temporal server on Postgres, three NATS nodes, two each of api/worker/relay).
 */
import { startClusterSystem } from './cluster-system';
import type { BenchConfig, Engine } from './config';
import { startSystem, type System, type SystemHooks } from './system';

/** Starts the system the bench measures, in its data directory. */
export type StartSystem = (config: BenchConfig, dataDir: string, hooks: SystemHooks) => Promise<System>;

export class EngineUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineUnavailable';
  }
}

/** How to start the given engine. */
export function resolveEngine(engine: Engine): Promise<StartSystem> {
  return Promise.resolve(engine === 'dev' ? startSystem : startClusterSystem);
}
