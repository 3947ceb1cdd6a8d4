import type { Pool, PoolClient } from '../store/pool';
import {
  listenForOutboxInserts,
  pingSession,
  releaseRelayLock,
  setFastKeepalives,
  tryRelayLock,
  unlistenAll,
} from '../store/relay-lease';
import { withTimeout } from './timing';

/**
 * The active relay's hold on leadership: a session advisory lock on a connection of its
 * own, which also LISTENs for new outbox rows. The lock lives exactly as long as that
 * connection, so losing the connection means losing leadership.
 */
export interface LeaderSession {
  client: PoolClient;
  alive: boolean;
  onLost: () => void;
  /** Pings the lock connection if it has been quiet for `everyMs`; marks it lost on failure. */
  checkAlive(everyMs: number): Promise<void>;
  /** Unlocks and returns the connection, or destroys it if it is broken. */
  release(): Promise<void>;
}

/** Tries the lock on a connection of its own; undefined when another relay holds it. */
export async function acquireLeadership(pool: Pool, lockKey: number): Promise<LeaderSession | undefined> {
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
    if (!(await tryRelayLock(client, lockKey))) {
      forget();
      client.release();
      return undefined;
    }
    await setFastKeepalives(client);
    await listenForOutboxInserts(client);
  } catch (error) {
    destroy();
    throw error;
  }

  let lastCheck = Date.now();
  session.checkAlive = async (everyMs) => {
    if (!session.alive || Date.now() - lastCheck < everyMs) return;
    lastCheck = Date.now();
    try {
      await withTimeout(pingSession(client), everyMs * 3);
    } catch {
      onError();
    }
  };
  session.release = async () => {
    if (session.alive) {
      try {
        await withTimeout(unlistenAll(client), 5_000);
        await withTimeout(releaseRelayLock(client, lockKey), 5_000);
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
