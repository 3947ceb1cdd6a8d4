import pg from 'pg';

// bigint columns (money in cents, counts) come back as numbers: every value we store fits
// in a JS safe integer (checked by the schemas at the edge).
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** A pool or a transaction's client: what a single statement runs on. */
export type Queryable = Pool | PoolClient;

export interface PoolOptions {
  max?: number;
  applicationName?: string;
}

export function createPool(connectionString: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'order-saga',
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its connection (Postgres restart) must not crash the process;
  // the pool replaces it on the next checkout.
  pool.on('error', () => undefined);
  return pool;
}

/** One round trip: does the database answer? */
export async function ping(pool: Pool): Promise<void> {
  await pool.query('SELECT 1');
}
