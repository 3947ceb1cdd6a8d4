/** The relay's knobs, its dependencies and its public face (relay.ts is the loop). */
import type { Registry } from 'prom-client';
import type { Logger } from '../lib/logger';
import type { Pool } from '../store/pool';
import { DEFAULT_DUPLICATE_WINDOW_MS, type NatsConnection } from './stream';

export interface RelayOptions {
  /** Rows read and published per batch. */
  batchSize: number;
  /** Fallback poll when no NOTIFY arrives. */
  pollIntervalMs: number;
  /** Failed publishes of one event before it is parked. */
  maxAttempts: number;
  /** Published rows older than this are deleted. */
  retentionMs: number;
  /** How often the retention cleanup runs. */
  cleanupIntervalMs: number;
  /**
   * How long a heartbeat keeps a relay alive and its partition leases held: a dead relay's
   * partitions are free this long after its last heartbeat (RELAY_LEASE_TTL).
   */
  leaseTtlMs: number;
  /** How often a relay renews its leases and rebalances (RELAY_HEARTBEAT_INTERVAL). */
  heartbeatIntervalMs: number;
  /**
   * How much earlier than the database a relay considers its own leases lapsed and stops
   * publishing their partitions (clock drift, a send already under way).
   */
  leaseMarginMs: number;
  /**
   * How long rows on the stream may wait to be marked published, so the marks of several
   * batches go in one statement (relay.ts, point 6); a full batch's worth is marked at once.
   */
  markDelayMs: number;
  /** Orders published concurrently within one batch. */
  publishConcurrency: number;
  /** How long to wait for one PubAck. */
  publishTimeoutMs: number;
  /** Per-event retry backoff: base * 2^(attempt-1), capped, with jitter. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Whole-loop backoff while NATS (or Postgres) is unavailable. */
  outageBackoffMaxMs: number;
  /**
   * The stream's duplicate window, as created by relay/stream.ts (NATS_DUPLICATE_WINDOW);
   * the relay trusts the shorter of this and the stream's configured one.
   */
  duplicateWindowMs: number;
  /**
   * How much earlier than the window's end a possibly-landed attempt stops counting as
   * covered (a message in flight, timer granularity); at most half the window.
   */
  duplicateWindowMarginMs: number;
}

export const DEFAULT_RELAY_OPTIONS: Readonly<RelayOptions> = {
  batchSize: 500,
  pollIntervalMs: 500,
  maxAttempts: 20,
  retentionMs: 7 * 24 * 3_600_000,
  cleanupIntervalMs: 10 * 60_000,
  leaseTtlMs: 2_500,
  heartbeatIntervalMs: 500,
  leaseMarginMs: 500,
  markDelayMs: 200,
  publishConcurrency: 64,
  publishTimeoutMs: 5_000,
  retryBaseMs: 1_000,
  retryMaxMs: 5 * 60_000,
  outageBackoffMaxMs: 5_000,
  duplicateWindowMs: DEFAULT_DUPLICATE_WINDOW_MS,
  duplicateWindowMarginMs: 60_000,
};

export interface RelayDeps {
  pool: Pool;
  nats: NatsConnection;
  logger: Logger;
  options?: Partial<RelayOptions>;
  /** Where the relay's metrics go; prom-client's default registry when absent. */
  registry?: Registry;
  /** This relay's name among the relays (relay_members); host, pid and a random part when absent. */
  relayId?: string;
}

export interface OutboxRelay {
  /**
   * Joins the relays and keeps publishing its share of the partitions; resolves after the
   * first heartbeat (with its first share, or after logging why the database did not answer).
   */
  start(): Promise<void>;
  /** Finishes the current batch, marks it, gives its partitions back and leaves. */
  stop(): Promise<void>;
  /**
   * Publishes what is pending now in the partitions it can hold and returns how many rows
   * it marked (tests, benchmark). A started relay uses its share; one that is not started
   * joins for the call, holding the partitions no live relay holds (all of them when no
   * other relay runs), and leaves again. Rejects with NatsUnavailableError when NATS
   * cannot take messages.
   */
  drainOnce(): Promise<number>;
  /** The partitions this relay holds now, ascending. */
  heldPartitions(): number[];
  /** Its name among the relays (relay_members, outbox_partitions.owner). */
  readonly relayId: string;
}

/**
 * The longest an event can keep failing before it is parked. With a duplicate window longer
 * than this, a retry of a publish that did land is recognised by JetStream as a duplicate;
 * with a shorter one, late retries are looked up on the stream first (point 4): still
 * once, at the cost of a read.
 */
export function retryHorizonMs(
  options: Pick<RelayOptions, 'maxAttempts' | 'retryBaseMs' | 'retryMaxMs'>,
): number {
  let total = 0;
  for (let attempt = 1; attempt < options.maxAttempts; attempt++) {
    total += Math.min(options.retryMaxMs, options.retryBaseMs * 2 ** (attempt - 1));
  }
  return total;
}
