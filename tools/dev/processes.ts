/**
 * Free ports and child processes for everything that starts servers (tools/dev/stack.ts,
 * tools/dev/postgres.ts, tools/dev/start.ts, the chaos drills, the bench and the tests):
 * each child writes to a log file of its own, runs in its own process group (so a Ctrl-C
 * at the terminal reaches only the parent, which stops things in order) and is signalled
 * when the parent exits, even when it is killed outright.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

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
// Child processes

/** A user to run a child as (setuid), e.g. postgres when we are root. */
export interface UnixUser {
  uid: number;
  gid: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

export interface ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  /** The child's pid (setpriv execs it, so it is the program's own), e.g. for /proc reads. */
  readonly pid: number | undefined;
  /** Sends a signal to the process (not its group), e.g. SIGKILL in a drill; gone already is fine. */
  kill(signal: NodeJS.Signals): void;
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
    pid,
    kill: (signal) => {
      if (pid !== undefined && !status) signalGroup(pid, signal, false);
    },
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

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));
