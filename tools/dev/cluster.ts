/**
 * `npm run start:cluster`: the production topology on one machine (tools/dev/cluster-stack.ts):
 * the Temporal server on Postgres with its Web UI, a 3-node NATS JetStream cluster with
 * stream ORDERS at 3 replicas, and two each of worker, relay and api. Data lives under
 * .data/cluster/ and survives a restart; the payload key is the one `npm start` keeps in
 * .data/. Prints the contract's service lines, then `ready`.
 *
 * Ctrl-C / SIGTERM stop the apis, then relays and workers, then the servers; exit code 0.
 * A process that dies on its own is reported and the rest keeps running: that is what the
 * replicas are for. While it runs, <data dir>/cluster.json lists every process' pid and log.
 *
 * Options (for tests and drills): `--data-dir <dir>`, `--fresh` (remove that dir's data
 * first), `--any-ports` (let the OS pick every port), `--ephemeral` (Postgres without fsync).
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { integer, loadOrExit, optionalString, type Env } from '../../lib/env';
import { KEYS_VARIABLE, parseEncryptionKeys, SWITCH_VARIABLE } from '../../lib/payload-codec';
import { startCluster, USUAL_PORTS, type ClusterStack } from './cluster-stack';
import { localEncryptionKeys } from './encryption-keys';
import { ensureClusterTools } from './tools';

const ROOT = path.resolve(__dirname, '..', '..');
const DATA_DIR = path.join(ROOT, '.data');

interface ClusterConfig {
  dataDir: string;
  fresh: boolean;
  anyPorts: boolean;
  ephemeral: boolean;
  apiPort: number;
  apiHost: string;
  encryptionKeys?: string;
  encryptionOff: boolean;
  /** Variables `npm start` honours that this command does not (it starts its own servers). */
  ignored: string[];
}

function loadConfig(argv: string[], env: Env): ClusterConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      'data-dir': { type: 'string' },
      fresh: { type: 'boolean', default: false },
      'any-ports': { type: 'boolean', default: false },
      ephemeral: { type: 'boolean', default: false },
    },
  });
  const keys = optionalString(env, KEYS_VARIABLE);
  if (keys !== undefined) parseEncryptionKeys(keys); // a malformed value stops here, not in every child
  return {
    dataDir: path.resolve(values['data-dir'] ?? path.join(DATA_DIR, 'cluster')),
    fresh: values.fresh ?? false,
    anyPorts: values['any-ports'] ?? false,
    ephemeral: values.ephemeral ?? false,
    apiPort: integer(env, 'PORT', USUAL_PORTS.api[0], { min: 1, max: 65_534 }),
    apiHost: optionalString(env, 'HOST', '127.0.0.1'),
    ...(keys !== undefined ? { encryptionKeys: keys } : {}),
    encryptionOff: optionalString(env, SWITCH_VARIABLE) === 'off',
    ignored: ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'NATS_URL'].filter(
      (name) => optionalString(env, name) !== undefined,
    ),
  };
}

const note = (line: string): void => void process.stderr.write(`${line}\n`);

let cluster: ClusterStack | undefined;
let shuttingDown: Promise<void> | undefined;

/** Stops everything and exits. Before the cluster is up, exiting signals whatever has started. */
function shutdown(exitCode: number, reason?: string): Promise<void> {
  shuttingDown ??= (async () => {
    if (reason) note(reason);
    try {
      if (cluster) await rm(path.join(cluster.dataDir, 'cluster.json'), { force: true });
      await cluster?.stop();
    } finally {
      process.exit(exitCode);
    }
  })();
  return shuttingDown;
}

async function main(): Promise<void> {
  const config = loadOrExit(() => loadConfig(process.argv.slice(2), process.env));
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void shutdown(0));
  if (config.ignored.length > 0) {
    note(`start:cluster starts its own servers; ignoring ${config.ignored.join(', ')}`);
  }
  const tools = await ensureClusterTools(note);
  if (shuttingDown) return;
  const encryptionKeys = await localEncryptionKeys({
    given: config.encryptionKeys,
    off: config.encryptionOff,
    // Beside npm start's data: the key both stacks share; else in the given data dir.
    keysFile:
      config.dataDir === path.join(DATA_DIR, 'cluster')
        ? path.join(DATA_DIR, 'payload-encryption-keys')
        : path.join(config.dataDir, 'payload-encryption-keys'),
    note,
  });
  const startedAt = Date.now();
  cluster = await startCluster({
    dataDir: config.dataDir,
    tools,
    fresh: config.fresh,
    ephemeral: config.ephemeral,
    ports: config.anyPorts ? 'any' : 'usual',
    apiPort: config.apiPort,
    apiHost: config.apiHost,
    // Whatever the user set (LOG_LEVEL, API_TOKENS, APPROVAL_*, …) passes through.
    serviceEnv: process.env,
    ...(encryptionKeys !== undefined ? { encryptionKeys } : {}),
    log: note,
  });
  if (shuttingDown) return;
  await writeFile(
    path.join(cluster.dataDir, 'cluster.json'),
    `${JSON.stringify(describe(cluster), null, 2)}\n`,
  );
  note(`cluster: up in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
  printReady(cluster);
}

/** What runs, for operators and tests: each piece's pid and log at the time of `ready`. */
function describe(running: ClusterStack): object {
  const pieces = [
    running.postgres,
    running.temporal,
    running.temporalUi,
    ...running.nats,
    ...running.services,
  ];
  return {
    pid: process.pid,
    databaseUrl: running.databaseUrl,
    temporalAddress: running.temporalAddress,
    temporalUiUrl: running.temporalUiUrl,
    temporalMetricsUrl: running.temporalMetricsUrl,
    natsUrls: running.natsUrls,
    apiUrls: running.apiUrls,
    pieces: Object.fromEntries(pieces.map((piece) => [piece.name, { pid: piece.pid, log: piece.logFile }])),
  };
}

function printReady(running: ClusterStack): void {
  const [api, ...others] = running.apiUrls;
  const lines = [
    `logs: ${path.relative(process.cwd(), running.logsDir) || '.'}/*.log`,
    ...(api ? [`api: ${api}`] : []),
    ...others.map((url, index) => `api-${index + 2}: ${url}`),
    `temporal: ${running.temporalAddress}`,
    `temporal-ui: ${running.temporalUiUrl}`,
    `nats: ${running.natsUrls.join(',')}`,
    `postgres: ${running.databaseUrl}`,
    'ready',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((error: unknown) => {
  void shutdown(1, `start:cluster failed: ${error instanceof Error ? error.message : String(error)}`);
});
