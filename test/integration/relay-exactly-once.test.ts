import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Registry, type Counter } from 'prom-client';
import { appendEvent, type OutboxMessage } from '../../store/outbox';
import { withTransaction } from '../../store/tx';
import { createLogger } from '../../lib/logger';
import { SUBJECT_PREFIX, workflowIdFor, type EventType } from '../../contracts/index';
import { createOutboxRelay, NatsUnavailableError, type OutboxRelay } from '../../relay/relay';
import { ensureOrdersStream, type NatsConnection } from '../../relay/stream';
import { createPrivateNats, type PrivateNats } from '../support/private-nats';
import type { Pool } from '../../store/pool';
import { createTestDatabase } from '../support/stack';
import { readStream } from '../support/stream';
import { withQueryHook } from '../support/query-hook';

/**
 * Exactly once without a time limit (CONTRACT §5, issue 14): JetStream stores an event, its
 * PubAck never reaches the relay, and NATS then stays down for longer than the stream's
 * duplicate window, so JetStream no longer recognises the event's Nats-Msg-Id. After
 * recovery the stream must still hold the event once. The window is shortened to 1.5 s on
 * a NATS server of this file's own; the PubAck is lost for real, by a proxy between the
 * relay and NATS that stops passing the server's replies.
 */
jest.setTimeout(60_000);

const WINDOW_MS = 1_500;
const PROBE_SUBJECT = `${SUBJECT_PREFIX}.WindowProbe`;

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let dir: string;
let nats: PrivateNats;
let proxy: ReplyDroppingProxy;
let relayConnection: NatsConnection;
let reader: NatsConnection;
let readerJs: JetStreamClient;
const startedAt = new Date(Date.now() - 1_000);
const relays: OutboxRelay[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), 'relay-exactly-once-'));
  nats = await createPrivateNats(dir);
  await nats.start();
  proxy = await startReplyDroppingProxy(Number(new URL(nats.url).port));
  const reconnecting = { maxReconnectAttempts: -1, reconnectTimeWait: 100 };
  relayConnection = (await connect({ servers: proxy.url, ...reconnecting })) as NatsConnection;
  reader = (await connect({ servers: nats.url, ...reconnecting })) as NatsConnection;
  readerJs = jetstream(reader);
  await ensureOrdersStream(await jetstreamManager(reader), { duplicateWindowMs: WINDOW_MS });
});

afterAll(async () => {
  await Promise.all(relays.splice(0).map((relay) => relay.stop()));
  await relayConnection?.close();
  await reader?.close();
  await proxy?.close();
  await nats?.stop();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// ----------------------------------------------------------------------------- helpers

/** A TCP proxy to NATS that can stop passing what the server sends (PubAcks included). */
interface ReplyDroppingProxy {
  url: string;
  dropReplies: boolean;
  close(): Promise<void>;
}

async function startReplyDroppingProxy(targetPort: number): Promise<ReplyDroppingProxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
      socket.on('error', () => undefined); // the close handler tears both down
    }
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => {
      if (!state.dropReplies) client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const state: ReplyDroppingProxy = {
    url: `nats://127.0.0.1:${port}`,
    dropReplies: false,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return state;
}

function newRelay(registry: Registry, pool: Pool = db.pool): OutboxRelay {
  const relay = createOutboxRelay({
    pool,
    nats: relayConnection,
    logger: createLogger('relay-exactly-once-test', 'silent'),
    options: { pollIntervalMs: 100, publishTimeoutMs: 1_000, duplicateWindowMs: WINDOW_MS },
    registry,
  });
  relays.push(relay);
  return relay;
}

/** The test database's pool, except that the relay's mark (the UPDATE after the PubAcks) fails. */
function poolThatLosesMarks(): Pool {
  return withQueryHook(db.pool, (text) => {
    if (text.includes('SET published_at')) throw new Error('Connection terminated unexpectedly');
  });
}

async function insertOrder(): Promise<string> {
  const orderId = randomUUID();
  await db.pool.query(
    `INSERT INTO orders (id, workflow_id, customer_id, status, total_cents, shipping_address)
     VALUES ($1, $2, 'c-exactly-once', 'PENDING', 0, '{}')`,
    [orderId, workflowIdFor(orderId)],
  );
  return orderId;
}

async function appendCommitted(orderId: string, types: EventType[]): Promise<OutboxMessage[]> {
  return withTransaction(db.pool, async (tx) => {
    const messages: OutboxMessage[] = [];
    for (const type of types) messages.push(await appendEvent(tx, { orderId, type, data: {} }));
    return messages;
  });
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Whether the row is marked, and its age on the database's clock (older than any attempt). */
async function outboxRow(id: string): Promise<{ published: boolean; age_ms: number }> {
  const { rows } = await db.pool.query<{ published: boolean; age_ms: number }>(
    `SELECT published_at IS NOT NULL AS published,
            (extract(epoch FROM now() - occurred_at) * 1000)::float8 AS age_ms
       FROM outbox WHERE id = $1`,
    [id],
  );
  return rows[0]!;
}

/** The Nats-Msg-Ids on the stream for `orderId`, in stream order. */
async function streamedIds(orderId: string): Promise<(string | undefined)[]> {
  return (await readStream(reader, startedAt, [orderId])).map((event) => event.msgId);
}

/** Publishes the probe; true when JetStream stored it as new (it forgot the earlier copy). */
async function probeStoredAsNew(probeId: string): Promise<boolean> {
  try {
    const ack = await readerJs.publish(PROBE_SUBJECT, '{}', { msgID: probeId, timeout: 1_000 });
    return !ack.duplicate;
  } catch {
    return false; // still reconnecting
  }
}

async function counterValues(registry: Registry, name: string): Promise<Record<string, number>> {
  const metric = registry.getSingleMetric(name) as Counter | undefined;
  const values = (await metric!.get()).values;
  return Object.fromEntries(values.map((value) => [String(value.labels.result ?? ''), value.value]));
}

// ------------------------------------------------------------------------------- tests

test('when JetStream stored an event but its PubAck was lost and NATS then stayed down longer than the duplicate window, then after recovery the event is on the stream exactly once and its order continues in sequence', async () => {
  const registry = new Registry();
  const relay = newRelay(registry);
  // While replies still flow, the relay learns where the stream ends (the lookups' floor).
  const warmUp = await insertOrder();
  await appendCommitted(warmUp, ['OrderCreated']);
  expect(await relay.drainOnce()).toBe(1);

  const orderId = await insertOrder();
  const [created, reserved] = await appendCommitted(orderId, ['OrderCreated', 'InventoryReserved']);
  proxy.dropReplies = true;
  await expect(relay.drainOnce()).rejects.toBeInstanceOf(NatsUnavailableError);
  // JetStream has the first event; the relay never heard so, and sent nothing after it.
  expect(await streamedIds(orderId)).toEqual([created!.id]);
  expect(await outboxRow(created!.id)).toMatchObject({ published: false });
  // A probe stored right after it: once JetStream forgets the probe, it forgot the event.
  const probeId = `probe-${randomUUID()}`;
  expect(await probeStoredAsNew(probeId)).toBe(true);

  // The outage: NATS down until the attempt is two windows old (the database's clock).
  await nats.stop();
  proxy.dropReplies = false;
  await waitFor(
    async () => (await outboxRow(created!.id)).age_ms > 2 * WINDOW_MS,
    15_000,
    'the outage to outlast the duplicate window twice',
  );
  await nats.start();
  // A blind re-publish would now be stored again: the probe's re-publish is.
  await waitFor(() => probeStoredAsNew(probeId), 15_000, 'JetStream to forget the probe');

  let marked = 0;
  await waitFor(
    async () => {
      try {
        marked += await relay.drainOnce();
        return true;
      } catch (error) {
        if (error instanceof NatsUnavailableError) return false; // the relay is still reconnecting
        throw error;
      }
    },
    15_000,
    'the relay to drain after the outage',
  );

  expect(marked).toBe(2);
  expect(await streamedIds(orderId)).toEqual([created!.id, reserved!.id]);
  expect(await outboxRow(created!.id)).toMatchObject({ published: true });
  expect(await outboxRow(reserved!.id)).toMatchObject({ published: true });
  // The first was found on the stream (not sent); the second was never sent, so it was.
  expect(await counterValues(registry, 'outbox_stream_lookups_total')).toEqual({ found: 1, absent: 1 });
  expect(await counterValues(registry, 'outbox_publish_duplicates_total')).toEqual({ '': 0 });
  // The counterfactual: the probe, re-published after the window, is on the stream twice.
  const jsm = await jetstreamManager(reader);
  const probes = await jsm.streams.info('ORDERS', { subjects_filter: PROBE_SUBJECT });
  expect(probes.state.subjects?.[PROBE_SUBJECT]).toBe(2);

  // Later events of the order go out as usual, without lookups.
  const [completed] = await appendCommitted(orderId, ['OrderCompleted']);
  expect(await relay.drainOnce()).toBe(1);
  expect(await streamedIds(orderId)).toEqual([created!.id, reserved!.id, completed!.id]);
  expect(await counterValues(registry, 'outbox_stream_lookups_total')).toEqual({ found: 1, absent: 1 });
});

test('when the relay published a batch but could not mark it and stayed away longer than the duplicate window, then the relay that takes over finds the events on the stream and sends none of them again', async () => {
  const orderId = await insertOrder();
  const appended = await appendCommitted(orderId, ['OrderCreated', 'InventoryReserved', 'PaymentCaptured']);
  const ids = appended.map((message) => message.id);
  const crashed = newRelay(new Registry(), poolThatLosesMarks());
  await expect(crashed.drainOnce()).rejects.toThrow('Connection terminated unexpectedly');
  expect(await streamedIds(orderId)).toEqual(ids);
  for (const id of ids) expect(await outboxRow(id)).toMatchObject({ published: false });
  const probeId = `probe-${randomUUID()}`;
  expect(await probeStoredAsNew(probeId)).toBe(true);

  // Nothing marks them for two windows (the database's clock), and JetStream forgets them.
  await waitFor(
    async () => (await outboxRow(ids[2]!)).age_ms > 2 * WINDOW_MS,
    15_000,
    'two duplicate windows to pass',
  );
  await waitFor(() => probeStoredAsNew(probeId), 15_000, 'JetStream to forget the probe');

  const registry = new Registry();
  const successor = newRelay(registry);
  expect(await successor.drainOnce()).toBe(3);

  expect(await streamedIds(orderId)).toEqual(ids);
  for (const id of ids) expect(await outboxRow(id)).toMatchObject({ published: true });
  expect(await counterValues(registry, 'outbox_stream_lookups_total')).toEqual({ found: 3, absent: 0 });
});
