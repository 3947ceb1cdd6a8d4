import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Pool } from './pool';
import { withTransaction } from './tx';

export const MIGRATIONS_DIR = path.resolve(__dirname, '..', 'migrations');
const LOCK_KEY = 7_236_001; // pg_advisory_lock key shared by every migrator

export interface MigrationResult {
  applied: string[];
  skipped: string[];
}

/**
 * Applies `migrations/NNNN_*.sql` in order, each in its own transaction with its ledger
 * row, under a session advisory lock so concurrent migrators (several pods) wait for each
 * other instead of applying a file twice. Throws on any failure.
 */
export async function migrate(pool: Pool, dir: string = MIGRATIONS_DIR): Promise<MigrationResult> {
  const files = (await readdir(dir)).filter((name) => /^\d{4}_[\w-]+\.sql$/.test(name)).sort();
  const lock = await pool.connect();
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    await lock.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await lock.query<{ name: string }>('SELECT name FROM schema_migrations');
    const done = new Set(rows.map((row) => row.name));
    const result: MigrationResult = { applied: [], skipped: [] };
    for (const name of files) {
      if (done.has(name)) {
        result.skipped.push(name);
        continue;
      }
      const sql = await readFile(path.join(dir, name), 'utf8');
      await withTransaction(
        pool,
        async (tx) => {
          await tx.query('INSERT INTO schema_migrations (name) VALUES ($1)', [name]);
          await tx.query(sql);
        },
        { attempts: 1 },
      );
      result.applied.push(name);
    }
    return result;
  } finally {
    await lock.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    lock.release();
  }
}
