import type { Pool, PoolClient } from './pool';
import { withTransaction } from './tx';

/**
 * The relays' shares of the outbox (migrations/0007): who is alive (`relay_members`) and
 * who holds which partition (`outbox_partitions`). relay/partitions.ts decides when to run
 * these; relay/shares.ts decides what to take and give back. Times are the database's.
 */

/** A partition's lease as a relay sees it at a heartbeat. */
export interface PartitionLeaseRow {
  partition: number;
  owner: string | null;
  epoch: number;
  /** The lease has not expired (by the database's clock). */
  live: boolean;
}

/** A lease this relay holds: `epoch` names this tenure of the partition. */
export interface HeldLease {
  partition: number;
  epoch: number;
}

export interface Heartbeat {
  /** The relays whose heartbeat has not expired, this one included. */
  members: string[];
  /** This relay's leases that were still current, now extended by `ttlMs`. */
  renewed: HeldLease[];
  /** Every partition's lease after the renewal, by partition. */
  leases: PartitionLeaseRow[];
}

/**
 * One heartbeat, in one transaction: this relay is alive for `ttlMs` more, so are the leases
 * it still holds (an expired lease is not renewed: it is gone, and taking it again draws a
 * new epoch); then who is alive and who holds what.
 */
export async function heartbeat(pool: Pool, memberId: string, ttlMs: number): Promise<Heartbeat> {
  return withTransaction(
    pool,
    async (tx) => {
      await tx.query(
        `INSERT INTO relay_members (id, expires_at) VALUES ($1, now() + $2 * interval '1 millisecond')
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at`,
        [memberId, ttlMs],
      );
      const renewed = await tx.query<HeldLease>(
        `UPDATE outbox_partitions SET expires_at = now() + $2 * interval '1 millisecond'
          WHERE owner = $1 AND expires_at > now()
          RETURNING partition, epoch`,
        [memberId, ttlMs],
      );
      const members = await tx.query<{ id: string }>(
        'SELECT id FROM relay_members WHERE expires_at > now() ORDER BY id',
      );
      const leases = await tx.query<PartitionLeaseRow>(
        `SELECT partition, owner, epoch, expires_at > now() AS live
           FROM outbox_partitions ORDER BY partition`,
      );
      return {
        members: members.rows.map((row) => row.id),
        renewed: renewed.rows,
        leases: leases.rows,
      };
    },
    { attempts: 1 },
  );
}

/**
 * Takes those of `partitions` that are free or whose lease expired, each with a new epoch;
 * returns the ones taken. Two relays racing for a partition: the row lock lets one in, and
 * the other finds the lease current and skips it.
 */
export async function takePartitions(
  pool: Pool,
  memberId: string,
  partitions: number[],
  ttlMs: number,
): Promise<HeldLease[]> {
  if (partitions.length === 0) return [];
  const { rows } = await pool.query<HeldLease>(
    `UPDATE outbox_partitions
        SET owner = $1, epoch = nextval('outbox_partition_epoch'), taken_at = now(),
            expires_at = now() + $3 * interval '1 millisecond'
      WHERE partition = ANY($2::smallint[]) AND (owner IS NULL OR expires_at <= now())
      RETURNING partition, epoch`,
    [memberId, partitions, ttlMs],
  );
  return rows;
}

/**
 * Gives back leases this relay holds (same epoch), so another relay may take them at once.
 * Of `settled`, partitions where everything this relay sent is marked or recorded on its row,
 * the checkpoint is cleared too (migrations/0008): the next holder has nothing to inherit.
 */
export async function releasePartitions(
  pool: Pool,
  memberId: string,
  leases: HeldLease[],
  settled: readonly number[] = [],
): Promise<void> {
  if (leases.length === 0) return;
  await pool.query(
    `UPDATE outbox_partitions
        SET owner = NULL, expires_at = '-infinity',
            attempts_since = CASE WHEN partition = ANY($3::smallint[]) THEN NULL ELSE attempts_since END
      WHERE owner = $1 AND epoch = ANY($2::bigint[])`,
    [memberId, leases.map((lease) => lease.epoch), settled],
  );
}

/** Ends this relay's membership: the others count one relay fewer at their next heartbeat. */
export async function leaveRelayMembers(pool: Pool, memberId: string): Promise<void> {
  await pool.query("DELETE FROM relay_members WHERE id = $1 OR expires_at < now() - interval '1 hour'", [
    memberId,
  ]);
}

/** Every partition's current owner (null when free or expired), for tests and operators. */
export async function readPartitionOwners(
  pool: Pool,
): Promise<{ partition: number; owner: string | null }[]> {
  const { rows } = await pool.query<{ partition: number; owner: string | null }>(
    `SELECT partition, CASE WHEN expires_at > now() THEN owner END AS owner
       FROM outbox_partitions ORDER BY partition`,
  );
  return rows;
}

// ---------------------------------------------------------------------------------------
// The wake-up connection: statements that act on the connection they run on (LISTEN), so
// each takes the one client that listens, never the pool.

/** The channel the outbox's insert trigger notifies (migrations/0001_init.sql). */
const OUTBOX_CHANNEL = 'outbox';

/** Subscribes the session to new outbox rows; they arrive as the client's 'notification' events. */
export async function listenForOutboxInserts(client: PoolClient): Promise<void> {
  await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
}

/** A round trip on the session: rejects when its connection is gone. */
export async function pingSession(client: PoolClient): Promise<void> {
  await client.query('SELECT 1');
}

/** Ends every LISTEN of the session, so the connection goes back to the pool clean. */
export async function unlistenAll(client: PoolClient): Promise<void> {
  await client.query('UNLISTEN *');
}
