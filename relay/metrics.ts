import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import {
  readOutboxBacklog,
  readPartitionBacklogs,
  type OutboxBacklog,
  type PartitionBacklog,
} from '../store/outbox';
import type { Pool } from '../store/pool';
import type { Logger } from '../lib/logger';
import { describeError } from './describe-error';

export interface RelayMetrics {
  published: Counter;
  duplicates: Counter;
  lookups: Counter<'result'>;
  failures: Counter;
  lag: Histogram;
  /** Events this relay published and marked, by partition. */
  partitionPublished: Counter<'partition'>;
}

/** A read at most once a second, shared by the gauges of a scrape; undefined when it failed. */
function cachedRead<T>(read: () => Promise<T>, logger: Logger): () => Promise<T | undefined> {
  let cached: { at: number; value: Promise<T | undefined> } | undefined;
  return () => {
    if (cached === undefined || Date.now() - cached.at > 1_000) {
      cached = {
        at: Date.now(),
        value: read().catch((error: unknown) => {
          logger.debug({ err: describeError(error) }, 'could not read outbox backlog for metrics');
          return undefined;
        }),
      };
    }
    return cached.value;
  };
}

/**
 * Counters and the lag histogram are updated by the relay as it works. The backlog
 * gauges are read from the table when scraped, so every replica reports the same truth;
 * one query serves the three totals of a scrape, one the per-partition gauges. `held`
 * says which partitions this relay holds now (relay/partitions.ts).
 */
export function createRelayMetrics(
  registry: Registry,
  pool: Pool,
  logger: Logger,
  held: () => number[],
): RelayMetrics {
  const registers = [registry];
  const backlog = cachedRead(() => readOutboxBacklog(pool), logger);
  const partitions = cachedRead(() => readPartitionBacklogs(pool), logger);
  const backlogGauge = (name: string, help: string, pick: (b: OutboxBacklog) => number): Gauge =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const current = await backlog();
        if (current !== undefined) this.set(pick(current));
      },
    });
  backlogGauge('outbox_pending_events', 'Unpublished, unparked outbox events.', (b) => b.pending);
  backlogGauge(
    'outbox_oldest_pending_age_seconds',
    'Age of the oldest pending outbox event.',
    (b) => b.oldestSeconds,
  );
  backlogGauge(
    'outbox_parked_events',
    'Outbox events parked after too many failed publishes.',
    (b) => b.parked,
  );
  const partitionGauge = (
    name: string,
    help: string,
    value: (backlog: PartitionBacklog, mine: ReadonlySet<number>) => number,
  ): Gauge<'partition'> =>
    new Gauge({
      name,
      help,
      labelNames: ['partition'],
      registers,
      async collect() {
        const current = await partitions();
        if (current === undefined) return;
        const mine = new Set(held());
        for (const each of current) this.set({ partition: each.partition }, value(each, mine));
      },
    });
  partitionGauge(
    'outbox_partition_pending_events',
    'Unpublished, unparked outbox events, by partition.',
    (b) => b.pending,
  );
  partitionGauge(
    'outbox_partition_oldest_pending_age_seconds',
    'Age of the oldest pending outbox event, by partition: its lag.',
    (b) => b.oldestSeconds,
  );
  partitionGauge('outbox_partition_held', '1 for each partition whose lease this relay holds.', (b, mine) =>
    mine.has(b.partition) ? 1 : 0,
  );
  new Gauge({
    name: 'outbox_relay_partitions_held',
    help: 'How many outbox partitions this relay holds.',
    registers,
    collect() {
      this.set(held().length);
    },
  });
  return {
    published: new Counter({
      name: 'outbox_published_total',
      help: 'Outbox events published and marked.',
      registers,
    }),
    duplicates: new Counter({
      name: 'outbox_publish_duplicates_total',
      help: 'Publishes JetStream acknowledged as duplicates (re-sends after a crash before marking).',
      registers,
    }),
    lookups: new Counter({
      name: 'outbox_stream_lookups_total',
      help: 'Events looked up on the stream before a re-publish the duplicate window no longer covered, by result (found: not sent again).',
      labelNames: ['result'],
      registers,
    }),
    failures: new Counter({
      name: 'outbox_publish_failures_total',
      help: 'Failed publish attempts.',
      registers,
    }),
    lag: new Histogram({
      name: 'outbox_publish_lag_seconds',
      help: 'Time from an event occurring (its transaction) to being marked published.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    partitionPublished: new Counter({
      name: 'outbox_partition_published_total',
      help: 'Outbox events published and marked by this relay, by partition.',
      labelNames: ['partition'],
      registers,
    }),
  };
}
