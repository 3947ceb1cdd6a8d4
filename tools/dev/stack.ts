/**
 * The local stack behind `npm start` and the integration tests: an embedded Postgres, the
 * Temporal dev server (with its Web UI) and NATS JetStream. Each piece is started only when
 * no URL is given for it; an embedded one whose usual port is taken moves to a free port.
 *
 * Children write to `<dataDir>/logs/<name>.log`, never to the console, run in their own
 * process group (so a Ctrl-C at the terminal reaches only the parent, which stops things in
 * order) and are signalled when the parent exits, even when it is killed outright.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../../contracts/index';
import { createDatabaseIfMissing, launchPostgres, pgAnswers, prepareCluster } from './postgres';
import { choosePorts, launch, waitUntilReady, type ManagedProcess } from './processes';
import { devServerDynamicConfigFlags } from './temporal-tuning';
import type { Tools } from './tools';

export interface StackOptions {
  /** Everything persistent lives here: postgres/, temporal.db, nats/, logs/. */
  dataDir: string;
  tools: Tools;
  /** Given → that piece is used as is instead of starting the embedded one. */
  databaseUrl?: string;
  temporalAddress?: string;
  temporalUiUrl?: string;
  natsUrl?: string;
  /** The Web UI decodes payloads with this remote codec (the API's /codec), for every user. */
  uiCodecEndpoint?: string;
  /** Throw-away data (tests): Postgres skips fsync and friends. */
  ephemeral?: boolean;
  /** Start from empty data: what an earlier run left in dataDir is removed first. */
  fresh?: boolean;
  readyTimeoutMs?: number;
  /** Progress notes (a port moved, a permission granted); silent when absent. */
  log?: (line: string) => void;
}

export interface Stack {
  /** postgres://postgres@127.0.0.1:<port>/orders for the embedded one; never a password. */
  databaseUrl: string;
  temporalAddress: string;
  temporalUiUrl: string;
  natsUrl: string;
  /** Stops what this stack started (gracefully, then SIGKILL); safe to call twice. */
  stop(): Promise<void>;
}

export const DEFAULT_PORTS = { postgres: 5432, temporal: 7233, temporalUi: 8233, nats: 4222 } as const;
const DEFAULT_READY_TIMEOUT_MS = 90_000;
const NAMESPACE = 'default';

interface Piece<T> {
  endpoints: T;
  stop(): Promise<void>;
}

interface Context {
  options: StackOptions;
  logsDir: string;
  readyTimeoutMs: number;
  log: (line: string) => void;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const logsDir = path.join(options.dataDir, 'logs');
  await mkdir(logsDir, { recursive: true });
  const unlock = await lockDataDir(options.dataDir);
  if (options.fresh) await removeData(options.dataDir);
  const context: Context = {
    options,
    logsDir,
    readyTimeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    log: options.log ?? (() => undefined),
  };
  // The three are independent: start them side by side, and if one fails stop the others.
  const [postgres, temporal, nats] = await Promise.allSettled([
    options.databaseUrl ? external(options.databaseUrl) : startPostgres(context),
    options.temporalAddress ? useExternalTemporal(context, options.temporalAddress) : startTemporal(context),
    options.natsUrl ? external(options.natsUrl) : startNats(context),
  ]);
  if (postgres.status === 'rejected' || temporal.status === 'rejected' || nats.status === 'rejected') {
    const started = [postgres, temporal, nats].flatMap((piece) =>
      piece.status === 'fulfilled' ? [piece.value] : [],
    );
    await Promise.all(started.map((piece) => piece.stop()));
    await unlock();
    const failures = [postgres, temporal, nats].flatMap((piece) =>
      piece.status === 'rejected' ? [errorMessage(piece.reason)] : [],
    );
    throw new Error(failures.join('\n'));
  }
  let stopping: Promise<void> | undefined;
  return {
    databaseUrl: postgres.value.endpoints,
    temporalAddress: temporal.value.endpoints.address,
    temporalUiUrl: temporal.value.endpoints.uiUrl,
    natsUrl: nats.value.endpoints,
    stop: () =>
      (stopping ??= Promise.all([postgres.value.stop(), temporal.value.stop(), nats.value.stop()]).then(
        unlock,
      )),
  };
}

/**
 * One stack per data directory: a second one would run a Temporal server on the same
 * temporal.db and a NATS server on the same store. A lock left by a dead process is taken over.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = path.join(dataDir, 'stack.pid');
  for (;;) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx' });
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (owner > 0 && isAlive(owner)) {
        throw new Error(`${dataDir} is in use by another stack (pid ${owner}); stop that one first`);
      }
      await rm(file, { force: true });
    }
  }
}

/** Only what a stack writes (logs stay), never the directory itself: the caller owns it. */
async function removeData(dataDir: string): Promise<void> {
  const owned = ['postgres', 'postgres.initdb', 'temporal.db', 'temporal.db-wal', 'temporal.db-shm', 'nats'];
  await Promise.all(owned.map((name) => rm(path.join(dataDir, name), { recursive: true, force: true })));
}

/** Whether a process with this pid exists (signal 0; EPERM: it exists, owned by another user). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const external = <T>(endpoints: T): Promise<Piece<T>> => Promise.resolve({ endpoints, stop: async () => {} });

// ---------------------------------------------------------------------------------------
// Postgres (tools/dev/postgres.ts): persistent data unless `ephemeral`

async function startPostgres({ options, logsDir, readyTimeoutMs, log }: Context): Promise<Piece<string>> {
  const cluster = await prepareCluster(path.join(options.dataDir, 'postgres'), {
    logFile: path.join(logsDir, 'postgres.log'),
    ephemeral: options.ephemeral ?? false,
    log,
  });
  const [port] = await choosePorts('postgres', [DEFAULT_PORTS.postgres], log);
  const server = launchPostgres(cluster, port, {
    max_connections: '200', // tests run a pool per test database plus workers
    ...(options.ephemeral ? { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' } : {}),
  });
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return startedOrStopped(server, async () => {
    await waitUntilReady(server, () => pgAnswers(adminUrl), readyTimeoutMs);
    await createDatabaseIfMissing(adminUrl, 'orders');
    return `postgres://postgres@127.0.0.1:${port}/orders`;
  });
}

// ---------------------------------------------------------------------------------------
// Temporal dev server

interface TemporalEndpoints {
  address: string;
  uiUrl: string;
}

async function startTemporal({
  options,
  logsDir,
  readyTimeoutMs,
  log,
}: Context): Promise<Piece<TemporalEndpoints>> {
  const [port, uiPort] = await choosePorts(
    'temporal',
    [DEFAULT_PORTS.temporal, DEFAULT_PORTS.temporalUi],
    log,
  );
  const address = `127.0.0.1:${port}`;
  await mkdir(options.dataDir, { recursive: true });
  // prettier-ignore
  const args = [
    'server', 'start-dev',
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--ui-port', String(uiPort),
    '--db-filename', path.join(options.dataDir, 'temporal.db'),
    '--namespace', NAMESPACE,
    '--log-level', 'warn',
    // Measured by npm run bench: WAL doubles the dev server's throughput (its SQLite fsyncs
    // every commit otherwise); NORMAL can lose the last commits on an OS crash, not on a
    // process crash.
    '--sqlite-pragma', 'journal_mode=wal',
    '--sqlite-pragma', 'synchronous=normal',
    ...devServerDynamicConfigFlags(),
    ...(options.uiCodecEndpoint ? ['--ui-codec-endpoint', options.uiCodecEndpoint] : []),
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
  ];
  const server = launch({
    name: 'temporal',
    command: options.tools.temporal,
    args,
    logFile: path.join(logsDir, 'temporal.log'),
    stopSignal: 'SIGTERM',
    env: withoutTemporalSettings(process.env),
  });
  return startedOrStopped(server, async () => {
    await waitUntilReady(server, () => temporalAnswers(address), readyTimeoutMs);
    // start-dev ignores --search-attribute when temporal.db already exists: register what is missing.
    await registerSearchAttributes(options.tools.temporal, address);
    return { address, uiUrl: `http://127.0.0.1:${uiPort}` };
  });
}

async function useExternalTemporal(context: Context, address: string): Promise<Piece<TemporalEndpoints>> {
  const uiUrl = context.options.temporalUiUrl ?? `http://localhost:${DEFAULT_PORTS.temporalUi}`;
  try {
    await registerSearchAttributes(context.options.tools.temporal, address);
  } catch (error) {
    // A managed cluster may not let us (Temporal Cloud registers them elsewhere): say so, go on.
    context.log(`temporal: could not register search attributes on ${address}: ${errorMessage(error)}`);
  }
  return external({ address, uiUrl });
}

/** The frontend answers for the namespace (which is created a moment after the frontend starts). */
export async function temporalAnswers(address: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 2_000 });
  try {
    await connection.operatorService.listSearchAttributes({ namespace: NAMESPACE });
    return true;
  } finally {
    await connection.close();
  }
}

async function registerSearchAttributes(temporal: string, address: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: 5_000 });
  let existing: string[];
  try {
    const listed = await connection.operatorService.listSearchAttributes({ namespace: NAMESPACE });
    existing = Object.keys(listed.customAttributes ?? {});
  } finally {
    await connection.close();
  }
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
    if (existing.includes(name)) continue;
    const args = ['operator', 'search-attribute', 'create', '--address', address, '--namespace', NAMESPACE];
    try {
      await execFileAsync(temporal, [...args, '--name', name, '--type', type], {
        env: withoutTemporalSettings(process.env),
        timeout: 30_000,
      });
    } catch (error) {
      const output = `${(error as { stderr?: string }).stderr ?? ''} ${errorMessage(error)}`;
      if (!/already exists/i.test(output)) throw new Error(`search attribute ${name}: ${output.trim()}`);
    }
  }
}

/** The CLI reads TEMPORAL_* variables as flag defaults; the embedded server must not. */
export function withoutTemporalSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('TEMPORAL_')));
}

// ---------------------------------------------------------------------------------------
// NATS JetStream

async function startNats({ options, logsDir, readyTimeoutMs, log }: Context): Promise<Piece<string>> {
  const natsDir = path.join(options.dataDir, 'nats');
  await mkdir(natsDir, { recursive: true });
  const [port] = await choosePorts('nats', [DEFAULT_PORTS.nats], log);
  const configFile = path.join(natsDir, 'nats.conf');
  await writeFile(configFile, natsConfig(port, path.join(natsDir, 'store')));
  const server = launch({
    name: 'nats',
    command: options.tools.natsServer,
    args: ['-c', configFile],
    logFile: path.join(logsDir, 'nats.log'),
    stopSignal: 'SIGTERM',
  });
  return startedOrStopped(server, async () => {
    await waitUntilReady(server, () => natsAnswers(port), readyTimeoutMs);
    return `nats://127.0.0.1:${port}`;
  });
}

function natsConfig(port: number, storeDir: string): string {
  return [
    `listen: "127.0.0.1:${port}"`,
    'jetstream {',
    `  store_dir: ${JSON.stringify(storeDir)}`,
    // The default (fsync every 2 min) lost acknowledged writes in Jepsen's NATS 2.12 analysis.
    '  sync_interval: always',
    '}',
    '',
  ].join('\n');
}

/** A NATS server greets every client with `INFO {…}`; JetStream must be on. */
export function natsAnswers(port: number): Promise<boolean> {
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

// ---------------------------------------------------------------------------------------
// Readiness

/** Runs `ready` for a freshly launched server; if it fails, stops the server first. */
async function startedOrStopped<T>(server: ManagedProcess, ready: () => Promise<T>): Promise<Piece<T>> {
  try {
    const endpoints = await ready();
    return { endpoints, stop: async () => void (await server.stop()) };
  } catch (error) {
    await server.stop(5_000);
    throw error;
  }
}

const execFileAsync = promisify(execFile);

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));
