/**
 * `npm run start:cluster` end to end, inside `npm test`: the production topology started as
 * an operator starts it (tools/dev/cluster.ts as a child process, on a data directory of its
 * own, every port picked by the OS), then checked from outside:
 *
 *   - the contract's service lines, then `ready`;
 *   - the Temporal server (not the dev server) reports Postgres for persistence and
 *     visibility, with at least 4 history shards;
 *   - stream ORDERS has 3 replicas, on the 3 nodes;
 *   - the happy path and a declined payment, each through both api replicas, end as the
 *     contract says, with their events on the stream once each, in order;
 *   - with the stream's leader node SIGKILLed, the next orders' events still reach the
 *     stream, every committed outbox event exactly once;
 *   - Ctrl-C (SIGINT) stops everything: exit code 0, no process and no port left behind.
 *
 * Every wait is an eventually() that fails when its time is up; nothing sleeps.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { isAlive } from '../../tools/dev/stack';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { jetstreamManager, type StreamInfo } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Connection } from '@temporalio/client';
import pg from 'pg';
import {
  SEARCH_ATTRIBUTES,
  STREAM_NAME,
  SUBJECT_PREFIX,
  isTerminal,
  type OrderStatus,
} from '../../contracts/index';
import type { NatsConnection } from '../../relay/stream';
import { eventually } from '../../tools/fixtures/eventually';
import { orderBody, type OrderBody } from '../../tools/fixtures/order';
import { ensureClusterTools, TEMPORAL_SERVER_VERSION } from '../../tools/dev/tools';
import { readStream, type StreamedEvent } from '../support/stream';

const ROOT = path.resolve(__dirname, '..', '..');
/** First run on a machine: go install of the Temporal server, its schema tool and the UI server. */
const INSTALL_TIMEOUT_MS = 20 * 60_000;
/** Seen: 20–40 s on 2 cores with warm tools; six node processes start on the same cores. */
const START_TIMEOUT_MS = 4 * 60_000;
const SAGA_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 90_000;
/** Each test's own budget: its waits fail first, with what they waited for. */
const TEST_TIMEOUT_MS = 4 * 60_000;

const EVENTS = {
  completed: ['OrderCreated', 'InventoryReserved', 'PaymentCaptured', 'ShipmentCreated', 'OrderCompleted'],
  declined: ['OrderCreated', 'InventoryReserved', 'PaymentDeclined', 'InventoryReleased', 'OrderFailed'],
};

interface ClusterState {
  pid: number;
  natsUrls: string[];
  apiUrls: string[];
  pieces: Record<string, { pid: number; log: string }>;
}

interface OrderView {
  orderId: string;
  status: OrderStatus;
  failureReason: string | null;
  payment: { status: string };
}

interface Placed {
  orderId: string;
  path: keyof typeof EVENTS;
  via: string;
}

let dataDir: string;
let child: ChildProcess | undefined;
/** stdout (the service lines) and everything printed (stdout and stderr, for failures). */
let stdout = '';
let output = '';
let exited: Promise<number | null>;
let lines: Map<string, string>;
let state: ClusterState;
let nats: NatsConnection | undefined;
const since = new Date();
const placed: Placed[] = [];

beforeAll(async () => {
  const startedAt = Date.now();
  await ensureClusterTools((line) => process.stderr.write(`${line}\n`));
  process.stderr.write(`cluster test: tools ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s\n`);
}, INSTALL_TIMEOUT_MS);

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-cluster-test-'));
  const startedAt = Date.now();
  const started = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'tools/dev/cluster.ts',
      '--data-dir',
      dataDir,
      '--fresh',
      '--any-ports',
      '--ephemeral',
    ],
    { cwd: ROOT, env: operatorEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child = started;
  started.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    output += chunk.toString();
  });
  started.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  exited = new Promise((resolve) => started.on('exit', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  await eventually(
    'start:cluster prints ready',
    () => {
      if (gone) throw new Error(`start:cluster exited before ready:\n${output.slice(-4_000)}`);
      return /^ready$/m.test(stdout);
    },
    { timeoutMs: START_TIMEOUT_MS, intervalMs: 200, detail: () => output.slice(-4_000) },
  );
  process.stderr.write(`cluster test: ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s\n`);
  lines = new Map(
    stdout
      .split('\n')
      .map((line) => /^([a-z-0-9]+): (.+)$/.exec(line))
      .flatMap((match) => (match ? [[match[1]!, match[2]!] as [string, string]] : [])),
  );
  state = JSON.parse(await readFile(path.join(dataDir, 'cluster.json'), 'utf8')) as ClusterState;
  nats = (await connect({ servers: state.natsUrls, name: 'cluster-test' })) as NatsConnection;
}, START_TIMEOUT_MS + 30_000);

afterAll(async () => {
  await nats?.close();
  // Only if a test failed before Ctrl-C: its children die with it (parent-death signal).
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

jest.setTimeout(TEST_TIMEOUT_MS);

describe('npm run start:cluster', () => {
  it('prints the service lines of the contract in order, every NATS node on one line, then ready', () => {
    const printed = stdout
      .split('\n')
      .filter((line) => /^(api|api-2|temporal|temporal-ui|nats|postgres): |^ready$/.test(line))
      .map((line) => line.split(':')[0]);
    expect(printed).toEqual(['api', 'api-2', 'temporal', 'temporal-ui', 'nats', 'postgres', 'ready']);
    expect(lines.get('api')).toBe(state.apiUrls[0]);
    expect(lines.get('api-2')).toBe(state.apiUrls[1]);
    expect(lines.get('nats')!.split(',')).toEqual(state.natsUrls);
    expect(state.natsUrls).toHaveLength(3);
    expect(lines.get('postgres')).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/orders$/);
  });

  it('runs the Temporal server on Postgres: persistence and visibility postgres12, at least 4 history shards', async () => {
    const connection = await Connection.connect({ address: lines.get('temporal')! });
    try {
      const info = await connection.workflowService.getClusterInfo({});
      expect({
        persistenceStore: info.persistenceStore,
        visibilityStore: info.visibilityStore,
        serverVersion: info.serverVersion,
      }).toEqual({
        persistenceStore: 'postgres12',
        visibilityStore: 'postgres12',
        serverVersion: TEMPORAL_SERVER_VERSION,
      });
      expect(info.historyShardCount).toBeGreaterThanOrEqual(4);
      const attributes = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      expect(Object.keys(attributes.customAttributes ?? {})).toEqual(
        expect.arrayContaining(Object.keys(SEARCH_ATTRIBUTES)),
      );
    } finally {
      await connection.close();
    }
    const ui = await fetch(`${lines.get('temporal-ui')}/api/v1/settings`);
    expect(ui.status).toBe(200);
    expect(((await ui.json()) as { Codec: { Endpoint: string } }).Codec.Endpoint).toBe(
      `${state.apiUrls[0]}/codec`,
    );
  });

  it('keeps stream ORDERS at 3 replicas, one on each node', async () => {
    const info = await streamInfo();
    expect(info.config.num_replicas).toBe(3);
    expect(info.config.subjects).toEqual([`${SUBJECT_PREFIX}.>`]);
    const nodes = [info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((replica) => replica.name)];
    expect(nodes.sort()).toEqual(['nats-1', 'nats-2', 'nats-3']);
  });

  it('runs the happy path and a declined payment through both api replicas, each event on the stream once, in order', async () => {
    const before = placed.length;
    for (const api of state.apiUrls) {
      placed.push(await placeOrder(api, 'completed', orderBody()));
      placed.push(await placeOrder(api, 'declined', orderBody({ paymentToken: 'tok_declined' })));
    }
    const mine = placed.slice(before);
    await expectOutcomes(mine);
    await expectEachEventOnceInOrder(mine);
  });

  it('when the stream leader node is SIGKILLed, the next orders still publish every committed event exactly once', async () => {
    const leader = (await streamInfo()).cluster?.leader;
    expect(leader).toMatch(/^nats-[123]$/);
    const victim = state.pieces[leader!]!.pid;
    const killedAt = new Date();
    process.kill(victim, 'SIGKILL');
    await eventually('the killed NATS node is gone', () => !isAlive(victim), { timeoutMs: 10_000 });
    // The two others elect a new leader for the stream: the stream stays available.
    await eventually(
      'stream ORDERS has a new leader',
      async () => {
        const info = await streamInfo().catch(() => undefined);
        return info?.cluster?.leader !== undefined && info.cluster.leader !== leader;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );

    const [first, second] = state.apiUrls as [string, string];
    const during = [
      await placeOrder(second, 'completed', orderBody()),
      await placeOrder(first, 'declined', orderBody({ paymentToken: 'tok_declined' })),
      await placeOrder(first, 'completed', orderBody()),
    ];
    placed.push(...during);
    await expectOutcomes(during);
    const published = await expectEachEventOnceInOrder(placed);
    // These events were published while the node was down (it still is: nothing restarts it).
    const duringIds = new Set(during.map((order) => order.orderId));
    const late = published.filter((row) => duringIds.has(row.aggregate_id));
    expect(late.length).toBe(during.length * 5);
    expect(late.every((row) => row.published_at >= killedAt)).toBe(true);
    expect(isAlive(victim)).toBe(false);
  });

  it('on Ctrl-C stops everything: exit code 0, no process and no port of the cluster left', async () => {
    const pids = [state.pid, ...Object.values(state.pieces).map((piece) => piece.pid)];
    const ports = [
      ...state.natsUrls.map((url) => Number(new URL(url).port)),
      ...state.apiUrls.map((url) => Number(new URL(url).port)),
      Number(lines.get('temporal')!.split(':')[1]),
      Number(new URL(lines.get('temporal-ui')!).port),
      Number(new URL(lines.get('postgres')!).port),
    ];
    await nats?.close();
    nats = undefined;
    child!.kill('SIGINT');
    const code = await eventually('start:cluster exits after SIGINT', () => exitedCode(), {
      timeoutMs: STOP_TIMEOUT_MS,
      intervalMs: 200,
      detail: () => output.slice(-2_000),
    });
    expect(code).toEqual({ code: 0 });
    expect(pids.filter(isAlive)).toEqual([]);
    const listening = await Promise.all(ports.map((port) => accepts(port)));
    expect(ports.filter((_, index) => listening[index])).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------

/** What an operator's shell would pass: no DATABASE_URL and friends, the tools cache and Go's settings. */
function operatorEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => ['PATH', 'HOME', 'TMPDIR', 'XDG_CACHE_HOME'].includes(name) || name.startsWith('GO'),
    ),
  );
}

async function placeOrder(api: string, kind: keyof typeof EVENTS, body: OrderBody): Promise<Placed> {
  const response = await fetch(`${api}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(202);
  const { orderId } = (await response.json()) as { orderId: string };
  return { orderId, path: kind, via: api };
}

/** Each order ends as its path says, read through the other api replica. */
async function expectOutcomes(orders: Placed[]): Promise<void> {
  for (const order of orders) {
    const other = state.apiUrls.find((api) => api !== order.via)!;
    const view = await eventually(
      `order ${order.orderId} (${order.path}) at rest`,
      async () => {
        const response = await fetch(`${other}/orders/${order.orderId}`);
        const body = (await response.json()) as OrderView;
        return isTerminal(body.status) ? body : undefined;
      },
      { timeoutMs: SAGA_TIMEOUT_MS, intervalMs: 200 },
    );
    expect({ orderId: order.orderId, status: view.status, failureReason: view.failureReason }).toEqual(
      order.path === 'completed'
        ? { orderId: order.orderId, status: 'COMPLETED', failureReason: null }
        : { orderId: order.orderId, status: 'FAILED', failureReason: 'payment_declined' },
    );
  }
}

interface OutboxRow {
  id: string;
  aggregate_id: string;
  sequence: number;
  type: string;
  published_at: Date;
}

/**
 * Every outbox event of `orders` is published (the relays got them all out), and on the
 * stream each appears exactly once (by Nats-Msg-Id), with the contract's types, in sequence
 * order per order. Returns the outbox rows.
 */
async function expectEachEventOnceInOrder(orders: Placed[]): Promise<OutboxRow[]> {
  const ids = orders.map((order) => order.orderId);
  const client = new pg.Client({ connectionString: lines.get('postgres')! });
  await client.connect();
  let rows: OutboxRow[];
  try {
    rows = await eventually(
      'every outbox event of the orders published',
      async () => {
        const { rows: found } = await client.query<OutboxRow & { published_at: Date | null }>(
          `SELECT id, aggregate_id, sequence, type, published_at
             FROM outbox WHERE aggregate_id = ANY($1::uuid[]) ORDER BY aggregate_id, sequence`,
          [ids],
        );
        return found.length === orders.length * 5 && found.every((row) => row.published_at !== null)
          ? found
          : undefined;
      },
      { timeoutMs: SAGA_TIMEOUT_MS, intervalMs: 200 },
    );
  } finally {
    await client.end();
  }
  const streamed: StreamedEvent[] = await readStream(nats!, since, ids);
  // Each committed event once: the stream's message ids are exactly the outbox ids.
  expect(streamed.map((event) => event.msgId).sort()).toEqual(rows.map((row) => row.id).sort());
  for (const order of orders) {
    const events = streamed.filter((event) => event.body.aggregateId === order.orderId);
    expect({ orderId: order.orderId, types: events.map((event) => event.body.type) }).toEqual({
      orderId: order.orderId,
      types: EVENTS[order.path],
    });
    expect(events.map((event) => event.body.sequence)).toEqual([1, 2, 3, 4, 5]);
    expect(events.map((event) => event.subject)).toEqual(
      EVENTS[order.path].map((type) => `${SUBJECT_PREFIX}.${type}`),
    );
  }
  return rows;
}

async function streamInfo(): Promise<StreamInfo> {
  const jsm = await jetstreamManager(nats!, { timeout: 5_000 });
  return jsm.streams.info(STREAM_NAME);
}

function exitedCode(): Promise<{ code: number | null } | undefined> {
  return Promise.race([
    exited.then((code) => ({ code })),
    new Promise<undefined>((resolve) => setImmediate(() => resolve(undefined))),
  ]);
}

/** True when something accepts a TCP connection on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(1_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
