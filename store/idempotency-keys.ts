import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient } from './pool';

/**
 * How long a request holds its Idempotency-Key before another attempt may take it over:
 * longer than any request can take (Temporal start deadline, DB timeouts), so only an
 * attempt whose process died loses it.
 */
export const KEY_LOCK_SECONDS = 30;

export interface KeyRef {
  /** Who is calling: a digest of the bearer token, or 'anonymous'. */
  scope: string;
  key: string;
}

/** A key this request holds: only the holder of the lock may record or release it. */
export interface HeldKey extends KeyRef {
  lockToken: string;
}

/** The request's lock lapsed and another attempt took the key over: this one must not answer for it. */
export class KeyLostError extends Error {
  constructor() {
    super('the Idempotency-Key was taken over by another attempt');
    this.name = 'KeyLostError';
  }
}

export type Claim =
  /** This request owns the key and creates (or, after a dead attempt, re-creates) this order. */
  | { kind: 'owned'; orderId: string; held: HeldKey }
  /** A previous attempt finished: replay its response. */
  | { kind: 'done'; status: number; body: unknown }
  /** Another attempt is working on it right now. */
  | { kind: 'in-flight' }
  /** The key was used with a different body. */
  | { kind: 'mismatch' };

/**
 * One round-trip in the common case: inserts the key, or takes over one whose previous
 * attempt is no longer working on it (lock expired, or released after a 5xx), keeping
 * that attempt's order id, so a retry lands on the saga it may already have started.
 */
export async function claimKey(
  pool: Pool,
  ref: KeyRef,
  fingerprint: string,
  newOrderId: string,
): Promise<Claim> {
  const lockToken = randomUUID();
  const { rows } = await pool.query<{ order_id: string }>(
    `INSERT INTO http_idempotency_keys AS k (scope, key, fingerprint, order_id, state, locked_until, lock_token)
     VALUES ($1, $2, $3, $4, 'IN_FLIGHT', now() + $5 * interval '1 second', $6)
     ON CONFLICT (scope, key) DO UPDATE SET locked_until = EXCLUDED.locked_until, lock_token = EXCLUDED.lock_token
       WHERE k.state = 'IN_FLIGHT' AND k.locked_until <= now() AND k.fingerprint = EXCLUDED.fingerprint
     RETURNING k.order_id`,
    [ref.scope, ref.key, fingerprint, newOrderId, KEY_LOCK_SECONDS, lockToken],
  );
  const owned = rows[0];
  if (owned) return { kind: 'owned', orderId: owned.order_id, held: { ...ref, lockToken } };

  const { rows: existing } = await pool.query<{
    fingerprint: string;
    state: 'IN_FLIGHT' | 'DONE';
    response_status: number | null;
    response_body: unknown;
  }>(
    `SELECT fingerprint, state, response_status, response_body FROM http_idempotency_keys
      WHERE scope = $1 AND key = $2`,
    [ref.scope, ref.key],
  );
  const row = existing[0];
  // Purged between the two statements: as good as in flight; the client retries.
  if (!row) return { kind: 'in-flight' };
  if (row.fingerprint !== fingerprint) return { kind: 'mismatch' };
  return row.state === 'DONE' && row.response_status !== null
    ? { kind: 'done', status: row.response_status, body: row.response_body }
    : { kind: 'in-flight' };
}

/**
 * Stores the final response; replays return it. Takes a transaction client to join the
 * order's write. Throws KeyLostError (rolling that write back) when the request no longer
 * holds the key's lock.
 */
export async function recordResponse(
  db: Pool | PoolClient,
  held: HeldKey,
  status: number,
  body: unknown,
): Promise<void> {
  const { rowCount } = await db.query(
    `UPDATE http_idempotency_keys
        SET state = 'DONE', response_status = $4, response_body = $5, locked_until = NULL, lock_token = NULL
      WHERE scope = $1 AND key = $2 AND state = 'IN_FLIGHT' AND lock_token = $3`,
    [held.scope, held.key, held.lockToken, status, JSON.stringify(body)],
  );
  if (rowCount !== 1) throw new KeyLostError();
}

/** After a 5xx: nothing is stored, the next attempt may take the key (and its order id) at once. */
export async function releaseKey(pool: Pool, held: HeldKey): Promise<void> {
  await pool.query(
    `UPDATE http_idempotency_keys SET locked_until = now()
      WHERE scope = $1 AND key = $2 AND state = 'IN_FLIGHT' AND lock_token = $3`,
    [held.scope, held.key, held.lockToken],
  );
}

/** Deletes keys older than the TTL, in batches so no statement holds locks for long. */
export async function purgeExpiredKeys(pool: Pool, ttlHours: number, batchSize = 5_000): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await pool.query(
      `DELETE FROM http_idempotency_keys WHERE ctid = ANY(ARRAY(
         SELECT ctid FROM http_idempotency_keys
          WHERE created_at < now() - $1 * interval '1 hour' LIMIT $2))`,
      [ttlHours, batchSize],
    );
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < batchSize) return total;
  }
}
