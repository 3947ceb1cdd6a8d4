import type { Pool } from '../store/pool';
import { listenForOutboxInserts, pingSession, unlistenAll } from '../store/relay-lease';
import { withTimeout } from './timing';

/**
 * The relay's wake-up: a connection of its own that LISTENs for new outbox rows (the
 * insert trigger notifies one global channel; every relay wakes and reads its own
 * partitions). Only a wake-up: the poll interval covers a lost notification, and the
 * relay opens a new listener when this one's connection is gone.
 */
export interface OutboxListener {
  alive: boolean;
  /** Pings the connection if it has been quiet for `everyMs`; marks it dead on failure. */
  checkAlive(everyMs: number): Promise<void>;
  /** Unlistens and returns the connection, or destroys it if it is broken. */
  close(): Promise<void>;
}

export async function openOutboxListener(pool: Pool, onInsert: () => void): Promise<OutboxListener> {
  const client = await pool.connect();
  const listener: OutboxListener = {
    alive: true,
    checkAlive: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  // A checked-out pg client has no 'error' listener; without one a dropped connection
  // would crash the process.
  const onError = (): void => {
    listener.alive = false;
    onInsert(); // look at the outbox now rather than wait for the poll
  };
  client.on('error', onError);
  client.on('end', onError);
  client.on('notification', onInsert);
  const forget = (): void => {
    client.removeListener('notification', onInsert);
    client.removeListener('error', onError);
    client.removeListener('end', onError);
  };
  const destroy = (): void => {
    forget();
    client.on('error', () => undefined); // a dying connection may still report an error
    client.release(true);
  };
  try {
    await listenForOutboxInserts(client);
  } catch (error) {
    destroy();
    throw error;
  }

  let lastCheck = Date.now();
  listener.checkAlive = async (everyMs) => {
    if (!listener.alive || Date.now() - lastCheck < everyMs) return;
    lastCheck = Date.now();
    try {
      await withTimeout(pingSession(client), everyMs * 3);
    } catch {
      onError();
    }
  };
  listener.close = async () => {
    if (listener.alive) {
      try {
        await withTimeout(unlistenAll(client), 5_000);
        forget();
        client.release();
        return;
      } catch {
        // fall through: a connection that cannot unlisten is not reused
      }
    }
    destroy();
  };
  return listener;
}
