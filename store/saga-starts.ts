/** Start requests: sagas accepted in Postgres and not yet known to have started in Temporal. */
import type { OrderSagaInput } from '../contracts/index';
import type { Pool, PoolClient, Queryable } from './pool';
import { withTransaction } from './tx';

/** Records that the order's saga must start; joins the order's own transaction. */
export async function requestSagaStart(
  tx: PoolClient,
  input: OrderSagaInput,
  graceMs: number,
): Promise<void> {
  await tx.query(
    `INSERT INTO saga_starts (order_id, input, next_attempt_at)
     VALUES ($1, $2, now() + $3 * interval '1 millisecond') ON CONFLICT (order_id) DO NOTHING`,
    [input.orderId, JSON.stringify(input), graceMs],
  );
}

/**
 * Temporal has the run: the request (and the payment token it holds) goes. Called by a
 * starter after its start, and by the saga's first step in its own transaction.
 */
export async function sagaStarted(db: Queryable, orderId: string): Promise<void> {
  await db.query('DELETE FROM saga_starts WHERE order_id = $1', [orderId]);
}

/** A start that did not go through: tried again after `delayMs`. */
export async function sagaStartFailed(
  pool: Pool,
  orderId: string,
  delayMs: number,
  error: string,
): Promise<void> {
  await pool.query(
    `UPDATE saga_starts SET attempts = attempts + 1, last_error = left($3, 500),
            next_attempt_at = now() + $2 * interval '1 millisecond'
      WHERE order_id = $1`,
    [orderId, delayMs, error],
  );
}

export interface DueStart {
  input: OrderSagaInput;
  attempts: number;
}

/**
 * Claims up to `limit` due start requests for `leaseMs`, if this session wins the starters'
 * advisory lock for the pass (one starter works at a time; the others find it taken and
 * return nothing). A claimed request is not due again until its lease runs out, so a starter
 * that dies mid-pass leaves its requests to the next.
 */
export async function claimDueStarts(
  pool: Pool,
  lockKey: number,
  limit: number,
  leaseMs: number,
): Promise<DueStart[]> {
  return withTransaction(pool, async (tx) => {
    const { rows: lock } = await tx.query<{ leader: boolean }>(
      'SELECT pg_try_advisory_xact_lock($1) AS leader',
      [lockKey],
    );
    if (!lock[0]?.leader) return [];
    const { rows } = await tx.query<DueStart>(
      `UPDATE saga_starts s SET next_attempt_at = now() + $2 * interval '1 millisecond'
         FROM (SELECT order_id FROM saga_starts WHERE next_attempt_at <= now()
                ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
        WHERE s.order_id = due.order_id
        RETURNING s.input, s.attempts`,
      [limit, leaseMs],
    );
    return rows;
  });
}

/** The order's pending start request, if its saga is not yet known to have started. */
export async function findPendingStart(pool: Pool, orderId: string): Promise<OrderSagaInput | undefined> {
  const { rows } = await pool.query<{ input: OrderSagaInput }>(
    'SELECT input FROM saga_starts WHERE order_id = $1',
    [orderId],
  );
  return rows[0]?.input;
}

export interface PendingStarts {
  pending: number;
  /** Seconds since the oldest pending request was accepted; 0 with none. */
  oldestAgeSeconds: number;
}

export async function readPendingStarts(pool: Pool): Promise<PendingStarts> {
  const { rows } = await pool.query<{ pending: number; oldest: number | null }>(
    `SELECT count(*)::int AS pending, extract(epoch FROM now() - min(requested_at))::float8 AS oldest
       FROM saga_starts`,
  );
  return { pending: rows[0]?.pending ?? 0, oldestAgeSeconds: Math.max(0, rows[0]?.oldest ?? 0) };
}
