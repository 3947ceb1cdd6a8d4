/**
 * The production topology on one machine, behind `npm run start:cluster` (tools/dev/cluster.ts),
 * its system test, and the drills and the bench on the cluster engine:
 *
 *   - an embedded Postgres with the orders database and Temporal's `temporal` and
 *     `temporal_visibility`, created and migrated by Temporal's own schema tool;
 *   - the Temporal server (not the dev server): frontend, history, matching and worker in one
 *     process, persistence and visibility on Postgres (`postgres12`), 4 history shards,
 *     namespace `default` and the saga's search attributes registered;
 *   - the Temporal UI server, decoding payloads through the first api's codec endpoint;
 *   - a 3-node NATS JetStream cluster, stream ORDERS at 3 replicas;
 *   - two each of worker, relay and api (names `worker`, `worker-2`, …), configured only by
 *     environment, the workers on one workflow bundle built at start.
 *
 * Every server is a piece that can be stopped (gracefully or as a crash), started again on
 * the same port and data, paused and resumed. Children log to `<dataDir>/logs/<name>.log`,
 * run in their own process group and die with this process (tools/dev/processes.ts). Its
 * generated configuration lives under `<dataDir>` too: temporal/, temporal-ui/, nats-<n>/.
 */
import { execFile } from 'node:child_process';
import { mkdir, open, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { jetstreamManager, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { stringify } from 'yaml';
import { SEARCH_ATTRIBUTES, STREAM_NAME } from '../../contracts/index';
import { KEYS_VARIABLE, SWITCH_VARIABLE } from '../../lib/payload-codec';
import { ensureOrdersStream, type NatsConnection } from '../../relay/stream';
import { eventually } from '../fixtures/eventually';
import { prepareDatabase } from './demo-data';
import { localEncryptionKeys } from './encryption-keys';
import { createDatabaseIfMissing, launchPostgres, pgAnswers, prepareCluster } from './postgres';
import { choosePorts, launch, waitUntilReady, type ExitStatus, type ManagedProcess } from './processes';
import { lockDataDir, natsAnswers, withoutTemporalSettings } from './stack';
import { DYNAMIC_CONFIG_FILE } from './temporal-tuning';
import type { ClusterTools } from './tools';

const ROOT = path.resolve(__dirname, '..', '..');
export const NAMESPACE = 'default';
/** How long a closed run stays visible in the namespace. */
const NAMESPACE_RETENTION = '3d';
export const HISTORY_SHARDS = 4;
export const NATS_NODES = 3;
export const DEFAULT_REPLICAS = 2;
export const TEMPORAL_DATABASES = { default: 'temporal', visibility: 'temporal_visibility' } as const;
/** What `npm run start:cluster` prefers; a taken port moves to a free one. */
export const USUAL_PORTS = {
  postgres: 5432,
  temporal: 7233,
  temporalUi: 8233,
  nats: [4222, 4223, 4224],
  api: [3000, 3001],
} as const;
const DEFAULT_READY_TIMEOUT_MS = 180_000; // two workers and two apis start on the same cores

export type Role = 'api' | 'worker' | 'relay';
export const ENTRYPOINTS: Record<Role, string> = {
  worker: 'worker/main.ts',
  relay: 'relay/main.ts',
  api: 'api/server.ts',
};

export type StopMode = 'graceful' | 'crash';

/** One server or service process of the cluster, which a drill may take away and bring back. */
export interface ClusterPiece {
  readonly name: string;
  readonly logFile: string;
  /** The running process' pid (undefined while stopped). */
  readonly pid: number | undefined;
  isRunning(): boolean;
  /** graceful: the program's own clean shutdown; crash: as abrupt as it survives (SIGKILL, Postgres SIGQUIT). */
  stop(mode?: StopMode): Promise<void>;
  /** Starts it again on the same ports and data; resolves once it answers. */
  start(): Promise<void>;
  restart(mode?: StopMode): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open and get no answer. */
  pause(): void;
  /** Lets a paused process go on (SIGCONT). */
  resume(): void;
}

export interface ServiceReplica extends ClusterPiece {
  readonly role: Role;
  /** 1 for `api`, 2 for `api-2`, … */
  readonly replica: number;
  /** The api's base URL; undefined for worker and relay. */
  readonly url: string | undefined;
}

/** A process that exited while nobody was stopping it. */
export interface UnexpectedExit {
  piece: string;
  status: ExitStatus;
  lastLines: string;
}

export interface ClusterOptions {
  /** Everything it writes lives here: postgres/, temporal/, temporal-ui/, nats-<n>/, logs/. */
  dataDir: string;
  tools: ClusterTools;
  /** Start from empty data: what an earlier run left in dataDir is removed first (logs stay). */
  fresh?: boolean;
  /** Throw-away data (tests, drills): Postgres skips fsync. */
  ephemeral?: boolean;
  /** 'usual' (default): USUAL_PORTS, moved when taken; 'any': the OS picks every port (tests, drills). */
  ports?: 'usual' | 'any';
  /** The first api's preferred port (PORT); the second prefers the next one. */
  apiPort?: number;
  /** Where the apis listen (HOST); default 127.0.0.1. */
  apiHost?: string;
  /** api, worker and relay each (default 2); 0 starts the servers only. */
  replicas?: number;
  /**
   * The environment the services start from (default: none of this process'); the cluster
   * sets DATABASE_URL, TEMPORAL_ADDRESS, TEMPORAL_UI_URL, NATS_URL, PORT, HOST and, for the
   * workers, WORKFLOW_BUNDLE_PATH over it.
   */
  serviceEnv?: NodeJS.ProcessEnv;
  /**
   * PAYLOAD_ENCRYPTION_KEYS for the services. Absent (and serviceEnv sets neither it nor
   * PAYLOAD_ENCRYPTION=off): the key kept in <dataDir>/payload-encryption-keys, generated
   * on the first start.
   */
  encryptionKeys?: string;
  readyTimeoutMs?: number;
  /** Progress notes (a port moved, the schema migrated); silent when absent. */
  log?: (line: string) => void;
  /** Called when a process exits on its own (a crash nobody asked for); nothing restarts it. */
  onUnexpectedExit?: (exit: UnexpectedExit) => void;
}

export interface ClusterStack {
  dataDir: string;
  logsDir: string;
  /** postgres://postgres@127.0.0.1:<port>/orders; never a password. */
  databaseUrl: string;
  /** The server's `postgres` database (Temporal's databases sit beside `orders`). */
  adminUrl: string;
  temporalAddress: string;
  temporalUiUrl: string;
  /** The Temporal server's Prometheus endpoint. */
  temporalMetricsUrl: string;
  /** Every NATS node's client URL, and the same comma-separated (what NATS_URL takes). */
  natsUrls: string[];
  natsUrl: string;
  /** Each api replica's base URL, `api` first. */
  apiUrls: string[];
  postgres: ClusterPiece;
  temporal: ClusterPiece;
  temporalUi: ClusterPiece;
  /** NATS nodes `nats-1` … `nats-3`; server_name is the piece's name. */
  nats: ClusterPiece[];
  /** worker, worker-2, relay, relay-2, api, api-2 (in start order). */
  services: ServiceReplica[];
  /** The piece of that name (`nats-2`, `api-2`, `temporal`, …). */
  piece(name: string): ClusterPiece;
  /** The environment the services of `role` were started with (e.g. to start one more). */
  serviceEnv(role: Role): NodeJS.ProcessEnv;
  /** Stops everything that runs (apis, then relays and workers, then the servers); safe to call twice. */
  stop(): Promise<void>;
}

/** Starts the whole cluster; if any part fails to come up, stops what started and throws. */
export async function startCluster(options: ClusterOptions): Promise<ClusterStack> {
  const dataDir = path.resolve(options.dataDir);
  const logsDir = path.join(dataDir, 'logs');
  await mkdir(logsDir, { recursive: true });
  const unlock = await lockDataDir(dataDir);
  const log = options.log ?? (() => undefined);
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const replicas = options.replicas ?? DEFAULT_REPLICAS;
  const started: ClusterPiece[] = [];
  const stopAll = async (): Promise<void> => {
    // apis first (no new orders), then relays and workers, the UI, the Temporal server, and
    // last what it stores in (Postgres) beside NATS: nothing loses its database mid-shutdown.
    const servers: Record<string, number> = { 'temporal-ui': 2, temporal: 3 };
    const order = (piece: ClusterPiece): number =>
      'role' in piece ? ((piece as ServiceReplica).role === 'api' ? 0 : 1) : (servers[piece.name] ?? 4);
    for (const rank of [0, 1, 2, 3, 4]) {
      await Promise.all(
        started.filter((piece) => order(piece) === rank).map((piece) => piece.stop().catch(() => undefined)),
      );
    }
  };
  try {
    if (options.fresh) await removeData(dataDir);
    const ports = await pickPorts(options, replicas, log);
    const exits = (exit: UnexpectedExit): void => {
      log(
        `${exit.piece} exited unexpectedly (${describeExit(exit.status)}); see ${logsDir}/${exit.piece}.log`,
      );
      options.onUnexpectedExit?.(exit);
    };
    const context: PieceContext = { logsDir, readyTimeoutMs, onUnexpectedExit: exits };

    // Postgres, the NATS nodes and the workflow bundle are independent: side by side.
    const postgres = await postgresPiece(context, dataDir, ports.postgres, options.ephemeral ?? false);
    const nats = await Promise.all(
      ports.nats.map((_port, index) => natsPiece(context, dataDir, options.tools, ports, index)),
    );
    started.push(postgres, ...nats);
    const bundle = path.join(dataDir, 'workflow-bundle.js');
    await Promise.all([
      postgres.start().then(() => prepareTemporalDatabases(options.tools, ports.postgres, logsDir, log)),
      Promise.all(nats.map((node) => node.start())).then(() =>
        ensureReplicatedStream(natsUrlsOf(ports), log),
      ),
      replicas > 0 ? buildWorkflowBundle(bundle, logsDir) : undefined,
    ]);
    const adminUrl = `postgres://postgres@127.0.0.1:${ports.postgres}/postgres`;
    const databaseUrl = `postgres://postgres@127.0.0.1:${ports.postgres}/orders`;
    await createDatabaseIfMissing(adminUrl, 'orders');
    const applied = await prepareDatabase(databaseUrl, 'order-saga-cluster');
    if (applied.length > 0) log(`migrations applied: ${applied.join(', ')}`);

    const temporalServer = await temporalPiece(context, dataDir, options.tools, ports);
    started.push(temporalServer);
    await temporalServer.start();
    const temporalAddress = `127.0.0.1:${ports.temporal.frontend}`;
    const apiUrls = ports.api.map((port) => apiUrlFor(options.apiHost ?? '127.0.0.1', port));
    const temporalUiUrl = `http://127.0.0.1:${ports.temporalUi}`;
    const temporalUi = await temporalUiPiece(context, dataDir, options.tools, {
      port: ports.temporalUi,
      temporalAddress,
      codecEndpoint: apiUrls[0] === undefined ? undefined : `${apiUrls[0]}/codec`,
    });
    started.push(temporalUi);
    await temporalUi.start();

    const natsUrls = natsUrlsOf(ports);
    const serviceEnv = options.serviceEnv ?? { PATH: process.env.PATH, HOME: process.env.HOME };
    const encryptionKeys = await localEncryptionKeys({
      given: options.encryptionKeys ?? serviceEnv[KEYS_VARIABLE],
      off: serviceEnv[SWITCH_VARIABLE] === 'off',
      keysFile: path.join(dataDir, 'payload-encryption-keys'),
      note: log,
    });
    const baseEnv: NodeJS.ProcessEnv = {
      ...serviceEnv,
      ...(encryptionKeys !== undefined ? { [KEYS_VARIABLE]: encryptionKeys } : {}),
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_UI_URL: temporalUiUrl,
      NATS_URL: natsUrls.join(','),
    };
    const envFor = (role: Role, replica: number): NodeJS.ProcessEnv =>
      role === 'worker'
        ? { ...baseEnv, WORKFLOW_BUNDLE_PATH: bundle }
        : role === 'api'
          ? { ...baseEnv, PORT: String(ports.api[replica - 1]), HOST: options.apiHost ?? '127.0.0.1' }
          : { ...baseEnv, NATS_STREAM_REPLICAS: String(NATS_NODES) };
    const services: ServiceReplica[] = [];
    for (const role of ['worker', 'relay', 'api'] as const) {
      for (let replica = 1; replica <= replicas; replica++) {
        services.push(
          servicePiece(context, {
            role,
            replica,
            env: envFor(role, replica),
            url: role === 'api' ? apiUrls[replica - 1] : undefined,
          }),
        );
      }
    }
    started.push(...services);
    // Workers and relays side by side, then the apis (which start sagas the workers run).
    await Promise.all(services.filter((s) => s.role !== 'api').map((s) => s.start()));
    await Promise.all(services.filter((s) => s.role === 'api').map((s) => s.start()));

    const all: ClusterPiece[] = [postgres, temporalServer, temporalUi, ...nats, ...services];
    let stopping: Promise<void> | undefined;
    return {
      dataDir,
      logsDir,
      databaseUrl,
      adminUrl,
      temporalAddress,
      temporalUiUrl,
      temporalMetricsUrl: `http://127.0.0.1:${ports.temporal.metrics}/metrics`,
      natsUrls,
      natsUrl: natsUrls.join(','),
      apiUrls,
      postgres,
      temporal: temporalServer,
      temporalUi,
      nats,
      services,
      piece(name) {
        const found = all.find((piece) => piece.name === name);
        if (!found) throw new Error(`no piece named ${name} (${all.map((piece) => piece.name).join(', ')})`);
        return found;
      },
      serviceEnv: (role) => envFor(role, 1),
      stop: () => (stopping ??= stopAll().finally(unlock)),
    };
  } catch (error) {
    await stopAll();
    await unlock();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------
// Ports and data

interface ClusterPorts {
  postgres: number;
  temporal: {
    frontend: number;
    frontendMembership: number;
    history: number;
    historyMembership: number;
    matching: number;
    matchingMembership: number;
    worker: number;
    workerMembership: number;
    metrics: number;
  };
  temporalUi: number;
  nats: number[];
  natsRoutes: number[];
  api: number[];
}

/** Every port in one choosePorts call, so the OS cannot hand one out twice. */
async function pickPorts(
  options: ClusterOptions,
  replicas: number,
  log: (line: string) => void,
): Promise<ClusterPorts> {
  const usual = (options.ports ?? 'usual') === 'usual';
  const apiBase = options.apiPort ?? USUAL_PORTS.api[0];
  const named: Array<[string, number]> = [
    ['postgres', usual ? USUAL_PORTS.postgres : 0],
    ['temporal', usual ? USUAL_PORTS.temporal : 0],
    ...Array.from({ length: 4 }, (_, index): [string, number] => [`temporal-internal-${index}`, 0]),
    ['temporal-ui', usual ? USUAL_PORTS.temporalUi : 0],
    ...USUAL_PORTS.nats.map((port, index): [string, number] => [`nats-${index + 1}`, usual ? port : 0]),
    ...USUAL_PORTS.nats.map((_, index): [string, number] => [`nats-${index + 1}-routes`, 0]),
    ...Array.from({ length: replicas }, (_, index): [string, number] => [
      replicaName('api', index + 1),
      usual ? apiBase + index : 0,
    ]),
  ];
  const chosen = await choosePorts(
    'cluster',
    named.map(([, port]) => port),
  );
  named.forEach(([name, preferred], index) => {
    if (preferred !== 0 && chosen[index] !== preferred) {
      log(`${name}: port ${preferred} is taken, using ${chosen[index]}`);
    }
  });
  // Temporal keeps each service's membership port in a SMALLINT column: below 32768, where
  // the OS never picks (its ephemeral range starts there), so they are chosen apart.
  const [frontendMembership, historyMembership, matchingMembership, workerMembership] =
    await chooseMembershipPorts(usual ? [...USUAL_MEMBERSHIP_PORTS] : [0, 0, 0, 0]);
  const take = (): number => chosen.shift()!;
  const postgres = take();
  const frontend = take();
  const [history, matching, worker, metrics] = Array.from({ length: 4 }, take) as [
    number,
    number,
    number,
    number,
  ];
  const temporalUi = take();
  const nats = USUAL_PORTS.nats.map(take);
  const natsRoutes = USUAL_PORTS.nats.map(take);
  const api = Array.from({ length: replicas }, take);
  return {
    postgres,
    temporal: {
      frontend,
      frontendMembership,
      history,
      historyMembership,
      matching,
      matchingMembership,
      worker,
      workerMembership,
      metrics,
    },
    temporalUi,
    nats,
    natsRoutes,
    api,
  };
}

/** Temporal's own defaults for frontend, history, matching and worker. */
const USUAL_MEMBERSHIP_PORTS = [6933, 6934, 6935, 6939] as const;
const MEMBERSHIP_PORT_RANGE = { min: 10_000, max: 32_767 } as const;

/**
 * Free ports below 32768 (Temporal stores membership ports as SMALLINT): each preferred one
 * when free, else a random free one in MEMBERSHIP_PORT_RANGE; all held until all are chosen.
 */
async function chooseMembershipPorts(preferred: number[]): Promise<[number, number, number, number]> {
  const held: net.Server[] = [];
  const tryListen = (port: number): Promise<net.Server | undefined> =>
    new Promise((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(undefined));
      server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(server));
    });
  try {
    const ports: number[] = [];
    for (const port of preferred) {
      let server = port === 0 ? undefined : await tryListen(port);
      for (let attempt = 0; !server && attempt < 200; attempt++) {
        const { min, max } = MEMBERSHIP_PORT_RANGE;
        const candidate = min + Math.floor(Math.random() * (max - min + 1));
        if (!ports.includes(candidate)) server = await tryListen(candidate);
      }
      if (!server) throw new Error('temporal: no free port below 32768 for membership');
      held.push(server);
      ports.push((server.address() as net.AddressInfo).port);
    }
    return ports as [number, number, number, number];
  } finally {
    await Promise.all(held.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** Only what the cluster writes (logs stay), never the directory itself: the caller owns it. */
async function removeData(dataDir: string): Promise<void> {
  const owned = [
    'postgres',
    'postgres.initdb',
    'temporal',
    'temporal-ui',
    'workflow-bundle.js',
    ...Array.from({ length: NATS_NODES }, (_, index) => `nats-${index + 1}`),
  ];
  await Promise.all(owned.map((name) => rm(path.join(dataDir, name), { recursive: true, force: true })));
}

const replicaName = (role: Role, replica: number): string => (replica === 1 ? role : `${role}-${replica}`);

const natsUrlsOf = (ports: ClusterPorts): string[] => ports.nats.map((port) => `nats://127.0.0.1:${port}`);

/** Where an api answers: a wildcard bind is reachable on loopback. */
function apiUrlFor(host: string, port: number): string {
  const probeHost = ['0.0.0.0', '::', ''].includes(host) ? '127.0.0.1' : host;
  return `http://${probeHost.includes(':') ? `[${probeHost}]` : probeHost}:${port}`;
}

// ---------------------------------------------------------------------------------------
// Pieces

interface PieceContext {
  logsDir: string;
  readyTimeoutMs: number;
  onUnexpectedExit: (exit: UnexpectedExit) => void;
}

interface ProcessPieceSpec {
  name: string;
  launchProcess: () => ManagedProcess;
  /** Answers true once the freshly launched process serves; `since` is its log's size before launch. */
  ready: (process: ManagedProcess, since: number) => Promise<boolean>;
  /** Kills it as a crash; default SIGKILL. */
  crash?: (process: ManagedProcess) => Promise<void>;
  /** Runs once after each start answers (e.g. registering the namespace). */
  afterStart?: () => Promise<void>;
  stopTimeoutMs: number;
}

function processPiece(context: PieceContext, spec: ProcessPieceSpec): ClusterPiece {
  const logFile = path.join(context.logsDir, `${spec.name}.log`);
  let current: ManagedProcess | undefined;
  /** Processes being stopped or killed on purpose: their exit is not news. */
  const intended = new WeakSet<ManagedProcess>();
  const piece: ClusterPiece = {
    name: spec.name,
    logFile,
    get pid() {
      return current && !current.hasExited() ? current.pid : undefined;
    },
    isRunning: () => current !== undefined && !current.hasExited(),
    async stop(mode = 'graceful') {
      const running = current;
      if (!running || running.hasExited()) return;
      intended.add(running);
      running.kill('SIGCONT'); // a paused process cannot shut down
      if (mode === 'crash') await (spec.crash ?? ((p) => Promise.resolve(p.kill('SIGKILL'))))(running);
      else await running.stop(spec.stopTimeoutMs);
      await running.exited;
    },
    async start() {
      if (current && !current.hasExited()) return;
      const since = await sizeOf(logFile);
      const launched = spec.launchProcess();
      current = launched;
      let ready = false; // an exit while starting fails start() instead
      void launched.exited.then(async (status) => {
        if (intended.has(launched) || !ready) return;
        context.onUnexpectedExit({ piece: spec.name, status, lastLines: await launched.lastLines(15) });
      });
      try {
        await waitUntilReady(launched, () => spec.ready(launched, since), context.readyTimeoutMs);
        await spec.afterStart?.();
        ready = true;
      } catch (error) {
        intended.add(launched);
        await launched.stop(5_000);
        throw error;
      }
    },
    async restart(mode = 'graceful') {
      await piece.stop(mode);
      await piece.start();
    },
    pause: () => current?.kill('SIGSTOP'),
    resume: () => current?.kill('SIGCONT'),
  };
  return piece;
}

// Postgres ------------------------------------------------------------------------------

async function postgresPiece(
  context: PieceContext,
  dataDir: string,
  port: number,
  ephemeral: boolean,
): Promise<ClusterPiece> {
  const cluster = await prepareCluster(path.join(dataDir, 'postgres'), {
    logFile: path.join(context.logsDir, 'postgres.log'),
    ephemeral,
  });
  const settings = {
    // Temporal's stores (20 + 10 connections), two each of api (20), worker (20), relay (4).
    max_connections: '300',
    ...(ephemeral ? { fsync: 'off', full_page_writes: 'off' } : {}),
  };
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return processPiece(context, {
    name: 'postgres',
    launchProcess: () => launchPostgres(cluster, port, settings),
    ready: () => pgAnswers(adminUrl),
    // Immediate shutdown (SIGQUIT): no checkpoint, clients cut off, WAL recovery on the next
    // start — a crash as Postgres survives it (a SIGKILLed postmaster strands its backends).
    crash: (server) => Promise.resolve(server.kill('SIGQUIT')),
    stopTimeoutMs: 30_000,
  });
}

/**
 * Temporal's two databases, created and brought to the schema of this server version by its
 * schema tool, as the admin-tools image does: create-database, setup-schema -v 0.0 (the
 * version table), update-schema from the versioned folder. Each step is a no-op when done.
 */
async function prepareTemporalDatabases(
  tools: ClusterTools,
  port: number,
  logsDir: string,
  log: (line: string) => void,
): Promise<void> {
  const logFile = path.join(logsDir, 'temporal-sql-tool.log');
  const schemas = { [TEMPORAL_DATABASES.default]: 'temporal', [TEMPORAL_DATABASES.visibility]: 'visibility' };
  for (const [database, folder] of Object.entries(schemas)) {
    const base = [
      '--plugin',
      'postgres12',
      '--ep',
      '127.0.0.1',
      '--port',
      String(port),
      '--user',
      'postgres',
    ];
    const steps = [
      ['--db', database, 'create-database'],
      ['--db', database, 'setup-schema', '-v', '0.0'],
      ['--db', database, 'update-schema', '-d', path.join(tools.temporalSchemaDir, folder, 'versioned')],
    ];
    for (const step of steps) await runLogged(tools.temporalSqlTool, [...base, ...step], logFile);
  }
  log(
    `temporal-sql-tool: databases ${Object.keys(schemas).join(' and ')} at the schema of this server version`,
  );
}

// Temporal server -----------------------------------------------------------------------

async function temporalPiece(
  context: PieceContext,
  dataDir: string,
  tools: ClusterTools,
  ports: ClusterPorts,
): Promise<ClusterPiece> {
  const dir = path.join(dataDir, 'temporal');
  await mkdir(dir, { recursive: true });
  const configFile = path.join(dir, 'config.yaml');
  // The project's dynamic config, read in place: an edit reaches the running server within 10 s.
  await writeFile(configFile, temporalConfig(ports, DYNAMIC_CONFIG_FILE));
  const address = `127.0.0.1:${ports.temporal.frontend}`;
  return processPiece(context, {
    name: 'temporal',
    launchProcess: () =>
      launch({
        name: 'temporal',
        command: tools.temporalServer,
        args: ['--config-file', configFile, '--allow-no-auth', 'start'],
        logFile: path.join(context.logsDir, 'temporal.log'),
        stopSignal: 'SIGTERM',
        env: withoutTemporalSettings(process.env),
      }),
    ready: () => frontendAnswers(address),
    afterStart: () => registerNamespace(address, context.readyTimeoutMs),
    stopTimeoutMs: 30_000,
  });
}

/** The server's static configuration, as `temporal-server --config-file` reads it (YAML). */
function temporalConfig(ports: ClusterPorts, dynamicConfigFile: string): string {
  const sql = (database: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName: database,
      connectAddr: `127.0.0.1:${ports.postgres}`,
      connectProtocol: 'tcp',
      user: 'postgres', // trust auth on 127.0.0.1 only: no password exists to leak
      password: '',
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const rpc = (grpcPort: number, membershipPort: number) => ({
    rpc: { grpcPort, membershipPort, bindOnLocalHost: true },
  });
  const { temporal: t } = ports;
  const config = {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      numHistoryShards: HISTORY_SHARDS, // fixed once the database is created
      datastores: {
        'postgres-default': sql(TEMPORAL_DATABASES.default, 20),
        'postgres-visibility': sql(TEMPORAL_DATABASES.visibility, 10),
      },
    },
    global: {
      membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' },
      metrics: {
        prometheus: { framework: 'tally', timerType: 'histogram', listenAddress: `127.0.0.1:${t.metrics}` },
      },
    },
    services: {
      frontend: rpc(t.frontend, t.frontendMembership),
      history: rpc(t.history, t.historyMembership),
      matching: rpc(t.matching, t.matchingMembership),
      worker: rpc(t.worker, t.workerMembership),
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: {
          enabled: true,
          initialFailoverVersion: 1,
          rpcName: 'frontend',
          rpcAddress: `127.0.0.1:${t.frontend}`,
        },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '10s' },
  };
  return `# Generated by tools/dev/cluster-stack.ts at every start; edits are overwritten.\n${stringify(config)}`;
}

async function frontendAnswers(address: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 2_000 });
  try {
    await connection.workflowService.getSystemInfo({});
    return true;
  } finally {
    await connection.close();
  }
}

const { IndexedValueType } = temporal.api.enums.v1;
const INDEXED_TYPES = {
  Keyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  Int: IndexedValueType.INDEXED_VALUE_TYPE_INT,
} as const;

/**
 * Namespace `default` with its retention, and the saga's search attributes (SQL visibility
 * maps them to its pre-made columns); then waits until a visibility query on them answers,
 * i.e. the frontend's namespace cache knows both. Each step is skipped when done.
 */
async function registerNamespace(address: string, timeoutMs: number): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: 5_000 });
  try {
    await eventually(
      `temporal: namespace ${NAMESPACE} registered`,
      async () => {
        try {
          await connection.workflowService.registerNamespace({
            namespace: NAMESPACE,
            workflowExecutionRetentionPeriod: msToTs(NAMESPACE_RETENTION),
          });
          return true;
        } catch (error) {
          if (grpcCode(error) === ALREADY_EXISTS) return true;
          if (RETRYABLE.includes(grpcCode(error) ?? -1)) return false; // still starting
          throw error;
        }
      },
      { timeoutMs, intervalMs: 500 },
    );
    await eventually(
      'temporal: search attributes registered',
      async () => {
        const listed = await connection.operatorService.listSearchAttributes({ namespace: NAMESPACE });
        const missing = Object.entries(SEARCH_ATTRIBUTES).filter(
          ([name]) => listed.customAttributes?.[name] === undefined,
        );
        if (missing.length === 0) return true;
        try {
          await connection.operatorService.addSearchAttributes({
            namespace: NAMESPACE,
            searchAttributes: Object.fromEntries(missing.map(([name, type]) => [name, INDEXED_TYPES[type]])),
          });
        } catch (error) {
          // Not yet in the namespace cache, or added meanwhile: ask again.
          if (![ALREADY_EXISTS, NOT_FOUND, ...RETRYABLE].includes(grpcCode(error) ?? -1)) throw error;
        }
        return false;
      },
      { timeoutMs, intervalMs: 500 },
    );
    const query = Object.keys(SEARCH_ATTRIBUTES)
      .filter((name) => SEARCH_ATTRIBUTES[name as keyof typeof SEARCH_ATTRIBUTES] === 'Keyword')
      .map((name) => `${name} = 'none'`)
      .join(' AND ');
    await eventually(
      `temporal: namespace ${NAMESPACE} answers visibility queries on the search attributes`,
      async () => {
        try {
          await connection.workflowService.countWorkflowExecutions({ namespace: NAMESPACE, query });
          return true;
        } catch (error) {
          if ([NOT_FOUND, INVALID_ARGUMENT, ...RETRYABLE].includes(grpcCode(error) ?? -1)) return false;
          throw error;
        }
      },
      { timeoutMs, intervalMs: 500 },
    );
  } finally {
    await connection.close();
  }
}

const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
const ALREADY_EXISTS = 6;
/** DEADLINE_EXCEEDED, UNAVAILABLE: the server is still starting (e.g. acquiring its shards). */
const RETRYABLE = [4, 14];
const grpcCode = (error: unknown): number | undefined => (error as { code?: number }).code;

// Temporal UI server --------------------------------------------------------------------

async function temporalUiPiece(
  context: PieceContext,
  dataDir: string,
  tools: ClusterTools,
  options: { port: number; temporalAddress: string; codecEndpoint: string | undefined },
): Promise<ClusterPiece> {
  // The UI server reads <root>/<config>/<env>.yaml (the image templates docker.yaml from
  // TEMPORAL_* variables; the values are written out here instead).
  const root = path.join(dataDir, 'temporal-ui');
  await mkdir(path.join(root, 'config'), { recursive: true });
  const uiUrl = `http://127.0.0.1:${options.port}`;
  const config = {
    temporalGrpcAddress: options.temporalAddress,
    host: '127.0.0.1',
    port: options.port,
    publicPath: '',
    enableUi: true,
    defaultNamespace: NAMESPACE,
    showTemporalSystemNamespace: false,
    notifyOnNewVersion: false,
    refreshInterval: '0s',
    // Served over plain http on loopback: the CSRF cookie cannot be Secure.
    cors: { allowOrigins: [uiUrl, `http://localhost:${options.port}`], cookieInsecure: true },
    codec: {
      endpoint: options.codecEndpoint ?? '',
      passAccessToken: false,
      includeCredentials: false,
    },
    auth: { enabled: false },
    hideLogs: false,
  };
  await writeFile(
    path.join(root, 'config', 'cluster.yaml'),
    `# Generated by tools/dev/cluster-stack.ts at every start; edits are overwritten.\n${stringify(config)}`,
  );
  return processPiece(context, {
    name: 'temporal-ui',
    launchProcess: () =>
      launch({
        name: 'temporal-ui',
        command: tools.temporalUiServer,
        args: ['--root', root, '--config', 'config', '--env', 'cluster', 'start'],
        logFile: path.join(context.logsDir, 'temporal-ui.log'),
        stopSignal: 'SIGTERM',
        env: withoutTemporalSettings(process.env),
      }),
    ready: async () => {
      const response = await fetch(`${uiUrl}/healthz`, { signal: AbortSignal.timeout(2_000) });
      return response.status === 200;
    },
    stopTimeoutMs: 10_000,
  });
}

// NATS ----------------------------------------------------------------------------------

async function natsPiece(
  context: PieceContext,
  dataDir: string,
  tools: ClusterTools,
  ports: ClusterPorts,
  index: number,
): Promise<ClusterPiece> {
  const name = `nats-${index + 1}`;
  const dir = path.join(dataDir, name);
  await mkdir(dir, { recursive: true });
  const configFile = path.join(dir, 'nats.conf');
  const port = ports.nats[index]!;
  const routes = ports.natsRoutes.map((routePort) => `nats-route://127.0.0.1:${routePort}`);
  await writeFile(
    configFile,
    [
      `server_name: ${name}`,
      `listen: "127.0.0.1:${port}"`,
      'jetstream {',
      `  store_dir: ${JSON.stringify(path.join(dir, 'store'))}`,
      // The default (fsync every 2 min) lost acknowledged writes in Jepsen's NATS 2.12 analysis.
      '  sync_interval: always',
      '}',
      'cluster {',
      '  name: order-saga',
      `  listen: "127.0.0.1:${ports.natsRoutes[index]}"`,
      // Every node lists every route (its own is ignored), so any two can form the cluster.
      `  routes: [${routes.map((route) => JSON.stringify(route)).join(', ')}]`,
      '}',
      '',
    ].join('\n'),
  );
  return processPiece(context, {
    name,
    launchProcess: () =>
      launch({
        name,
        command: tools.natsServer,
        args: ['-c', configFile],
        logFile: path.join(context.logsDir, `${name}.log`),
        stopSignal: 'SIGTERM',
      }),
    ready: () => natsAnswers(port),
    stopTimeoutMs: 15_000,
  });
}

/**
 * Once the nodes have elected a JetStream meta leader: stream ORDERS (relay/stream.ts) at
 * NATS_NODES replicas, created before any relay starts (a relay creates it with one replica).
 */
async function ensureReplicatedStream(natsUrls: string[], log: (line: string) => void): Promise<void> {
  const nats = (await connect({ servers: natsUrls, name: 'order-saga-cluster' })) as NatsConnection;
  try {
    let jsm: JetStreamManager | undefined;
    const info = await eventually(
      `nats: stream ${STREAM_NAME} at ${NATS_NODES} replicas with a leader`,
      async (): Promise<StreamInfo | false> => {
        try {
          jsm ??= await jetstreamManager(nats, { timeout: 2_000 });
          const stream = await ensureOrdersStream(jsm, { replicas: NATS_NODES });
          return stream.cluster?.leader ? stream : false;
        } catch {
          return false; // no meta leader yet ("JetStream system temporarily unavailable", timeouts)
        }
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    if (info.config.num_replicas !== NATS_NODES) {
      // An earlier run's stream (e.g. made by a relay alone): bring it to the cluster's replicas.
      await jsm!.streams.update(STREAM_NAME, { ...info.config, num_replicas: NATS_NODES });
      log(`nats: stream ${STREAM_NAME} raised to ${NATS_NODES} replicas`);
    }
  } finally {
    await nats.close();
  }
}

// Services ------------------------------------------------------------------------------

function servicePiece(
  context: PieceContext,
  spec: { role: Role; replica: number; env: NodeJS.ProcessEnv; url: string | undefined },
): ServiceReplica {
  const name = replicaName(spec.role, spec.replica);
  const logFile = path.join(context.logsDir, `${name}.log`);
  const piece = processPiece(context, {
    name,
    launchProcess: () =>
      launch({
        name,
        command: process.execPath,
        args: ['--import', 'tsx', ENTRYPOINTS[spec.role]],
        cwd: ROOT,
        env: spec.env,
        logFile,
        stopSignal: 'SIGTERM', // graceful: drains in-flight work
      }),
    ready: async (_process, since) => {
      if (spec.url !== undefined) {
        const response = await fetch(`${spec.url}/healthz`, { signal: AbortSignal.timeout(2_000) });
        return response.status === 200;
      }
      const started = spec.role === 'worker' ? '"msg":"worker started"' : '"msg":"relay started"';
      return (await readFrom(logFile, since)).includes(started);
    },
    stopTimeoutMs: spec.role === 'worker' ? 20_000 : 10_000, // the worker's grace time is 10 s
  });
  return Object.assign(piece, { role: spec.role, replica: spec.replica, url: spec.url });
}

/** Bundles the workflows once for both workers (tools/build-workflow-bundle.ts), as the image does. */
async function buildWorkflowBundle(output: string, logsDir: string): Promise<void> {
  const builder = launch({
    name: 'workflow-bundle',
    command: process.execPath,
    args: ['--import', 'tsx', 'tools/build-workflow-bundle.ts', output],
    cwd: ROOT,
    logFile: path.join(logsDir, 'workflow-bundle.log'),
    stopSignal: 'SIGTERM',
  });
  const status = await builder.exited;
  if (status.code !== 0) {
    throw new Error(`workflow bundle failed (${describeExit(status)}):\n${await builder.lastLines()}`);
  }
}

// ---------------------------------------------------------------------------------------
// Helpers

const execFileAsync = promisify(execFile);

/** Runs a tool to completion with its output appended to `logFile`; fails with that output. */
async function runLogged(command: string, args: string[], logFile: string): Promise<void> {
  const line = `\n--- ${new Date().toISOString()} ${path.basename(command)} ${args.join(' ')}\n`;
  try {
    const { stdout, stderr } = await execFileAsync(command, args, {
      env: withoutTemporalSettings(process.env),
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    await writeFile(logFile, `${line}${stdout}${stderr}`, { flag: 'a' });
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    await writeFile(logFile, `${line}${stdout}${stderr}`, { flag: 'a' });
    const output = `${stdout}${stderr}`.trim().split('\n').slice(-10).join('\n');
    throw new Error(
      `${path.basename(command)} ${args.slice(-3).join(' ')} failed; see ${logFile}:\n${output}`,
    );
  }
}

async function sizeOf(file: string): Promise<number> {
  return stat(file).then(
    (info) => info.size,
    () => 0,
  );
}

/** What a log file got since byte `from` (this run of a process, however long). */
async function readFrom(file: string, from: number): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size <= from) return '';
    const { buffer } = await handle.read(Buffer.alloc(size - from), 0, size - from, from);
    return buffer.toString('utf8');
  } finally {
    await handle.close();
  }
}

function describeExit({ code, signal, error }: ExitStatus): string {
  return error ? error.message : (signal ?? `exit code ${code}`);
}
