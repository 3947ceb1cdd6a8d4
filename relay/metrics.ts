import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { readOutboxBacklog, type OutboxBacklog } from '../store/outbox';
import type { Pool } from '../store/pool';
import type { Logger } from '../lib/logger';
import { describeError } from './describe-error';

export interface RelayMetrics {
  published: Counter;
  duplicates: Counter;
  lookups: Counter<'result'>;
  failures: Counter;
  lag: Histogram;
  leader: Gauge;
}

/**
 * Counters and the lag histogram are updated by the relay as it works. The backlog
 * gauges are read from the table when scraped, so every replica (standby included)
 * reports the same truth; one query serves the three gauges of a scrape.
 */
export function createRelayMetrics(registry: Registry, pool: Pool, logger: Logger): RelayMetrics {
  const registers = [registry];
  let cached: { at: number; backlog: Promise<OutboxBacklog | undefined> } | undefined;
  const backlog = (): Promise<OutboxBacklog | undefined> => {
    if (cached === undefined || Date.now() - cached.at > 1_000) {
      cached = {
        at: Date.now(),
        backlog: readOutboxBacklog(pool).catch((error: unknown) => {
          logger.debug({ err: describeError(error) }, 'could not read outbox backlog for metrics');
          return undefined;
        }),
      };
    }
    return cached.backlog;
  };
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
    leader: new Gauge({
      name: 'outbox_relay_leader',
      help: '1 while this relay is the active one.',
      registers,
    }),
  };
}
