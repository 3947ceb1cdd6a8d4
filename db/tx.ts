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
      client.release(broken);
    }
  }
}
