/**
 * Backlog drain: with the relay stopped, N events pile up in the outbox (N/5 orders of five
 * events each, like completed sagas); then the relay's own code, createOutboxRelay with the
 * relay process' settings, runs in this process and drainOnce() publishes them. Drain
 * events/s = N ÷ the time until none is pending.
 */
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { createPool } from '../../store/pool';
import { createLogger } from '../../lib/logger';
import { createOutboxRelay, type RelayOptions } from '../../relay/relay';
import type { NatsConnection } from '../../relay/stream';

const EVENTS_PER_ORDER = 5;
const HAPPY_PATH = [
  'OrderCreated',
  'InventoryReserved',
  'PaymentCaptured',
  'ShipmentCreated',
  'OrderCompleted',
];

export interface DrainResult {
  events: number;
  seconds: number;
  eventsPerS: number;
  batchSize: number;
  /** Rows still pending when drainOnce gave up (0 on success). */
  leftOver: number;
}

export async function pendingEvents(databaseUrl: string): Promise<number> {
  const pool = createPool(databaseUrl, { max: 1, applicationName: 'order-saga-bench' });
  try {
    return await countPending(pool);
  } finally {
    await pool.end();
  }
}

async function countPending(pool: ReturnType<typeof createPool>): Promise<number> {
  const { rows } = await pool.query<{ pending: number }>(
    'SELECT count(*)::int AS pending FROM outbox WHERE published_at IS NULL AND parked_at IS NULL',
  );
  return rows[0]?.pending ?? 0;
}

export async function measureDrain(options: {
  databaseUrl: string;
  nats: NatsConnection;
  events: number;
  relay: Partial<RelayOptions>;
}): Promise<DrainResult> {
  const orders = Math.max(1, Math.round(options.events / EVENTS_PER_ORDER));
  const events = orders * EVENTS_PER_ORDER;
  // The relay process' pool size (relay/main.ts).
  const pool = createPool(options.databaseUrl, { max: 4, applicationName: 'order-saga-bench-drain' });
  try {
    // The body is the message appendEvent would write; data marks it as the bench's.
    await pool.query(
      `WITH orders AS (SELECT gen_random_uuid() AS order_id FROM generate_series(1, $1)),
            events AS (
              SELECT gen_random_uuid() AS id, o.order_id, s.seq, ($2::text[])[s.seq] AS type
                FROM orders o CROSS JOIN generate_series(1, $3) AS s(seq))
       INSERT INTO outbox (id, aggregate_type, aggregate_id, sequence, type, subject, body, occurred_at)
       SELECT id, 'order', order_id, seq, type, 'orders.events.' || type,
              jsonb_build_object(
                'id', id, 'type', type, 'schemaVersion', 1, 'aggregateType', 'order',
                'aggregateId', order_id, 'sequence', seq,
                'occurredAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                'workflowId', 'bench-drain-' || order_id, 'correlationId', NULL,
                'data', jsonb_build_object('benchmark', true)),
              now()
         FROM events ORDER BY order_id, seq`,
      [orders, HAPPY_PATH, EVENTS_PER_ORDER],
    );
    const relay = createOutboxRelay({
      pool,
      nats: options.nats,
      logger: createLogger('bench-drain', 'warn'),
      options: options.relay,
      registry: new Registry(),
    });
    const started = performance.now();
    let leftOver = await countPending(pool);
    // drainOnce publishes until less than a full batch is left; a second call is rare.
    for (let round = 0; leftOver > 0 && round < 100; round++) {
      const published = await relay.drainOnce();
      leftOver = await countPending(pool);
      if (published === 0) break;
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      events,
      seconds,
      eventsPerS: events / seconds,
      batchSize: options.relay.batchSize ?? 0,
      leftOver,
    };
  } finally {
    await pool.end();
  }
}
