import { randomUUID } from 'node:crypto';
import { subjectFor, type EventType } from '../contracts/index';
import type { Pool, PoolClient } from './pool';

export const SCHEMA_VERSION = 1;

export interface DomainEvent {
  orderId: string;
  type: EventType;
  data: Record<string, unknown>;
}

export interface OutboxMessage {
  id: string;
  type: EventType;
  schemaVersion: number;
  aggregateType: 'order';
  aggregateId: string;
  sequence: number;
  occurredAt: string;
  workflowId: string;
  correlationId: string | null;
  data: Record<string, unknown>;
}

/**
 * Appends a domain event to the outbox inside the caller's transaction (a client, never
 * the pool, so the business change and its event commit or roll back together), in one
 * statement: the order row's lock numbers the order's events 1, 2, 3, … without gaps, and
 * the stored message is built from that row (its workflow and correlation ids) and the
 * transaction's now().
 */
export async function appendEvent(tx: PoolClient, event: DomainEvent): Promise<OutboxMessage> {
  const { rows } = await tx.query<{ body: OutboxMessage }>(
    `WITH numbered AS (
       UPDATE orders SET event_seq = event_seq + 1, updated_at = now()
        WHERE id = $2::uuid
        RETURNING event_seq, workflow_id, correlation_id)
     INSERT INTO outbox (id, aggregate_type, aggregate_id, sequence, type, subject, body, occurred_at)
     SELECT $1::uuid, 'order', $2::uuid, n.event_seq, $3::text, $4::text,
            jsonb_build_object(
              'id', $1::uuid::text, 'type', $3::text, 'schemaVersion', $5::int, 'aggregateType', 'order',
              'aggregateId', $2::uuid::text, 'sequence', n.event_seq,
              'occurredAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
              'workflowId', n.workflow_id, 'correlationId', n.correlation_id, 'data', $6::jsonb),
            now()
       FROM numbered n
     RETURNING body`,
    [randomUUID(), event.orderId, event.type, subjectFor(event.type), SCHEMA_VERSION, JSON.stringify(event.data)],
  );
  const row = rows[0];
  if (!row) throw new Error(`appendEvent: order ${event.orderId} does not exist`);
  return row.body;
}

// ---------------------------------------------------------------------------------------
// Publishing (the relay). Why these statements keep each order's events in order and
// publish each once is explained at the top of relay/relay.ts.

/**
 * The leases a relay holds (migrations/0007): the owner, the epoch of each tenure, and their
 * partitions. The select below reads those partitions; every write below acts only on rows
 * of partitions whose lease is still current, held by that owner in that epoch, by the
 * database's clock. The writes lock those lease rows (FOR SHARE), so a relay taking an
 * expired lease waits until such a write has committed, and then sees it.
 */
export interface OutboxFence {
  owner: string;
  epochs: number[];
  partitions: number[];
}

/** An unpublished outbox row as the relay reads it. */
export interface PendingOutboxRow {
  id: string;
  /** Of migrations/0007: one per order, so an order's events are all in one partition. */
  partition: number;
  aggregate_id: string;
  sequence: number;
  type: string;
  subject: string;
  /** The stored JSON as text, published byte for byte. */
  body: string;
  attempts: number;
  /** How long ago (ms, by the database's clock) the row's transaction began (occurred_at). */
  age_ms: number;
  /**
   * How long ago (ms, by the database's clock) its earliest publish attempt whose outcome no
   * relay recorded may have been made, at the most: the row's own record, else the later of
   * when it occurred and its partition's checkpoint (migrations/0008). Null when no such
   * attempt can exist.
   */
  attempt_age_ms: number | null;
  /** The stream's last sequence before that attempt: a stored copy has a higher one. */
  publish_floor_seq: number | null;
  /** The database's now() when the row was read: any attempt from this read is later. */
  selected_at: Date;
}

/**
 * Rows ready to publish in the fence's partitions, in commit-safe order. A row whose order
 * has an earlier event still unpublished and not eligible now (retry pending or parked) is
 * left out, so an order never gets ahead of its own failed event; so are `exclude`, the rows
 * this relay has published and not marked yet (relay/relay.ts, point 6). Only a read. The
 * partitions are given as a list, not joined from the leases, so Postgres walks the pending
 * rows in `position` order and stops at the limit (a join made it sort the whole backlog:
 * 130 ms a batch at 100,000 pending instead of under 1 ms); the checkpoints are looked up
 * for the rows returned only. The orders held back are found once per batch, not once per
 * row: as a per-row NOT EXISTS, a planner whose statistics predate a backlog (the usual
 * state right after an outage) scanned the whole backlog for every row it returned, 1.4 s
 * a batch at 18,000 pending.
 */
export async function selectPendingEvents(
  pool: Pool,
  fence: OutboxFence,
  limit: number,
  exclude: readonly string[] = [],
): Promise<PendingOutboxRow[]> {
  if (fence.partitions.length === 0) return [];
  const { rows } = await pool.query<PendingOutboxRow>(
    `WITH blocked AS MATERIALIZED (
       SELECT aggregate_id, min(sequence) AS sequence FROM outbox
        WHERE published_at IS NULL AND partition = ANY($2::smallint[])
          AND (parked_at IS NOT NULL OR next_attempt_at > now())
        GROUP BY aggregate_id)
     SELECT o.id, o.partition, o.aggregate_id, o.sequence, o.type, o.subject, o.body::text AS body, o.attempts,
            (extract(epoch FROM now() - o.occurred_at) * 1000)::float8 AS age_ms,
            (extract(epoch FROM now() - coalesce(o.publish_attempted_at,
               (SELECT greatest(o.occurred_at, p.attempts_since) FROM outbox_partitions p
                 WHERE p.partition = o.partition AND p.attempts_since IS NOT NULL))) * 1000)::float8
              AS attempt_age_ms,
            coalesce(o.publish_floor_seq,
               (SELECT p.attempts_floor_seq FROM outbox_partitions p WHERE p.partition = o.partition))::float8
              AS publish_floor_seq,
            now() AS selected_at
       FROM outbox o
       LEFT JOIN blocked b ON b.aggregate_id = o.aggregate_id
      WHERE o.published_at IS NULL AND o.parked_at IS NULL
        AND o.partition = ANY($2::smallint[])
        AND o.id <> ALL($3::uuid[])
        AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
        AND (b.sequence IS NULL OR o.sequence < b.sequence)
      ORDER BY o.position
      LIMIT $1`,
    [limit, fence.partitions, exclude],
  );
  return rows;
}

/**
 * Begins this relay's tenure of the fence's partitions, before it sends anything of them:
 * the checkpoint the previous holder left (attempts it made and never marked or recorded
 * happened after it) is copied onto each pending row of the partition, as that row's
 * earliest possible attempt unless the row records an earlier one, and the checkpoint starts
 * again from now and `floorSeq` (the stream's last sequence as this relay knows it). One
 * statement; returns the partitions begun, those the fence still holds. The others must not
 * be sent.
 */
export async function beginTenure(pool: Pool, fence: OutboxFence, floorSeq: number): Promise<Set<number>> {
  if (fence.epochs.length === 0) return new Set();
  const { rows } = await pool.query<{ partition: number }>(
    `WITH held AS (
       SELECT partition, attempts_since, attempts_floor_seq FROM outbox_partitions
        WHERE owner = $1 AND epoch = ANY($2::bigint[]) AND expires_at > now()
        FOR UPDATE),
     inherited AS (
       UPDATE outbox o
          SET publish_attempted_at = least(o.publish_attempted_at, greatest(o.occurred_at, h.attempts_since)),
              publish_floor_seq = least(o.publish_floor_seq, h.attempts_floor_seq)
         FROM held h
        WHERE o.partition = h.partition AND h.attempts_since IS NOT NULL AND o.published_at IS NULL)
     UPDATE outbox_partitions p SET attempts_since = now(), attempts_floor_seq = $3
       FROM held h WHERE p.partition = h.partition
     RETURNING p.partition`,
    [fence.owner, fence.epochs, floorSeq],
  );
  return new Set(rows.map((row) => row.partition));
}

/** A publish whose outcome is unknown (no PubAck, or a refusal): it may have landed. */
export interface UnmarkedAttempt {
  id: string;
  /** No later than the attempt (the database's clock: the batch's `selected_at`). */
  attemptedSince: Date;
  /** The stream's last sequence as known before the attempt. */
  floorSeq: number;
}

/**
 * Settles what this relay sent, in one statement, in partitions the fence still holds: marks
 * `publishedIds` published; records each of `unmarked` on its row (its earliest attempt and
 * floor, unless the row has earlier ones); and moves the checkpoint of `partitions` to now
 * and `floorSeq`, since every attempt of this relay's so far is marked or recorded by it.
 * Returns each marked row's id and partition.
 */
export async function settlePublished(
  pool: Pool,
  fence: OutboxFence,
  settle: {
    publishedIds: readonly string[];
    unmarked: readonly UnmarkedAttempt[];
    partitions: readonly number[];
    floorSeq: number;
  },
): Promise<{ id: string; partition: number }[]> {
  if (fence.epochs.length === 0) return [];
  const { rows } = await pool.query<{ id: string; partition: number }>(
    `WITH held AS (
       SELECT partition FROM outbox_partitions
        WHERE owner = $1 AND epoch = ANY($2::bigint[]) AND expires_at > now()
        FOR UPDATE),
     marked AS (
       UPDATE outbox o SET published_at = now()
        WHERE o.id = ANY($3::uuid[]) AND o.published_at IS NULL
          AND o.partition IN (SELECT partition FROM held)
        RETURNING o.id, o.partition),
     recorded AS (
       UPDATE outbox o
          SET publish_attempted_at = least(o.publish_attempted_at, u.attempted_at),
              publish_floor_seq = least(o.publish_floor_seq, u.floor_seq)
         FROM unnest($4::uuid[], $5::timestamptz[], $6::bigint[]) AS u(id, attempted_at, floor_seq)
        WHERE o.id = u.id AND o.id <> ALL($3::uuid[]) AND o.published_at IS NULL
          AND o.partition IN (SELECT partition FROM held)),
     checkpoint AS (
       UPDATE outbox_partitions p SET attempts_since = now(), attempts_floor_seq = $7
        WHERE p.partition IN (SELECT partition FROM held) AND p.partition = ANY($8::smallint[]))
     SELECT id, partition FROM marked`,
    [
      fence.owner,
      fence.epochs,
      settle.publishedIds,
      settle.unmarked.map((attempt) => attempt.id),
      settle.unmarked.map((attempt) => attempt.attemptedSince),
      settle.unmarked.map((attempt) => attempt.floorSeq),
      settle.floorSeq,
      settle.partitions,
    ],
  );
  return rows;
}

export interface PublishFailure {
  id: string;
  /** What went wrong, as stored in `last_error` (at most 500 characters). */
  error: string;
  /** When the next attempt may run, from now. */
  retryDelayMs: number;
}

export interface RecordedFailure {
  id: string;
  aggregate_id: string;
  sequence: number;
  type: string;
  attempts: number;
  last_error: string;
  /** The row reached `maxAttempts` and is parked. */
  parked: boolean;
}

/**
 * Counts a failed attempt per row and schedules its retry, in one statement; a row that
 * reaches `maxAttempts` is parked. Rows published meanwhile, and rows of partitions the
 * fence no longer holds, are left alone.
 */
export async function recordPublishFailures(
  pool: Pool,
  fence: OutboxFence,
  failures: PublishFailure[],
  maxAttempts: number,
): Promise<RecordedFailure[]> {
  if (failures.length === 0 || fence.epochs.length === 0) return [];
  const { rows } = await pool.query<RecordedFailure>(
    `WITH held AS (
       SELECT partition FROM outbox_partitions
        WHERE owner = $5 AND epoch = ANY($6::bigint[]) AND expires_at > now()
        FOR SHARE)
     UPDATE outbox o
        SET attempts = o.attempts + 1,
            last_error = f.error,
            next_attempt_at = now() + f.delay_ms * interval '1 millisecond',
            parked_at = CASE WHEN o.attempts + 1 >= $4 THEN now() END
       FROM unnest($1::uuid[], $2::text[], $3::float8[]) AS f(id, error, delay_ms)
      WHERE o.id = f.id AND o.published_at IS NULL AND o.partition IN (SELECT partition FROM held)
      RETURNING o.id, o.aggregate_id, o.sequence, o.type, o.attempts, o.last_error, o.parked_at IS NOT NULL AS parked`,
    [
      failures.map((failure) => failure.id),
      failures.map((failure) => failure.error.slice(0, 500)),
      failures.map((failure) => failure.retryDelayMs),
      maxAttempts,
      fence.owner,
      fence.epochs,
    ],
  );
  return rows;
}

/**
 * Deletes published rows older than `retentionMs`, in slices so no statement holds locks
 * for long; at most 20 slices a call. Returns how many rows it deleted.
 */
export async function deleteExpiredEvents(
  pool: Pool,
  retentionMs: number,
  signal: AbortSignal,
): Promise<number> {
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

export interface OutboxBacklog {
  /** Unpublished events that are not parked. */
  pending: number;
  parked: number;
  /** Age of the oldest pending event; 0 when there is none. */
  oldestSeconds: number;
}

export async function readOutboxBacklog(pool: Pool): Promise<OutboxBacklog> {
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

export interface PartitionBacklog {
  partition: number;
  /** Unpublished events that are not parked. */
  pending: number;
  /** Age of the oldest of them; 0 when there is none. */
  oldestSeconds: number;
}

/** The backlog of every partition, idle ones included. */
export async function readPartitionBacklogs(pool: Pool): Promise<PartitionBacklog[]> {
  const { rows } = await pool.query<{ partition: number; pending: number; oldest_seconds: number }>(
    `SELECT p.partition, count(o.position)::float8 AS pending,
            coalesce(extract(epoch FROM now() - min(o.occurred_at)), 0)::float8 AS oldest_seconds
       FROM outbox_partitions p
       LEFT JOIN outbox o ON o.partition = p.partition AND o.published_at IS NULL AND o.parked_at IS NULL
      GROUP BY p.partition ORDER BY p.partition`,
  );
  return rows.map((row) => ({
    partition: row.partition,
    pending: row.pending,
    oldestSeconds: Math.max(0, row.oldest_seconds),
  }));
}

/**
 * Fills the outbox with `orders` × `types.length` unpublished events shaped like
 * appendEvent's, for the backlog-drain benchmark (data marks them as the bench's).
 */
export async function fillSyntheticBacklog(pool: Pool, orders: number, types: readonly EventType[]): Promise<void> {
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
    [orders, [...types], types.length],
  );
}
