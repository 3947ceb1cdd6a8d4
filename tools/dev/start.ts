/**
 * `npm start`: the whole service on one machine. Gets the tools, starts the stack (data
 * under .data/), migrates, seeds a demo catalog, then runs worker, outbox relay and API as
 * child processes and prints the contract's lines once the API answers.
 *
 * Children log to .data/logs/<name>.log; the console shows only the URLs and problems.
 * Ctrl-C / SIGTERM stop the api, then relay and worker, then the stack; exit code 0.
 * A child that dies on its own stops everything, with exit code 1.
 *
 * `npm start -- --stack-only`: stack, migrations and catalog only (run the processes
 * yourself, e.g. under a debugger, with the printed URLs).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { hostPort, integer, loadOrExit, optionalString, splitUrls, url, urls, type Env } from '../../lib/env';
import { access } from 'node:fs/promises';
import { KEYS_VARIABLE, parseEncryptionKeys, SWITCH_VARIABLE } from '../../lib/payload-codec';
import { prepareDatabase } from './demo-data';
import { localEncryptionKeys } from './encryption-keys';
import { choosePorts, launch, waitUntilReady, type ManagedProcess } from './processes';
import { startStack, type Stack } from './stack';
import { ensureTools } from './tools';

const ROOT = path.resolve(__dirname, '..', '..');
const DATA_DIR = path.join(ROOT, '.data');
const LOGS_DIR = path.join(DATA_DIR, 'logs');
/** The payload encryption key `npm start` generates on first run (only when none is given). */
const KEYS_FILE = path.join(DATA_DIR, 'payload-encryption-keys');
const API_READY_TIMEOUT_MS = 120_000; // the worker bundles the workflows meanwhile, on the same cores

interface StartConfig {
  stackOnly: boolean;
  databaseUrl?: string;
  temporalAddress?: string;
  temporalUiUrl?: string;
  natsUrl?: string;
  port: number;
  host: string;
  /** PAYLOAD_ENCRYPTION_KEYS as given; undefined: the one in .data/ (generated on first run). */
  encryptionKeys?: string;
  encryptionOff: boolean;
}

function loadConfig(argv: string[], env: Env): StartConfig {
  const { values } = parseArgs({
    args: argv,
    options: { 'stack-only': { type: 'boolean', default: false } },
  });
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres', 'postgresql'], true);
  const temporalAddress = optionalString(env, 'TEMPORAL_ADDRESS') && hostPort(env, 'TEMPORAL_ADDRESS');
  const temporalUiUrl = url(env, 'TEMPORAL_UI_URL', ['http', 'https'], true);
  const natsUrl = urls(env, 'NATS_URL', ['nats', 'tls'], true);
  return {
    stackOnly: values['stack-only'] ?? false,
    ...(databaseUrl ? { databaseUrl } : {}),
    ...(temporalAddress ? { temporalAddress } : {}),
    ...(temporalUiUrl ? { temporalUiUrl } : {}),
    ...(natsUrl ? { natsUrl } : {}),
    port: integer(env, 'PORT', 3000, { min: 1, max: 65_535 }),
    host: optionalString(env, 'HOST', '127.0.0.1'),
    ...optionalKeys(env),
    encryptionOff: optionalString(env, SWITCH_VARIABLE) === 'off',
  };
}

function optionalKeys(env: Env): { encryptionKeys?: string } {
  const keys = optionalString(env, KEYS_VARIABLE);
  if (keys === undefined) return {};
  parseEncryptionKeys(keys); // a malformed value stops here, not in every child
  return { encryptionKeys: keys };
}

/** The keys every child gets (tools/dev/encryption-keys.ts): given, kept in .data/, or generated there. */
function encryptionKeysFor(config: StartConfig): Promise<string | undefined> {
  return localEncryptionKeys({
    given: config.encryptionKeys,
    off: config.encryptionOff,
    keysFile: KEYS_FILE,
    note,
  });
}

/** The production processes, in start order; they stop api first, then relay and worker. */
const PROCESSES = [
  { name: 'worker', entry: 'worker/main.ts', stopTimeoutMs: 20_000 }, // worker grace time is 10 s
  { name: 'relay', entry: 'relay/main.ts', stopTimeoutMs: 10_000 },
  { name: 'api', entry: 'api/server.ts', stopTimeoutMs: 10_000 },
] as const;
type ProcessName = (typeof PROCESSES)[number]['name'];

let stack: Stack | undefined;
const children = new Map<ProcessName, ManagedProcess>();
let shuttingDown: Promise<void> | undefined;

const note = (line: string): void => void process.stderr.write(`${line}\n`);

/** Stops api, then relay and worker, then the stack, and exits. Later calls join the first. */
function shutdown(exitCode: number, reason?: string): Promise<void> {
  shuttingDown ??= (async () => {
    if (reason) note(reason);
    const stopChild = async (name: ProcessName): Promise<void> => {
      const spec = PROCESSES.find((candidate) => candidate.name === name);
      await children.get(name)?.stop(spec?.stopTimeoutMs);
    };
    try {
      await stopChild('api');
      await Promise.all([stopChild('relay'), stopChild('worker')]);
      // Before the stack is up there is nothing to wait for: exiting signals its children.
      await stack?.stop();
    } finally {
      process.exit(exitCode);
    }
  })();
  return shuttingDown;
}

async function main(): Promise<void> {
  const config = loadOrExit(() => loadConfig(process.argv.slice(2), process.env));
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => void shutdown(0));
  }
  if (!config.stackOnly) await checkEntrypoints();

  const tools = await ensureTools(note);
  if (shuttingDown) return;
  // The API's port is chosen first: the Web UI is started pointing at its codec.
  const [apiPort] = config.stackOnly ? [undefined] : await choosePorts('api', [config.port], note);
  stack = await startStack({
    ...config,
    dataDir: DATA_DIR,
    tools,
    log: note,
    ...(apiPort !== undefined ? { uiCodecEndpoint: `${apiUrlFor(config.host, apiPort)}/codec` } : {}),
  });
  if (shuttingDown) return;
  const applied = await prepareDatabase(stack.databaseUrl, 'order-saga-start');
  if (applied.length > 0) note(`migrations applied: ${applied.join(', ')}`);
  if (shuttingDown) return;

  let apiUrl: string | undefined;
  if (!config.stackOnly) {
    apiUrl = await startProcesses(config, stack, apiPort!);
    if (shuttingDown) return;
  }
  printReady(stack, apiUrl);
}

/** Fails before starting anything when a process' entry file is missing. */
async function checkEntrypoints(): Promise<void> {
  for (const { entry } of PROCESSES) {
    await access(path.join(ROOT, entry)).catch(() => {
      throw new Error(`${entry} not found (use --stack-only to start just the stack)`);
    });
  }
}

/** Starts worker, relay and api; resolves with the API's URL once GET /healthz says 200. */
async function startProcesses(config: StartConfig, running: Stack, port: number): Promise<string> {
  const encryptionKeys = await encryptionKeysFor(config);
  const env: NodeJS.ProcessEnv = {
    ...process.env, // whatever the user set (LOG_LEVEL, API_TOKENS, APPROVAL_*, …) passes through
    DATABASE_URL: running.databaseUrl,
    TEMPORAL_ADDRESS: running.temporalAddress,
    TEMPORAL_UI_URL: running.temporalUiUrl,
    NATS_URL: running.natsUrl,
    PORT: String(port),
    ...(encryptionKeys !== undefined ? { [KEYS_VARIABLE]: encryptionKeys } : {}),
  };
  let api: ManagedProcess | undefined;
  for (const { name, entry } of PROCESSES) {
    const child = launch({
      name,
      command: process.execPath,
      args: ['--import', 'tsx', entry],
      cwd: ROOT,
      env,
      logFile: path.join(LOGS_DIR, `${name}.log`),
      stopSignal: 'SIGTERM',
    });
    children.set(name, child);
    if (name === 'api') api = child;
    void child.exited.then(({ code, signal, error }) => {
      if (shuttingDown) return;
      const how = error ? error.message : (signal ?? `exit code ${code}`);
      void shutdown(1, `${name} exited unexpectedly (${how}); see ${child.logFile}`);
    });
  }
  const apiUrl = apiUrlFor(config.host, port);
  if (api) await waitUntilReady(api, () => answers(`${apiUrl}/healthz`), API_READY_TIMEOUT_MS);
  return apiUrl;
}

/** Where the API answers: a wildcard bind is reachable on loopback; anything else where it listens. */
function apiUrlFor(host: string, port: number): string {
  const probeHost = ['0.0.0.0', '::', ''].includes(host) ? '127.0.0.1' : host;
  return `http://${probeHost.includes(':') ? `[${probeHost}]` : probeHost}:${port}`;
}

async function answers(target: string): Promise<boolean> {
  const response = await fetch(target, { signal: AbortSignal.timeout(2_000) });
  return response.status === 200;
}

function printReady(running: Stack, apiUrl: string | undefined): void {
  const lines = [
    `logs: ${path.relative(process.cwd(), LOGS_DIR) || '.'}/{api,worker,relay,postgres,temporal,nats}.log`,
    ...(apiUrl ? [`api: ${apiUrl}`] : []),
    `temporal: ${running.temporalAddress}`,
    `temporal-ui: ${running.temporalUiUrl}`,
    `nats: ${splitUrls(running.natsUrl).map(withoutPassword).join(',')}`,
    `postgres: ${withoutPassword(running.databaseUrl)}`,
    'ready',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** A URL given by the user may carry credentials; the console never shows a password. */
function withoutPassword(raw: string): string {
  const parsed = new URL(raw);
  if (parsed.password === '') return raw;
  parsed.password = '';
  return parsed.toString();
}

main().catch((error: unknown) => {
  void shutdown(1, `start failed: ${error instanceof Error ? error.message : String(error)}`);
});
