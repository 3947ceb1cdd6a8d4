import type { PoolClient } from './pool';

/**
 * The statements of the relay's leader session. Each acts on the connection it runs on
 * (a session advisory lock, LISTEN, session settings), so each takes the one client that
 * holds or tries the lock, never the pool. relay/leadership.ts decides when to run them.
 */

/** The channel the outbox's insert trigger notifies (migrations/0001_init.sql). */
const OUTBOX_CHANNEL = 'outbox';

/** Takes the session advisory lock if it is free; false when another session holds it. */
export async function tryRelayLock(client: PoolClient, lockKey: number): Promise<boolean> {
  const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
    lockKey,
  ]);
  return rows[0]?.locked === true;
}

/**
 * Server-side keepalives on this session, so Postgres notices a leader whose host
 * vanished within ~3 s and frees the lock for a standby (ignored on Unix sockets).
 */
export async function setFastKeepalives(client: PoolClient): Promise<void> {
  await client.query(
    'SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 2',
  );
}

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

export async function releaseRelayLock(client: PoolClient, lockKey: number): Promise<void> {
  await client.query('SELECT pg_advisory_unlock($1)', [lockKey]);
}
