import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Registry, type Counter } from 'prom-client';
import { createPool, type Pool } from '../../store/pool';
import { appendEvent, type OutboxMessage } from '../../store/outbox';
import { withTransaction } from '../../store/tx';
import { createLogger } from '../../lib/logger';
import { subjectFor, workflowIdFor, type EventType } from '../../contracts/index';
import { createOutboxRelay, type OutboxRelay, type RelayOptions } from '../../relay/relay';
import { ensureOrdersStream, type NatsConnection } from '../../relay/stream';
import { createTestDatabase, stackEnv } from '../support/stack';
import { eventually } from '../../tools/fixtures/eventually';
import { readStream, type StreamedEvent } from '../support/stream';
import { withQueryHook } from '../support/query-hook';

/**
 * The outbox relay against real Postgres and NATS JetStream (CONTRACT §5): every committed
 * event reaches stream ORDERS once, in order per order; rolled-back events never do.
 * The stream is shared by every test file, so each check reads only this file's orders.
 */
jest.setTimeout(30_000);

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let nats: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
const startedAt = new Date(Date.now() - 1_000);
const relays: OutboxRelay[] = [];
const extraPools: Pool[] = [];
const silent = createLogger('relay-test', 'silent');

beforeAll(async () => {
  db = await createTestDatabase();
  nats = (await connect({ servers: stackEnv().natsUrl })) as NatsConnection;
  js = jetstream(nats);
  jsm = await jetstreamManager(nats);
  await ensureOrdersStream(jsm);
});

afterEach(async () => {
  await Promise.all(relays.splice(0).map((relay) => relay.stop()));
  await Promise.all(extraPools.splice(0).map((pool) => pool.end()));
});

afterAll(async () => {
  await nats?.drain();
  await db?.drop();
});

// ----------------------------------------------------------------------------- helpers

function newRelay(
  options: Partial<RelayOptions> = {},
  { pool = db.pool, registry = new Registry() }: { pool?: Pool; registry?: Registry } = {},
): OutboxRelay {
  const relay = createOutboxRelay({
    pool,
    nats,
    logger: silent,
    options: { pollIntervalMs: 100, ...options },
    registry,
  });
  relays.push(relay);
  return relay;
}

async function insertOrder(): Promise<string> {
  const orderId = randomUUID();
  await db.pool.query(
    `INSERT INTO orders (id, workflow_id, customer_id, status, total_cents, shipping_address, correlation_id)
     VALUES ($1, $2, 'c-relay', 'PENDING', 0, '{}', $3)`,
    [orderId, workflowIdFor(orderId), `req-${orderId}`],
  );
  return orderId;
}

/** Appends `types` to one order in one committed transaction. */
async function appendCommitted(orderId: string, types: EventType[]): Promise<OutboxMessage[]> {
  return withTransaction(db.pool, async (tx) => {
    const messages: OutboxMessage[] = [];
    for (const type of types) messages.push(await appendEvent(tx, { orderId, type, data: { note: type } }));
    return messages;
  });
}

/** The stream's messages of `orderIds` (published since this file started), in stream order. */
const streamed = (orderIds: string[]): Promise<StreamedEvent[]> => readStream(nats, startedAt, orderIds);

/** The shared eventually(), timeout first as this file always calls it. */
async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  await eventually(what, condition, timeoutMs);
}

async function isPublished(id: string): Promise<boolean> {
  const { rows } = await db.pool.query<{ published: boolean }>(
    'SELECT published_at IS NOT NULL AS published FROM outbox WHERE id = $1',
    [id],
  );
  return rows[0]?.published === true;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

async function counterValue(registry: Registry, name: string): Promise<number> {
  const metric = registry.getSingleMetric(name) as Counter | undefined;
  return (await metric!.get()).values[0]?.value ?? 0;
}

// ------------------------------------------------------------------------------- tests

test('when events are appended, then each is published once to orders.events.<Type>, in sequence order per order', async () => {
  const first = await insertOrder();
  const second = await insertOrder();
  const appended = [
    ...(await appendCommitted(first, ['OrderCreated'])),
    ...(await appendCommitted(second, ['OrderCreated', 'InventoryReserved'])),
    ...(await appendCommitted(first, ['InventoryReserved', 'PaymentCaptured'])),
    ...(await appendCommitted(second, ['OrderFailed'])),
  ];
  const relay = newRelay();

  expect(await relay.drainOnce()).toBe(appended.length);
  expect(await relay.drainOnce()).toBe(0);

  const events = await streamed([first, second]);
  expect(events).toHaveLength(appended.length);
  for (const message of appended) {
    const copies = events.filter((event) => event.msgId === message.id);
    expect(copies).toHaveLength(1);
    expect(copies[0]!.subject).toBe(subjectFor(message.type));
    expect(copies[0]!.body).toEqual(message);
  }
  for (const orderId of [first, second]) {
    const sequences = events
      .filter((event) => event.body.aggregateId === orderId)
      .map((event) => event.body.sequence);
    expect(sequences).toEqual(sequences.map((_, index) => index + 1));
  }
  const { rows } = await db.pool.query<{ unpublished: number }>(
    'SELECT count(*)::int AS unpublished FROM outbox WHERE aggregate_id = ANY($1::uuid[]) AND published_at IS NULL',
    [[first, second]],
  );
  expect(rows[0]!.unpublished).toBe(0);
});

test('when transactions commit out of position order, then no committed event is skipped and no rolled-back one appears', async () => {
  const [orderA, orderB, orderC] = [await insertOrder(), await insertOrder(), await insertOrder()];
  const relay = newRelay();

  // A appends first (so takes the smaller position) but commits last.
  const appendedA = deferred();
  const commitA = deferred();
  const transactionA = withTransaction(db.pool, async (tx) => {
    const message = await appendEvent(tx, { orderId: orderA, type: 'OrderCreated', data: {} });
    appendedA.resolve();
    await commitA.promise;
    return message;
  });
  await appendedA.promise;
  const [messageB] = await appendCommitted(orderB, ['OrderCreated']);
  expect(await relay.drainOnce()).toBe(1); // only B is committed

  commitA.resolve();
  const messageA = await transactionA;
  const { rows } = await db.pool.query<{ id: string }>(
    'SELECT id FROM outbox WHERE id = ANY($1::uuid[]) ORDER BY position',
    [[messageA.id, messageB!.id]],
  );
  expect(rows.map((row) => row.id)).toEqual([messageA.id, messageB!.id]); // A sits behind published B
  expect(await relay.drainOnce()).toBe(1); // and is still found

  await expect(
    withTransaction(db.pool, async (tx) => {
      await appendEvent(tx, { orderId: orderC, type: 'OrderCreated', data: {} });
      throw new Error('roll back C');
    }),
  ).rejects.toThrow('roll back C');
  expect(await relay.drainOnce()).toBe(0);

  const events = await streamed([orderA, orderB, orderC]);
  expect(events.map((event) => event.msgId).sort()).toEqual([messageA.id, messageB!.id].sort());
});

test('when the relay died between publishing and marking, then the re-publish is dropped as a duplicate and the row is marked', async () => {
  const orderId = await insertOrder();
  const [message] = await appendCommitted(orderId, ['OrderCreated']);
  const { rows } = await db.pool.query<{ subject: string; body: string }>(
    'SELECT subject, body::text AS body FROM outbox WHERE id = $1',
    [message!.id],
  );
  // What a relay that died before its UPDATE leaves behind: on the stream, not marked.
  await js.publish(rows[0]!.subject, rows[0]!.body, { msgID: message!.id });
  expect(await isPublished(message!.id)).toBe(false);

  const registry = new Registry();
  const relay = newRelay({}, { registry });
  expect(await relay.drainOnce()).toBe(1);

  expect(await isPublished(message!.id)).toBe(true);
  expect(await counterValue(registry, 'outbox_publish_duplicates_total')).toBe(1);
  expect((await streamed([orderId])).map((event) => event.msgId)).toEqual([message!.id]);
});

test('when an event keeps failing, then it is parked and holds back only its own order', async () => {
  const blocked = await insertOrder();
  const other = await insertOrder();
  // Larger than NATS's max_payload (1 MiB by default): JetStream can never take it.
  const poison = await withTransaction(db.pool, (tx) =>
    appendEvent(tx, { orderId: blocked, type: 'OrderCreated', data: { blob: 'x'.repeat(2 * 1024 * 1024) } }),
  );
  const [later] = await appendCommitted(blocked, ['OrderFailed']);
  const [fine] = await appendCommitted(other, ['OrderCreated']);
  const relay = newRelay({ maxAttempts: 1 });

  expect(await relay.drainOnce()).toBe(1);

  const { rows } = await db.pool.query<{
    id: string;
    attempts: number;
    parked: boolean;
    last_error: string | null;
  }>(
    `SELECT id, attempts, parked_at IS NOT NULL AS parked, last_error FROM outbox
      WHERE id = ANY($1::uuid[]) ORDER BY sequence`,
    [[poison.id, later!.id]],
  );
  expect(rows).toEqual([
    { id: poison.id, attempts: 1, parked: true, last_error: expect.stringContaining('max_payload') },
    { id: later!.id, attempts: 0, parked: false, last_error: null },
  ]);
  expect(await isPublished(fine!.id)).toBe(true);
  expect(await relay.drainOnce()).toBe(0); // the later event waits behind the parked one
  expect((await streamed([blocked, other])).map((event) => event.msgId)).toEqual([fine!.id]);
});

test('when two relays share a database and one stops, then the other takes its partitions at once and publishes', async () => {
  const pools = [createPool(db.url, { max: 3 }), createPool(db.url, { max: 3 })] as const;
  extraPools.push(...pools);
  const first = newRelay({}, { pool: pools[0] });
  const second = newRelay({}, { pool: pools[1] });
  await first.start();
  expect(first.heldPartitions()).toHaveLength(16); // alone, it holds them all
  await second.start();
  await waitFor(
    () => first.heldPartitions().length === 8 && second.heldPartitions().length === 8,
    10_000,
    'the two relays to hold eight partitions each',
  );

  const orderId = await insertOrder();
  const [before] = await appendCommitted(orderId, ['OrderCreated']);
  await waitFor(() => isPublished(before!.id), 5_000, 'a relay to publish');

  await first.stop(); // gives its partitions back: no lease to wait out
  await waitFor(
    () => second.heldPartitions().length === 16,
    5_000,
    'the other relay to take every partition',
  );

  const [after] = await appendCommitted(orderId, ['OrderCompleted']);
  await waitFor(() => isPublished(after!.id), 5_000, 'the remaining relay to publish');
  expect((await streamed([orderId])).map((event) => event.msgId)).toEqual([before!.id, after!.id]);
});

test("when every connection of a relay's pool is terminated, then it keeps its partitions and publishes on new connections", async () => {
  const pool = createPool(db.url, { max: 3, applicationName: 'relay-test-terminated' });
  extraPools.push(pool);
  const relay = newRelay({}, { pool });
  await relay.start();
  expect(relay.heldPartitions()).toHaveLength(16);

  const { rowCount } = await db.pool.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE application_name = 'relay-test-terminated' AND datname = current_database()`,
  );
  expect(rowCount).toBeGreaterThan(0);

  const orderId = await insertOrder();
  const [message] = await appendCommitted(orderId, ['OrderCreated']);
  await waitFor(() => isPublished(message!.id), 5_000, 'the relay to publish on new connections');
  expect(relay.heldPartitions()).toHaveLength(16);
  expect((await streamed([orderId])).map((event) => event.msgId)).toEqual([message!.id]);
});

test('when a relay publishes several batches, then it writes nothing to the outbox before publishing and marks them all in one statement', async () => {
  // Every statement the relay runs that writes outbox rows, counted.
  const outboxWrites: string[] = [];
  const counted = withQueryHook(db.pool, (text) => {
    if (/UPDATE outbox o\b/.test(text)) outboxWrites.push(text.includes('SET published_at') ? 'settle' : 'other');
  });
  // Marks wait far longer than the test: only leaving makes the relay settle.
  const relay = newRelay({ markDelayMs: 600_000 }, { pool: counted });
  await relay.start();
  const orderId = await insertOrder();
  const [created] = await appendCommitted(orderId, ['OrderCreated']);
  await waitFor(async () => (await streamed([orderId])).length === 1, 10_000, 'the first batch on the stream');
  const [reserved] = await appendCommitted(orderId, ['InventoryReserved']);
  await waitFor(async () => (await streamed([orderId])).length === 2, 10_000, 'the second batch on the stream');
  // On the stream, not marked yet; and nothing but the tenure's start wrote to the outbox.
  expect(await isPublished(created!.id)).toBe(false);
  expect(outboxWrites.filter((write) => write === 'settle')).toEqual([]);

  await relay.stop();

  expect(outboxWrites.filter((write) => write === 'settle')).toEqual(['settle']);
  expect(await isPublished(created!.id)).toBe(true);
  expect(await isPublished(reserved!.id)).toBe(true);
  expect((await streamed([orderId])).map((event) => event.msgId)).toEqual([created!.id, reserved!.id]);
  // Left with everything settled: the next holder of the partition inherits nothing.
  const { rows } = await db.pool.query<{ attempts_since: Date | null }>(
    `SELECT p.attempts_since FROM outbox_partitions p JOIN outbox o ON o.partition = p.partition
      WHERE o.id = $1`,
    [created!.id],
  );
  expect(rows).toEqual([{ attempts_since: null }]);
});
