import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Registry, type Counter } from 'prom-client';
import {
  appendEvent,
  beginTenure,
  settlePublished,
  recordPublishFailures,
  selectPendingEvents,
  type OutboxFence,
} from '../../store/outbox';
import { createPool, type Pool } from '../../store/pool';
import { releasePartitions, takePartitions } from '../../store/relay-lease';
import { withTransaction } from '../../store/tx';
import { createLogger } from '../../lib/logger';
import { EVENT_TYPES } from '../../contracts/index';
import { createOutboxRelay, type OutboxRelay } from '../../relay/relay';
import { ensureOrdersStream, type NatsConnection } from '../../relay/stream';
import type { ManagedProcess } from '../../tools/dev/processes';
import { eventually } from '../../tools/fixtures/eventually';
import { chooseSeed, seededRng } from '../../tools/fixtures/seed';
import {
  OUTBOX_PARTITIONS,
  partitionOwners,
  partitionsHeldBy,
  startRelayProcess,
  waitUntilHolding,
} from '../support/relay-process';
import { createTestDatabase, stackEnv } from '../support/stack';
import { readStream } from '../support/stream';

/**
 * Relays that scale out (CONTRACT §7): several relays each publish a share of the outbox's
 * partitions, one relay per partition at a time; a dead relay's share moves to a live one
 * within 5 s; a relay that joins takes a share; and across every handover each committed
 * event is on the stream exactly once, in order per order (CONTRACT §5).
 *
 * Handover times are read from the database's own timestamps (when a lease was taken, when
 * a row was marked), after waits that fail when they time out; nothing sleeps and checks.
 * Which orders get which events comes from a seeded RNG (SEED=<n> or SEED=random).
 */
jest.setTimeout(120_000);

const HANDOVER_LIMIT_MS = 5_000;
const ORDERS = 64;

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let nats: NatsConnection;
let logDir: string;
const startedAt = new Date(Date.now() - 1_000);
const relays: OutboxRelay[] = [];
const processes: ManagedProcess[] = [];
const pools: Pool[] = [];
const seed = chooseSeed();
const rng = seededRng(seed);

beforeAll(async () => {
  process.stderr.write(`relay partitions test: seed ${seed} (SEED=<n> or SEED=random for another)\n`);
  db = await createTestDatabase();
  nats = (await connect({ servers: stackEnv().natsUrl })) as NatsConnection;
  await ensureOrdersStream(await jetstreamManager(nats));
  logDir = await mkdtemp(path.join(os.tmpdir(), 'relay-partitions-'));
});

afterEach(async () => {
  await Promise.all(processes.splice(0).map((relay) => relay.stop()));
  await Promise.all(relays.splice(0).map((relay) => relay.stop()));
  await Promise.all(pools.splice(0).map((pool) => pool.end()));
});

afterAll(async () => {
  await nats?.drain();
  await db?.drop();
  if (logDir) await rm(logDir, { recursive: true, force: true });
});

// ----------------------------------------------------------------------------- helpers

/** An in-process relay on a pool of its own, as a separate process would have. */
function inProcessRelay(registry = new Registry()): OutboxRelay {
  const pool = createPool(db.url, { max: 4 });
  pools.push(pool);
  const relay = createOutboxRelay({
    pool,
    nats,
    logger: createLogger('relay-partitions-test', 'silent'),
    options: { pollIntervalMs: 100 },
    registry,
  });
  relays.push(relay);
  return relay;
}

function relayProcess(): ManagedProcess {
  const relay = startRelayProcess({
    databaseUrl: db.url,
    natsUrl: stackEnv().natsUrl,
    logDir,
    env: { RELAY_POLL_INTERVAL: '100ms', RELAY_BATCH_SIZE: '100' },
    stopSignal: 'SIGTERM', // a clean stop gives the partitions back; the tests kill on purpose
  });
  processes.push(relay);
  return relay;
}

/** The partition Postgres gives an order (migrations/0007): the last byte of its id, mod 16. */
const partitionOf = (orderId: string): number => parseInt(orderId.slice(-2), 16) % OUTBOX_PARTITIONS;

/** `count` new orders, at least two in every partition. */
async function insertOrders(count: number): Promise<string[]> {
  const ids: string[] = [];
  const perPartition = new Array<number>(OUTBOX_PARTITIONS).fill(0);
  while (ids.length < count || perPartition.some((n) => n < 2)) {
    const id = randomUUID();
    perPartition[partitionOf(id)]!++;
    ids.push(id);
  }
  await db.pool.query(
    `INSERT INTO orders (id, workflow_id, customer_id, status, total_cents, shipping_address)
     SELECT id, 'order-' || id, 'c-relay-partitions', 'PENDING', 0, '{}' FROM unnest($1::uuid[]) AS t(id)`,
    [ids],
  );
  return ids;
}

async function appendTo(orderId: string, events = 1): Promise<void> {
  await withTransaction(db.pool, async (tx) => {
    for (let i = 0; i < events; i++)
      await appendEvent(tx, { orderId, type: rng.pick(EVENT_TYPES), data: { i } });
  });
}

/** Appends 1–3 events to an order the RNG picks, from `loops` writers, until stopped. */
function appendContinuously(orderIds: string[], loops = 2, pauseMs = 10) {
  let stopped = false;
  const writers = Array.from({ length: loops }, async () => {
    while (!stopped) {
      await appendTo(rng.pick(orderIds), rng.int(1, 3));
      await delay(pauseMs);
    }
  });
  return {
    stop: async (): Promise<void> => {
      stopped = true;
      await Promise.all(writers);
    },
  };
}

async function pending(orderIds: string[]): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM outbox WHERE aggregate_id = ANY($1::uuid[]) AND published_at IS NULL',
    [orderIds],
  );
  return rows[0]!.n;
}

async function waitUntilAllPublished(orderIds: string[], detail?: () => Promise<string>): Promise<void> {
  await eventually('every event to be published', async () => (await pending(orderIds)) === 0, {
    timeoutMs: 30_000,
    ...(detail ? { detail } : {}),
  });
}

/** The database's clock now (handover times are measured on it, as leases are). */
async function dbNow(): Promise<Date> {
  const { rows } = await db.pool.query<{ now: Date }>('SELECT clock_timestamp() AS now');
  return rows[0]!.now;
}

/** Every outbox row of the orders on the stream exactly once, each order's in sequence order. */
async function expectExactlyOnceInOrder(orderIds: string[]): Promise<number> {
  const { rows: outbox } = await db.pool.query<{ id: string; aggregate_id: string }>(
    'SELECT id, aggregate_id FROM outbox WHERE aggregate_id = ANY($1::uuid[])',
    [orderIds],
  );
  const streamed = await readStream(nats, startedAt, orderIds);
  const copies = new Map<string, number>();
  for (const event of streamed) copies.set(event.body.id, (copies.get(event.body.id) ?? 0) + 1);
  expect({
    duplicated: [...copies].filter(([, n]) => n > 1).map(([id]) => id),
    missing: outbox.filter((row) => !copies.has(row.id)).map((row) => row.id),
    badMsgIds: streamed.filter((event) => event.msgId !== event.body.id).length,
  }).toEqual({ duplicated: [], missing: [], badMsgIds: 0 });
  for (const orderId of orderIds) {
    const sequences = streamed.filter((e) => e.body.aggregateId === orderId).map((e) => e.body.sequence);
    const expected = outbox.filter((row) => row.aggregate_id === orderId).length;
    expect(sequences).toEqual(Array.from({ length: expected }, (_, i) => i + 1));
  }
  return streamed.length;
}

async function counterValue(registry: Registry, name: string): Promise<number> {
  const metric = registry.getSingleMetric(name) as Counter | undefined;
  return (await metric!.get()).values.reduce((sum, value) => sum + value.value, 0);
}

function expectShares(shares: number[][]): void {
  for (const share of shares) expect(share.length).toBeGreaterThan(0);
  const all = shares.flat().sort((a, b) => a - b);
  expect(all).toEqual(Array.from({ length: OUTBOX_PARTITIONS }, (_, partition) => partition)); // disjoint, complete
}

// ------------------------------------------------------------------------------- tests

test('when a second relay joins a running one, then within 5 s each holds a non-empty share, together every partition once, and every event is published once, in order per order, across the rebalance', async () => {
  const orderIds = await insertOrders(ORDERS);
  const firstRegistry = new Registry();
  const secondRegistry = new Registry();
  const first = inProcessRelay(firstRegistry);
  await first.start();
  expect(first.heldPartitions()).toHaveLength(OUTBOX_PARTITIONS);

  const writers = appendContinuously(orderIds);
  try {
    await eventually(
      'the first relay to publish',
      async () => (await counterValue(firstRegistry, 'outbox_published_total')) > 0,
    );
    const joinedAt = await dbNow();
    const second = inProcessRelay(secondRegistry);
    await second.start();
    await eventually(
      'the two relays to split the partitions',
      () => first.heldPartitions().length === 8 && second.heldPartitions().length === 8,
      15_000,
    );
    expectShares([first.heldPartitions(), second.heldPartitions()]);
    expect(await partitionOwners(db.pool)).toEqual(
      Array.from({ length: OUTBOX_PARTITIONS }, (_, partition) =>
        second.heldPartitions().includes(partition) ? second.relayId : first.relayId,
      ),
    );
    const { rows } = await db.pool.query<{ last_taken: Date }>(
      'SELECT max(taken_at) AS last_taken FROM outbox_partitions WHERE owner = $1',
      [second.relayId],
    );
    expect(rows[0]!.last_taken.getTime() - joinedAt.getTime()).toBeLessThan(HANDOVER_LIMIT_MS);
    // Both publish their shares while events keep coming.
    await eventually(
      'the joining relay to publish its share',
      async () => (await counterValue(secondRegistry, 'outbox_published_total')) > 0,
      15_000,
    );
  } finally {
    await writers.stop();
  }
  await waitUntilAllPublished(orderIds);
  expect(await counterValue(firstRegistry, 'outbox_partition_published_total')).toBeGreaterThan(0);
  expect(await expectExactlyOnceInOrder(orderIds)).toBeGreaterThan(100);
});

test('when one of two relay processes is SIGKILLed while events commit, then the other takes its share within 5 s, measured by the first event of each of those partitions it publishes, and every event is on the stream once, in order per order', async () => {
  const orderIds = await insertOrders(ORDERS);
  const doomed = relayProcess();
  const survivor = relayProcess();
  await eventually(
    'the two relay processes to split the partitions',
    async () =>
      (await partitionsHeldBy(doomed, db.pool)).length === 8 &&
      (await partitionsHeldBy(survivor, db.pool)).length === 8,
    {
      timeoutMs: 30_000,
      detail: async () => `logs:\n${await doomed.lastLines(10)}\n${await survivor.lastLines(10)}`,
    },
  );
  expectShares([await partitionsHeldBy(doomed, db.pool), await partitionsHeldBy(survivor, db.pool)]);

  const writers = appendContinuously(orderIds);
  let killedAt: Date;
  let orphaned: number[];
  try {
    await eventually('both relays to publish', async () => {
      const { rows } = await db.pool.query<{ partition: number }>(
        'SELECT DISTINCT partition FROM outbox WHERE published_at IS NOT NULL AND aggregate_id = ANY($1::uuid[])',
        [orderIds],
      );
      const published = new Set(rows.map((row) => row.partition));
      const mine = await partitionsHeldBy(doomed, db.pool);
      return (
        mine.some((p) => published.has(p)) &&
        (await partitionsHeldBy(survivor, db.pool)).some((p) => published.has(p))
      );
    });
    orphaned = await partitionsHeldBy(doomed, db.pool);
    doomed.kill('SIGKILL');
    killedAt = await dbNow();
    await doomed.exited;
    // An event in every orphaned partition right after the kill, so each shows when it moved.
    for (const partition of orphaned) {
      await appendTo(orderIds.find((id) => partitionOf(id) === partition)!);
    }
    await waitUntilHolding(survivor, db.pool, { timeoutMs: 15_000 });
  } finally {
    await writers.stop();
  }
  await waitUntilAllPublished(orderIds, async () => `survivor's log:\n${await survivor.lastLines(20)}`);

  // Per orphaned partition: when the survivor first marked one of its events after the kill.
  const { rows } = await db.pool.query<{ partition: number; first_published: Date }>(
    `SELECT partition, min(published_at) AS first_published FROM outbox
      WHERE aggregate_id = ANY($1::uuid[]) AND partition = ANY($2::smallint[]) AND published_at > $3
      GROUP BY partition ORDER BY partition`,
    [orderIds, orphaned, killedAt],
  );
  expect(rows.map((row) => row.partition)).toEqual([...orphaned].sort((a, b) => a - b));
  const handoverMs = Math.max(...rows.map((row) => row.first_published.getTime() - killedAt.getTime()));
  process.stderr.write(`relay partitions test: share moved in ${handoverMs} ms after the SIGKILL\n`);
  expect(handoverMs).toBeLessThan(HANDOVER_LIMIT_MS);
  expect(await expectExactlyOnceInOrder(orderIds)).toBeGreaterThan(100);
});

test('when a relay process is frozen (SIGSTOP) past its lease and thawed, then the other relay has taken its share meanwhile, the thawed one rejoins and takes a share again, and no event is lost, doubled or reordered', async () => {
  const orderIds = await insertOrders(ORDERS);
  const frozen = relayProcess();
  const other = relayProcess();
  await eventually(
    'the two relay processes to split the partitions',
    async () =>
      (await partitionsHeldBy(frozen, db.pool)).length === 8 &&
      (await partitionsHeldBy(other, db.pool)).length === 8,
    { timeoutMs: 30_000 },
  );
  const writers = appendContinuously(orderIds);
  try {
    await eventually('the relays to publish', async () => {
      const { rows } = await db.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM outbox WHERE aggregate_id = ANY($1::uuid[]) AND published_at IS NOT NULL',
        [orderIds],
      );
      return rows[0]!.n > 20;
    });
    frozen.kill('SIGSTOP'); // mid-batch, as likely as not
    await waitUntilHolding(other, db.pool, { timeoutMs: 15_000 });
    frozen.kill('SIGCONT');
    await eventually(
      'the thawed relay to hold a share again',
      async () => (await partitionsHeldBy(frozen, db.pool)).length === 8,
      { timeoutMs: 15_000, detail: async () => `its log:\n${await frozen.lastLines(20)}` },
    );
  } finally {
    frozen.kill('SIGCONT');
    await writers.stop();
  }
  await waitUntilAllPublished(orderIds);
  expect(frozen.hasExited()).toBe(false);
  expect(await frozen.lastLines(200)).toMatch(/lost an outbox partition lease/);
  expect(await expectExactlyOnceInOrder(orderIds)).toBeGreaterThan(50);
});

test('when a lease has moved on, then statements fenced by its old owner or epoch touch nothing, and the new holder’s do', async () => {
  const [orderId] = await insertOrders(1);
  await appendTo(orderId!, 1);
  const partition = partitionOf(orderId!);
  const ttlMs = 60_000;
  await eventually('no relay of an earlier test to hold a lease', async () =>
    (await partitionOwners(db.pool)).every((owner) => owner === null),
  );
  const [old] = await takePartitions(db.pool, 'old-relay', [partition], ttlMs);
  expect(old).toBeDefined();
  // Another relay cannot take a current lease.
  expect(await takePartitions(db.pool, 'new-relay', [partition], ttlMs)).toEqual([]);

  // The old holder's lease expires (it froze), and another relay takes the partition.
  await db.pool.query(
    "UPDATE outbox_partitions SET expires_at = now() - interval '1 second' WHERE partition = $1",
    [partition],
  );
  const [current] = await takePartitions(db.pool, 'new-relay', [partition], ttlMs);
  expect(current!.epoch).toBeGreaterThan(old!.epoch);
  const stale: OutboxFence = { owner: 'old-relay', epochs: [old!.epoch], partitions: [partition] };
  const holder: OutboxFence = { owner: 'new-relay', epochs: [current!.epoch], partitions: [partition] };

  const rows = await selectPendingEvents(db.pool, holder, 10);
  const ids = rows.filter((row) => row.aggregate_id === orderId).map((row) => row.id);
  expect(ids).toHaveLength(1);
  const settleAll = (fence: OutboxFence) =>
    settlePublished(db.pool, fence, {
      publishedIds: ids,
      unmarked: [{ id: ids[0]!, attemptedSince: new Date(), floorSeq: 7 }],
      partitions: [partition],
      floorSeq: 7,
    });
  expect([...(await beginTenure(db.pool, stale, 7))]).toEqual([]);
  expect(await settleAll(stale)).toEqual([]);
  expect(
    await recordPublishFailures(db.pool, stale, [{ id: ids[0]!, error: 'stale', retryDelayMs: 1 }], 1),
  ).toEqual([]);
  const { rows: untouched } = await db.pool.query(
    'SELECT attempts, parked_at, publish_attempted_at, published_at FROM outbox WHERE id = $1',
    [ids[0]],
  );
  expect(untouched).toEqual([
    { attempts: 0, parked_at: null, publish_attempted_at: null, published_at: null },
  ]);

  // The old owner taking the partition back later gets a new epoch: its old one stays refused.
  await releasePartitions(db.pool, 'new-relay', [current!]);
  const [again] = await takePartitions(db.pool, 'old-relay', [partition], ttlMs);
  expect(await settleAll(stale)).toEqual([]);
  const renewed: OutboxFence = { owner: 'old-relay', epochs: [again!.epoch], partitions: [partition] };
  expect([...(await beginTenure(db.pool, renewed, 7))]).toEqual([partition]);
  expect(await settleAll(renewed)).toEqual([{ id: ids[0], partition }]);
  await releasePartitions(db.pool, 'old-relay', [again!]);
});
