import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { appendEvent } from '../../store/outbox';
import { withTransaction } from '../../store/tx';
import type { ManagedProcess } from '../../tools/dev/processes';
import type { EventType } from '../../contracts/index';
import type { NatsConnection } from '../../relay/stream';
import { createPrivateNats, type PrivateNats } from '../support/private-nats';
import { startRelayProcess, waitUntilHolding } from '../support/relay-process';
import { createTestDatabase } from '../support/stack';
import { readStream } from '../support/stream';
import { eventually } from '../../tools/fixtures/eventually';

/**
 * NATS goes away while orders keep committing events (CONTRACT §5): the relay
 * process (as `npm run relay` runs it) must ride it out, then deliver every event once, in
 * order per order, parking none (an outage is not the events' fault). The NATS server is
 * this file's own, so stopping it disturbs no other test. The outage is measured in events,
 * not seconds: NATS stops once some events are published and comes back once more than
 * PENDING_AT_RESTART committed meanwhile (about 13 s at one event per 250 ms).
 */
jest.setTimeout(90_000);

const ORDERS = 20;
const EVENTS_PER_ORDER: EventType[] = [
  'OrderCreated',
  'InventoryReserved',
  'PaymentCaptured',
  'ShipmentCreated',
  'OrderCompleted',
];
const APPEND_EVERY_MS = 250; // 100 events over 25 s
const PENDING_AT_RESTART = 50;

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let dir: string;
let nats: PrivateNats;
let relay: ManagedProcess | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), 'nats-outage-'));
  nats = await createPrivateNats(dir);
  await nats.start();
});

afterAll(async () => {
  await relay?.stop();
  await nats?.stop();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, params);
  return rows[0]!.n;
}

test('when NATS is stopped while more than 50 events commit, then after its restart every event arrives exactly once, in order per order, and none is parked', async () => {
  const startedAt = new Date(Date.now() - 1_000);
  const orderIds = Array.from({ length: ORDERS }, () => randomUUID());
  await db.pool.query(
    `INSERT INTO orders (id, workflow_id, customer_id, status, total_cents, shipping_address)
     SELECT id, 'order-' || id, 'c-nats-outage', 'PENDING', 0, '{}' FROM unnest($1::uuid[]) AS t(id)`,
    [orderIds],
  );
  relay = startRelayProcess({
    databaseUrl: db.url,
    natsUrl: nats.url,
    logDir: dir,
    // Few attempts: were outage errors counted against events, they would park within the outage.
    env: { RELAY_POLL_INTERVAL: '100ms', RELAY_MAX_ATTEMPTS: '3' },
    stopSignal: 'SIGTERM',
  });
  await waitUntilHolding(relay, db.pool);

  // Round by round: every order gets its next event, one transaction each, every 250 ms.
  const appending = (async () => {
    for (const type of EVENTS_PER_ORDER) {
      for (const orderId of orderIds) {
        await withTransaction(db.pool, (tx) => appendEvent(tx, { orderId, type, data: {} }));
        await delay(APPEND_EVERY_MS);
      }
    }
  })();

  await eventually(
    'the relay publishing before the outage',
    async () => (await count('outbox WHERE published_at IS NOT NULL')) > 0,
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  await nats.stop();
  // The outage is real: events commit meanwhile, and none of them can be published.
  await eventually(
    `more than ${PENDING_AT_RESTART} events committed during the outage`,
    async () => (await count('outbox WHERE published_at IS NULL')) > PENDING_AT_RESTART,
    { timeoutMs: 45_000, intervalMs: 100 },
  );
  expect(relay.hasExited()).toBe(false);
  await nats.start();

  await appending;
  await eventually(
    'every event published after the last append',
    async () => (await count('outbox WHERE published_at IS NULL')) === 0,
    { timeoutMs: 20_000, intervalMs: 100, detail: async () => `relay log:\n${await relay!.lastLines(30)}` },
  );

  expect(await count('outbox')).toBe(ORDERS * EVENTS_PER_ORDER.length);
  expect(await count('outbox WHERE parked_at IS NOT NULL')).toBe(0);
  const reader = (await connect({ servers: nats.url })) as NatsConnection;
  try {
    const streamed = await readStream(reader, startedAt, orderIds);
    const { rows: outbox } = await db.pool.query<{ id: string }>('SELECT id FROM outbox ORDER BY id');
    expect(streamed.map((event) => event.body.id).sort()).toEqual(outbox.map((row) => row.id));
    expect(streamed.filter((event) => event.msgId !== event.body.id)).toEqual([]);
    for (const orderId of orderIds) {
      expect(
        streamed.filter((event) => event.body.aggregateId === orderId).map((event) => event.body.type),
      ).toEqual(EVENTS_PER_ORDER);
    }
  } finally {
    await reader.close();
  }
  expect(relay.hasExited()).toBe(false);
  expect(await relay.stop()).toMatchObject({ code: 0 });
});
