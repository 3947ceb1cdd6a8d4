import { createHash } from 'node:crypto';
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

/** Statement names by text: every parameterized statement this process runs, a few hundred at most. */
const statementNames = new Map<string, string>();

function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `s_${createHash('sha256').update(text).digest('base64url').slice(0, 22)}`;
    statementNames.set(text, name);
  }
  return name;
}

/**
 * A client that runs every parameterized statement as a named prepared statement: Postgres
 * parses and plans each text once per connection instead of on every call (the statements
 * are the same few dozen texts all day; the one built at run time, the order list's filter,
 * has a handful of shapes). Statements without parameters (BEGIN, COMMIT, LISTEN) go as they
 * are.
 */
class PreparingClient extends pg.Client {
  override query(config: unknown, values?: unknown, callback?: unknown): never {
    const query = (pg.Client.prototype.query as (...args: unknown[]) => never).bind(this);
    if (typeof config === 'string' && Array.isArray(values)) {
      return query({ name: statementName(config), text: config, values }, callback);
    }
    return query(config, values, callback);
  }
}

export function createPool(connectionString: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    Client: PreparingClient,
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
