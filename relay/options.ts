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
  /** Session advisory lock key that elects the active relay (per database). */
  lockKey: number;
  /** How often a standby tries the lock, and the leader checks its lock connection. */
  lockRetryMs: number;
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
  lockKey: 7_236_002, // migrate.ts uses 7_236_001
  lockRetryMs: 1_000,
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
}

export interface OutboxRelay {
  /** Starts competing for leadership; resolves after the first attempt (leader or standby). */
  start(): Promise<void>;
  /** Finishes the current batch, marks it, releases the lock and closes the listener. */
  stop(): Promise<void>;
  /**
   * Publishes what is pending now and returns how many rows it marked (tests, benchmark).
   * It does not take the lock: safe next to a running relay (see the header comment).
   * Rejects with NatsUnavailableError when NATS cannot take messages.
   */
  drainOnce(): Promise<number>;
  isLeader(): boolean;
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
