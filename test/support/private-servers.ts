/**
 * A Postgres and a Temporal dev server of a test's own, which it may stop and start again
 * on the same port (the shared test stack must never go down under the other tests).
 * Both run as tools/dev/stack.ts runs them: launch() with a log file and a parent-death
 * signal; Postgres from tools/dev/postgres.ts (as user postgres when we are root), Temporal
 * from the pinned CLI (tools/dev/tools.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { launchPostgres, pgAnswers, prepareCluster } from '../../tools/dev/postgres';
import { launch, waitUntilReady, type ManagedProcess } from '../../tools/dev/processes';
import { temporalAnswers } from '../../tools/dev/stack';
import { devServerDynamicConfigFlags } from '../../tools/dev/temporal-tuning';
import { ensureTools } from '../../tools/dev/tools';
import { SEARCH_ATTRIBUTES } from '../../contracts/index';
import { freePort } from './service-process';

const READY_TIMEOUT_MS = 90_000;

export interface RestartableServer {
  /** Starts it (again) on the same port and data; resolves once it answers. */
  start(): Promise<void>;
  /** Stops it (gracefully, then SIGKILL); resolves once it is gone. */
  stop(): Promise<void>;
}

export interface PrivatePostgres extends RestartableServer {
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  urlFor(database: string): string;
  /** Stalls every Postgres process (SIGSTOP): connections hang, none fails. */
  pause(): void;
  /** Lets a paused Postgres go on (SIGCONT). */
  resume(): void;
}

/**
 * Signals the server and every process it forked: Postgres backends each run in a session of
 * their own (setsid), so a process-group signal would miss them.
 */
function signalTree(server: ManagedProcess | undefined, signal: NodeJS.Signals): void {
  if (server?.pid === undefined) throw new Error('the server is not running');
  const children = readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        // The parent pid is the 2nd field after the parenthesised command name.
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === server.pid;
      } catch {
        return false; // gone meanwhile
      }
    });
  for (const pid of [server.pid, ...children.map(Number)]) process.kill(pid, signal);
}

/** A fresh cluster under `dir`, started. */
export async function startPrivatePostgres(dir: string): Promise<PrivatePostgres> {
  const cluster = await prepareCluster(path.join(dir, 'postgres'), {
    logFile: path.join(dir, 'postgres.log'),
    ephemeral: true,
  });
  const port = await freePort();
  const urlFor = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  let server: ManagedProcess | undefined;
  const start = async () => {
    server = launchPostgres(cluster, port, { fsync: 'off', synchronous_commit: 'off' });
    await waitUntilReady(server, () => pgAnswers(urlFor('postgres')), READY_TIMEOUT_MS);
  };
  await start();
  return {
    urlFor,
    start,
    stop: async () => void (await server?.stop()),
    pause: () => signalTree(server, 'SIGSTOP'),
    resume: () => signalTree(server, 'SIGCONT'),
  };
}

/** A Temporal dev server with the saga's search attributes, its data in `dir`, started. */
export async function startPrivateTemporal(dir: string): Promise<RestartableServer & { address: string }> {
  const { temporal } = await ensureTools(() => undefined);
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  // prettier-ignore
  const args = ['server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(port),
    '--db-filename', path.join(dir, 'temporal.db'), '--namespace', 'default', '--log-level', 'warn',
    ...devServerDynamicConfigFlags(),
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([key, type]) => ['--search-attribute', `${key}=${type}`])];
  let server: ManagedProcess | undefined;
  const start = async () => {
    server = launch({
      name: 'temporal',
      command: temporal,
      args,
      logFile: path.join(dir, 'temporal.log'),
      stopSignal: 'SIGTERM',
      // The CLI reads TEMPORAL_* variables as flag defaults: none of ours.
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
    });
    await waitUntilReady(server, () => temporalAnswers(address), READY_TIMEOUT_MS);
  };
  await start();
  return { address, start, stop: async () => void (await server?.stop()) };
}
