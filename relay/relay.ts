/**
 * The outbox relay: publishes committed `outbox` rows to JetStream stream ORDERS.
 *
 * Why every committed event reaches the stream once, in order per order
 * ---------------------------------------------------------------------
 * 1. Per-order order. appendEvent (db/outbox.ts) numbers an order's events while holding
 *    that order's row lock, so event n+1 of an order can only be written after the
 *    transaction holding n committed (or rolled back, in which case n+1 takes number n).
 *    The committed events of one order are therefore always a gap-free prefix 1..k, and
 *    within one order `position` grows with `sequence`.
 * 2. Nothing is skipped. The relay does not advance a cursor over `position` (a
 *    transaction that took a small position but commits late would fall behind it);
 *    every batch scans all rows that are still unpublished, in `position` order.
 * 3. Nothing overtakes. A row is only selected when no earlier event of its order is
 *    still unpublished outside the batch (waiting for a retry, or parked). Within a batch
 *    an order's events are published one after another, each after the PubAck of the
 *    previous one, and after a failure that order's later events stay for a later batch.
 *    So event n+1 is only ever sent once event n is on the stream.
 * 4. Once. Each message carries `Nats-Msg-Id` = the row id and JetStream drops a
 *    re-publish of an id within the stream's duplicate window (relay/stream.ts). A crash
 *    (or lost Postgres connection) between the PubAck and the UPDATE that marks the rows
 *    only means the batch is published again, and JetStream acknowledges it as a
 *    duplicate, which we count as published.
 * 5. One active relay. Leadership is a session advisory lock on a dedicated connection;
 *    standbys retry every second. The lock keeps the work to one process, but points 3
 *    and 4 hold even if two relays overlap for a moment (an old leader finishing its
 *    batch while a new one starts): both only send n+1 after n is on the stream, and
 *    the duplicate window drops the second copy.
 * Events of rolled-back transactions are never visible to the relay's queries.
 */
import { setTimeout as sleepFor } from 'node:timers/promises';
import { JetStreamApiError, jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { Counter, Gauge, Histogram, register as defaultRegistry, type Registry } from 'prom-client';
import type { Pool, PoolClient } from '../store/pool';
import type { Logger } from '../lib/logger';
import { STREAM_NAME } from '../contracts/index';
import type { NatsConnection } from './stream';

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

/** NATS could not take messages at all (disconnected, timed out, JetStream missing). */
export class NatsUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`NATS unavailable: ${describe(cause)}`, { cause });
    this.name = 'NatsUnavailableError';
  }
}

/**
 * The longest an event can keep failing before it is parked: the stream's duplicate window
 * must be longer, so a retry of a publish that did land is still recognised as a duplicate.
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

export function createOutboxRelay(deps: RelayDeps): OutboxRelay {
  const options: RelayOptions = { ...DEFAULT_RELAY_OPTIONS, ...deps.options };
  const { pool, nats } = deps;
  const logger = deps.logger.child({ component: 'outbox-relay' });
  const js = jetstream(nats);
  const metrics = createRelayMetrics(deps.registry ?? defaultRegistry, pool, logger);
  const wakeup = new Wakeup();
  const exclusive = serialized();

  let abort = new AbortController();
  let loop: Promise<void> | undefined;
  let leader = false;

  /** One batch: select, publish per order in sequence, mark, record failures. */
  async function relayBatch(): Promise<{ selected: number; published: number }> {
    const rows = await selectPending(pool, options.batchSize);
    if (rows.length === 0) return { selected: 0, published: 0 };
    const outcome = await publishRows(js, nats, rows, options);
    const lags = await markPublished(
      pool,
      outcome.published.map((row) => row.id),
    );
    metrics.published.inc(lags.length);
    metrics.duplicates.inc(outcome.duplicates);
    for (const lag of lags) metrics.lag.observe(lag);
    if (outcome.failed.length > 0) {
      metrics.failures.inc(outcome.failed.length);
      await recordFailures(pool, outcome.failed, options, logger);
    }
    if (outcome.outage !== undefined) {
      metrics.failures.inc();
      throw new NatsUnavailableError(outcome.outage.error);
    }
    return { selected: rows.length, published: lags.length };
  }

  /** Batches until less than a full batch is pending. */
  async function drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const batch = await relayBatch();
      total += batch.published;
      // A full batch with no progress (all failed, or marked by an overlapping relay):
      // stop rather than spin.
      if (batch.selected < options.batchSize || batch.published === 0) return total;
    }
  }

  /**
   * The active relay's loop, for as long as its lock connection lives: a batch, then the
   * housekeeping, then (once caught up) a wait for NOTIFY or the poll interval.
   */
  async function lead(session: LeaderSession): Promise<void> {
    session.client.on('notification', () => wakeup.notify());
    session.onLost = () => wakeup.notify();
    let failures = 0;
    let lastCleanup = 0;
    while (!abort.signal.aborted && session.alive) {
      let batch: { selected: number; published: number };
      try {
        batch = await exclusive(relayBatch);
      } catch (error) {
        failures++;
        const level = error instanceof NatsUnavailableError ? 'warn' : 'error';
        logger[level](
          { err: describe(error), consecutiveFailures: failures },
          'relay batch failed; backing off',
        );
        // A plain sleep, not the wakeup: new rows must not cut an outage backoff short.
        await sleep(backoffDelay(failures, options.pollIntervalMs, options.outageBackoffMaxMs), abort.signal);
        await session.checkAlive(options.lockRetryMs);
        continue;
      }
      if (failures > 0) logger.info({ after: failures }, 'relay batches succeed again');
      failures = 0;
      if (Date.now() - lastCleanup >= options.cleanupIntervalMs) {
        lastCleanup = Date.now();
        await cleanup();
      }
      await session.checkAlive(options.lockRetryMs);
      const caughtUp = batch.selected < options.batchSize || batch.published === 0;
      if (caughtUp) await wakeup.wait(options.pollIntervalMs, abort.signal);
    }
  }

  async function cleanup(): Promise<void> {
    try {
      const deleted = await deleteExpired(pool, options.retentionMs, abort.signal);
      if (deleted > 0) logger.info({ deleted }, 'deleted published outbox rows past retention');
    } catch (error) {
      logger.warn({ err: describe(error) }, 'outbox cleanup failed');
    }
  }

  async function run(onFirstAttempt: () => void): Promise<void> {
    while (!abort.signal.aborted) {
      const session = await acquireLeadership(pool, options.lockKey).catch((error: unknown) => {
        logger.warn({ err: describe(error) }, 'could not try the relay lock');
        return undefined;
      });
      onFirstAttempt();
      if (session === undefined) {
        await sleep(options.lockRetryMs, abort.signal);
        continue;
      }
      leader = true;
      metrics.leader.set(1);
      logger.info('became the active outbox relay');
      try {
        await lead(session);
      } catch (error) {
        logger.error({ err: describe(error) }, 'relay loop failed');
      } finally {
        leader = false;
        metrics.leader.set(0);
        await session.release();
        logger.info({ lockLost: !session.alive }, 'outbox relay stepped down');
      }
      // Give the standbys the first go at the lock: this relay just lost its connection.
      await sleep(options.lockRetryMs, abort.signal);
    }
  }

  return {
    async start() {
      if (loop !== undefined) return;
      abort = new AbortController();
      let firstAttempt!: () => void;
      const attempted = new Promise<void>((resolve) => (firstAttempt = resolve));
      loop = run(firstAttempt)
        .catch((error: unknown) =>
          logger.error({ err: describe(error) }, 'outbox relay stopped unexpectedly'),
        )
        .finally(firstAttempt);
      await attempted;
    },
    async stop() {
      if (loop === undefined) return;
      abort.abort();
      await loop;
      loop = undefined;
    },
    drainOnce: () => exclusive(drain),
    isLeader: () => leader,
  };
}

// ---------------------------------------------------------------------------------------
// Leadership

interface LeaderSession {
  client: PoolClient;
  alive: boolean;
  onLost: () => void;
  /** Pings the lock connection if it has been quiet for `everyMs`; marks it lost on failure. */
  checkAlive(everyMs: number): Promise<void>;
  /** Unlocks and returns the connection, or destroys it if it is broken. */
  release(): Promise<void>;
}

/** Tries the lock on a connection of its own; undefined when another relay holds it. */
async function acquireLeadership(pool: Pool, lockKey: number): Promise<LeaderSession | undefined> {
  const client = await pool.connect();
  const session: LeaderSession = {
    client,
    alive: true,
    onLost: () => undefined,
    checkAlive: () => Promise.resolve(),
    release: () => Promise.resolve(),
  };
  // A checked-out pg client has no 'error' listener; without one a dropped connection
  // would crash the process. Losing it means losing the lock: stop leading.
  const onError = (): void => {
    session.alive = false;
    session.onLost();
  };
  client.on('error', onError);
  client.on('end', onError);
  const forget = (): void => {
    client.removeAllListeners('notification');
    client.removeListener('error', onError);
    client.removeListener('end', onError);
  };
  const destroy = (): void => {
    forget();
    client.on('error', () => undefined); // a dying connection may still report an error
    client.release(true);
  };
  try {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
      lockKey,
    ]);
    if (rows[0]?.locked !== true) {
      forget();
      client.release();
      return undefined;
    }
    // Server-side keepalives on this session, so Postgres notices a leader whose host
    // vanished within ~3 s and frees the lock for a standby (ignored on Unix sockets).
    await client.query(
      'SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 2',
    );
    await client.query('LISTEN outbox');
  } catch (error) {
    destroy();
    throw error;
  }

  let lastCheck = Date.now();
  session.checkAlive = async (everyMs) => {
    if (!session.alive || Date.now() - lastCheck < everyMs) return;
    lastCheck = Date.now();
    try {
      await withTimeout(client.query('SELECT 1'), everyMs * 3);
    } catch {
      onError();
    }
  };
  session.release = async () => {
    if (session.alive) {
      try {
        await withTimeout(client.query('UNLISTEN *'), 5_000);
        await withTimeout(client.query('SELECT pg_advisory_unlock($1)', [lockKey]), 5_000);
        forget();
        client.release();
        return;
      } catch {
        // fall through: closing the connection ends the session, and with it the lock
      }
    }
    destroy();
  };
  return session;
}

// ---------------------------------------------------------------------------------------
// Publishing

interface PendingRow {
  id: string;
  aggregate_id: string;
  sequence: number;
  type: string;
  subject: string;
  /** The stored JSON as text, published byte for byte. */
  body: string;
  attempts: number;
}

interface FailedRow {
  row: PendingRow;
  error: unknown;
}

interface PublishOutcome {
  published: PendingRow[];
  duplicates: number;
  failed: FailedRow[];
  outage: { error: unknown } | undefined;
}

/**
 * Rows ready to publish, in commit-safe order. A row whose order has an earlier event
 * still unpublished and not eligible now (retry pending or parked) is left out, so an
 * order never gets ahead of its own failed event.
 */
async function selectPending(pool: Pool, limit: number): Promise<PendingRow[]> {
  const { rows } = await pool.query<PendingRow>(
    `SELECT o.id, o.aggregate_id, o.sequence, o.type, o.subject, o.body::text AS body, o.attempts
       FROM outbox o
      WHERE o.published_at IS NULL AND o.parked_at IS NULL
        AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
        AND NOT EXISTS (
              SELECT 1 FROM outbox e
               WHERE e.aggregate_id = o.aggregate_id AND e.sequence < o.sequence
                 AND e.published_at IS NULL
                 AND (e.parked_at IS NOT NULL OR e.next_attempt_at > now()))
      ORDER BY o.position
      LIMIT $1`,
    [limit],
  );
  return rows;
}

/** Each order's rows in sequence order; orders in the order of their first row. */
function groupByOrder(rows: PendingRow[]): PendingRow[][] {
  const byOrder = new Map<string, PendingRow[]>();
  for (const row of rows) {
    const events = byOrder.get(row.aggregate_id);
    if (events) events.push(row);
    else byOrder.set(row.aggregate_id, [row]);
  }
  return [...byOrder.values()].map((events) => events.sort((a, b) => a.sequence - b.sequence));
}

/**
 * Publishes different orders concurrently and each order's events one by one. After a
 * failure the order's later events are not sent; after an outage nothing more is sent.
 */
async function publishRows(
  js: JetStreamClient,
  nats: NatsConnection,
  rows: PendingRow[],
  options: RelayOptions,
): Promise<PublishOutcome> {
  const outcome: PublishOutcome = { published: [], duplicates: 0, failed: [], outage: undefined };
  await forEachConcurrently(groupByOrder(rows), options.publishConcurrency, async (events) => {
    for (const row of events) {
      if (outcome.outage !== undefined) return;
      try {
        const ack = await js.publish(row.subject, row.body, {
          msgID: row.id,
          timeout: options.publishTimeoutMs,
          expect: { streamName: STREAM_NAME },
        });
        if (ack.duplicate) outcome.duplicates++;
        outcome.published.push(row);
      } catch (error) {
        if (isNatsUnavailable(error, nats)) outcome.outage ??= { error };
        else outcome.failed.push({ row, error });
        return;
      }
    }
  });
  return outcome;
}

const UNAVAILABLE_ERRORS = new Set([
  'TimeoutError',
  'RequestError',
  'NoResponders',
  'JetStreamNotEnabled',
  'ConnectionError',
  'ClosedConnectionError',
  'DrainingConnectionError',
  'ProtocolError',
]);

/**
 * Transport trouble says nothing about the event, so it must not count toward parking
 * it: an hour-long NATS outage would otherwise park every pending event. Only errors
 * where JetStream answered and refused this message count as the event's failures.
 */
function isNatsUnavailable(error: unknown, nats: NatsConnection): boolean {
  if (nats.isClosed() || nats.isDraining()) return true;
  if (error instanceof JetStreamApiError) return error.status === 503;
  return error instanceof Error && UNAVAILABLE_ERRORS.has(error.name);
}

/** Marks rows published in one statement; returns each marked row's commit-to-publish lag (s). */
async function markPublished(pool: Pool, ids: string[]): Promise<number[]> {
  if (ids.length === 0) return [];
  const { rows } = await pool.query<{ lag: number }>(
    `UPDATE outbox SET published_at = now()
      WHERE id = ANY($1::uuid[]) AND published_at IS NULL
      RETURNING extract(epoch FROM published_at - occurred_at)::float8 AS lag`,
    [ids],
  );
  return rows.map((row) => Math.max(0, row.lag));
}

/** Counts a failed attempt per row, schedules its retry, and parks it after maxAttempts. */
async function recordFailures(
  pool: Pool,
  failed: FailedRow[],
  options: RelayOptions,
  logger: Logger,
): Promise<void> {
  const { rows } = await pool.query<{
    id: string;
    aggregate_id: string;
    sequence: number;
    type: string;
    attempts: number;
    last_error: string;
    parked: boolean;
  }>(
    `UPDATE outbox o
        SET attempts = o.attempts + 1,
            last_error = f.error,
            next_attempt_at = now() + f.delay_ms * interval '1 millisecond',
            parked_at = CASE WHEN o.attempts + 1 >= $4 THEN now() END
       FROM unnest($1::uuid[], $2::text[], $3::float8[]) AS f(id, error, delay_ms)
      WHERE o.id = f.id AND o.published_at IS NULL
      RETURNING o.id, o.aggregate_id, o.sequence, o.type, o.attempts, o.last_error, o.parked_at IS NOT NULL AS parked`,
    [
      failed.map(({ row }) => row.id),
      failed.map(({ error }) => describe(error).slice(0, 500)),
      failed.map(({ row }) => backoffDelay(row.attempts + 1, options.retryBaseMs, options.retryMaxMs)),
      options.maxAttempts,
    ],
  );
  for (const row of rows) {
    const fields = {
      eventId: row.id,
      orderId: row.aggregate_id,
      sequence: row.sequence,
      type: row.type,
      attempts: row.attempts,
      err: row.last_error,
    };
    if (row.parked)
      logger.error(fields, "outbox event parked: its order's later events wait until it is released");
    else logger.warn(fields, 'outbox event publish failed; will retry');
  }
}

/** Deletes published rows past retention, in slices so no statement holds locks for long. */
async function deleteExpired(pool: Pool, retentionMs: number, signal: AbortSignal): Promise<number> {
  const slice = 5_000;
  let total = 0;
  for (let round = 0; round < 20 && !signal.aborted; round++) {
    const { rowCount } = await pool.query(
      `DELETE FROM outbox WHERE position IN (
         SELECT position FROM outbox
          WHERE published_at < now() - $1 * interval '1 millisecond'
          ORDER BY published_at LIMIT $2)`,
      [retentionMs, slice],
    );
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < slice) break;
  }
  return total;
}

// ---------------------------------------------------------------------------------------
// Metrics

interface RelayMetrics {
  published: Counter;
  duplicates: Counter;
  failures: Counter;
  lag: Histogram;
  leader: Gauge;
}

interface Backlog {
  pending: number;
  parked: number;
  oldestSeconds: number;
}

/**
 * Counters and the lag histogram are updated by the relay as it works. The backlog
 * gauges are read from the table when scraped, so every replica (standby included)
 * reports the same truth; one query serves the three gauges of a scrape.
 */
function createRelayMetrics(registry: Registry, pool: Pool, logger: Logger): RelayMetrics {
  const registers = [registry];
  let cached: { at: number; backlog: Promise<Backlog | undefined> } | undefined;
  const backlog = (): Promise<Backlog | undefined> => {
    if (cached === undefined || Date.now() - cached.at > 1_000) {
      cached = {
        at: Date.now(),
        backlog: readBacklog(pool).catch((error: unknown) => {
          logger.debug({ err: describe(error) }, 'could not read outbox backlog for metrics');
          return undefined;
        }),
      };
    }
    return cached.backlog;
  };
  const backlogGauge = (name: string, help: string, pick: (b: Backlog) => number): Gauge =>
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

async function readBacklog(pool: Pool): Promise<Backlog> {
  const { rows } = await pool.query<{ pending: number; parked: number; oldest_seconds: number }>(
    `SELECT count(*) FILTER (WHERE parked_at IS NULL)::float8 AS pending,
            count(*) FILTER (WHERE parked_at IS NOT NULL)::float8 AS parked,
            coalesce(extract(epoch FROM now() - min(occurred_at) FILTER (WHERE parked_at IS NULL)), 0)::float8
              AS oldest_seconds
       FROM outbox WHERE published_at IS NULL`,
  );
  const row = rows[0]!;
  return { pending: row.pending, parked: row.parked, oldestSeconds: Math.max(0, row.oldest_seconds) };
}

// ---------------------------------------------------------------------------------------
// Small helpers

/** Exponential backoff, capped, with jitter (half fixed, half random) so retries spread out. */
function backoffDelay(attempt: number, baseMs: number, maxMs: number): number {
  const capped = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(capped / 2 + Math.random() * (capped / 2));
}

/** A wake-up that is not lost when notified before anyone waits. */
class Wakeup {
  private pending = false;
  private wake: (() => void) | undefined;

  notify(): void {
    this.pending = true;
    this.wake?.();
  }

  /** Resolves on notify, after `ms`, or on abort, whichever comes first. */
  wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.pending || signal.aborted) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        this.pending = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
  }
}

/** Sleeps, returning early (without error) on abort. */
async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await sleepFor(ms, undefined, { signal }).catch(() => undefined);
}

/** Runs calls one at a time, in call order (the loop and drainOnce never overlap batches). */
function serialized(): <T>(work: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(work: () => Promise<T>): Promise<T> => {
    const result = tail.then(work, work);
    tail = result.catch(() => undefined);
    return result;
  };
}

async function forEachConcurrently<T>(
  items: T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
