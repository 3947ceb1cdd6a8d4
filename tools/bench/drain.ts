/**
 * Backlog drain: with the relay stopped, N events pile up in the outbox (N/5 orders of five
 * events each, like completed sagas); then the relay's own code, createOutboxRelay with the
 * relay process' settings, runs in this process and drainOnce() publishes them. Drain
 * events/s = N ÷ the time until none is pending.
 */
import type { EventType } from '../../contracts/index';
import { fillSyntheticBacklog } from '../../store/outbox';
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { createPool } from '../../store/pool';
import { createLogger } from '../../lib/logger';
import { createOutboxRelay, type RelayOptions } from '../../relay/relay';
import type { NatsConnection } from '../../relay/stream';

const HAPPY_PATH: readonly EventType[] = [
  'OrderCreated',
  'InventoryReserved',
  'PaymentCaptured',
  'ShipmentCreated',
  'OrderCompleted',
];
const EVENTS_PER_ORDER = HAPPY_PATH.length;

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
    await fillSyntheticBacklog(pool, orders, HAPPY_PATH);
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
