import type { Pool, PoolClient } from './pool';

/** SQLSTATEs worth running the whole transaction again for. */
const RETRYABLE = new Set(['40001', '40P01']); // serialization_failure, deadlock_detected

const isRetryable = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && RETRYABLE.has((error as { code?: string }).code ?? '');

/**
 * The only place that says BEGIN, COMMIT and ROLLBACK. Runs `work` in one transaction,
 * retrying it from the start on serialization failures and deadlocks.
 */
export async function withTransaction<T>(
  pool: Pool,
  work: (client: PoolClient) => Promise<T>,
  { attempts = 5 }: { attempts?: number } = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    let broken = false;
    // pg-pool takes its 'error' listener off a client it hands out, and a connection lost
    // while we hold the client (Postgres restarting) is emitted as 'error': with no listener
    // it would crash the process. The failing query reports it; just never reuse the client.
    const onConnectionError = (): void => {
      broken = true;
    };
    client.on('error', onConnectionError);
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true; // the connection itself is gone; do not return it to the pool
      }
      if (attempt < attempts && isRetryable(error)) continue;
      throw error;
    } finally {
      // A broken client keeps the listener: it is discarded, and may still report an error.
      if (!broken) client.off('error', onConnectionError);
      client.release(broken);
    }
  }
}
