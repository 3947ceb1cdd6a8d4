/**
 * `npm run migrate`: applies migrations/*.sql to DATABASE_URL. Safe to run from several pods
 * at once (store/migrate.ts serialises them); exits non-zero on any failure.
 */
import { migrate } from '../store/migrate';
import { createPool } from '../store/pool';
import { loadOrExit, url, type Env } from '../lib/env';

interface MigrateConfig {
  databaseUrl: string;
}

const loadConfig = (env: Env): MigrateConfig => ({
  databaseUrl: url(env, 'DATABASE_URL', ['postgres', 'postgresql']),
});

async function main(): Promise<void> {
  const config = loadOrExit(() => loadConfig(process.env));
  const pool = createPool(config.databaseUrl, { max: 2, applicationName: 'order-saga-migrate' });
  try {
    const { applied, skipped } = await migrate(pool);
    for (const name of applied) process.stdout.write(`applied ${name}\n`);
    process.stdout.write(`migrations: ${applied.length} applied, ${skipped.length} already applied\n`);
  } finally {
    await pool.end();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`migrate failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
