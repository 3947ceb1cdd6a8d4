/**
 * The API and the worker as operators run them (`npm run api` / `npm run worker`, i.e.
 * `node --import tsx api/server.ts`, or compiled: `node dist/api/server.js` after
 * `npm run build`), as child processes of a test, configured by environment only. Started through tools/dev/stack.ts' launch(): output goes to a log file
 * of their own, and they die with the test process (parent-death signal).
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { choosePorts, launch, waitUntilReady, type ManagedProcess } from '../../tools/dev/processes';
import { TEST_ENCRYPTION_KEYS } from './encryption';

const ROOT = path.resolve(__dirname, '..', '..');
const START_TIMEOUT_MS = 60_000;

export interface ServiceProcess extends ManagedProcess {
  /** JSON lines the process wrote, parsed; throws on a line that is not JSON. */
  jsonLines(): Promise<Array<Record<string, unknown>>>;
  /** Everything this run of the process wrote. */
  output(): Promise<string>;
}

/** One free port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const [port] = await choosePorts('test', [0]);
  return port;
}

function inheritedEnv(): Record<string, string> {
  // Only what node needs, never this process' environment (TEST_*, a developer's settings).
  return Object.fromEntries(
    ['PATH', 'HOME', 'TMPDIR'].flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
  );
}

/** How a process runs: its TypeScript through tsx, or the JavaScript `npm run build` wrote to dist/. */
export interface RunAs {
  compiled?: boolean;
}

function start(
  name: 'api' | 'worker',
  entry: string,
  logDir: string,
  env: Record<string, string>,
  { compiled = false }: RunAs = {},
): ServiceProcess {
  const logFile = path.join(logDir, `${name}-${randomUUID().slice(0, 8)}.log`);
  const managed = launch({
    name,
    command: process.execPath,
    args: compiled
      ? [path.join(ROOT, 'dist', entry.replace(/\.ts$/, '.js'))]
      : ['--import', 'tsx', path.join(ROOT, entry)],
    cwd: ROOT,
    logFile,
    stopSignal: 'SIGTERM',
    env: { ...inheritedEnv(), PAYLOAD_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS, ...env },
  });
  // launch() writes one header line before the process's own output.
  const output = async () => (await readFile(logFile, 'utf8')).split(/^--- .* starting ---\n/m).pop() ?? '';
  return Object.assign(managed, {
    output,
    async jsonLines() {
      return (await output())
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => {
          try {
            return JSON.parse(line) as Record<string, unknown>;
          } catch {
            throw new Error(`${name} wrote a line that is not JSON: ${line}`);
          }
        });
    },
  });
}

/** Starts the API on a free port and waits until /healthz answers. */
export async function startApiProcess(
  logDir: string,
  env: Record<string, string>,
  runAs: RunAs = {},
): Promise<{ api: ServiceProcess; baseUrl: string }> {
  const port = await freePort();
  const api = start('api', 'api/server.ts', logDir, { HOST: '127.0.0.1', PORT: String(port), ...env }, runAs);
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitUntilReady(api, async () => (await fetch(`${baseUrl}/healthz`)).ok, START_TIMEOUT_MS);
  return { api, baseUrl };
}

/**
 * Starts a worker and waits until it logs that it polls (at info: LOG_LEVEL must let that
 * through; a worker that bundles its workflows at start takes a while). `onStart` gets the process at once, so a caller can
 * stop it even when it never gets ready.
 */
export async function startWorkerProcess(
  logDir: string,
  env: Record<string, string>,
  options: RunAs & { timeoutMs?: number; onStart?: (worker: ServiceProcess) => void } = {},
): Promise<ServiceProcess> {
  const worker = start('worker', 'worker/main.ts', logDir, env, options);
  options.onStart?.(worker);
  await waitUntilReady(
    worker,
    async () => (await worker.output()).includes('"msg":"worker started"'),
    options.timeoutMs ?? START_TIMEOUT_MS,
  );
  return worker;
}
