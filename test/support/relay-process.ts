/**
 * The outbox relay as operators run it (`npm run relay` = relay/main.ts), as a child
 * process of a test: killed for real, restarted for real. Started through tools/dev/stack.ts'
 * launch(), so it writes to a log file and dies with the test process even when that is
 * killed outright (parent-death signal).
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Pool } from '../../store/pool';
import { launch, type ManagedProcess } from '../../tools/dev/processes';
import { eventually } from '../../tools/fixtures/eventually';
import { DEFAULT_RELAY_OPTIONS } from '../../relay/relay';

const ROOT = path.resolve(__dirname, '..', '..');

export interface RelayProcessOptions {
  databaseUrl: string;
  natsUrl: string;
  /** Where its log file goes. */
  logDir: string;
  /** Further environment, e.g. RELAY_BATCH_SIZE or RELAY_METRICS_PORT. */
  env?: Record<string, string>;
  /** What stop() sends: SIGKILL for a crash, SIGTERM for a graceful stop. */
  stopSignal?: 'SIGKILL' | 'SIGTERM';
}

export function startRelayProcess(options: RelayProcessOptions): ManagedProcess {
  // Only what the relay reads, never this process' environment (TEST_*, a developer's RELAY_*).
  const inherited = Object.fromEntries(
    ['PATH', 'HOME', 'TMPDIR'].flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
  ) as Record<string, string>;
  return launch({
    name: 'relay',
    command: process.execPath,
    args: ['--import', 'tsx', path.join(ROOT, 'relay', 'main.ts')],
    cwd: ROOT,
    logFile: path.join(options.logDir, `relay-${randomUUID().slice(0, 8)}.log`),
    stopSignal: options.stopSignal ?? 'SIGKILL',
    env: {
      ...inherited,
      DATABASE_URL: options.databaseUrl,
      NATS_URL: options.natsUrl,
      LOG_LEVEL: 'info',
      ...options.env,
    },
  });
}

/** The backend pid holding the relay's advisory lock in the pool's database, if any. */
export async function relayLockHolder(pool: Pool): Promise<number | undefined> {
  const { rows } = await pool.query<{ pid: number }>(
    `SELECT pid FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = $1 AND objsubid = 1
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [DEFAULT_RELAY_OPTIONS.lockKey],
  );
  return rows[0]?.pid;
}

/** Waits until the relay process holds the lock (it leads); fails if it exits first. */
export async function waitUntilLeading(relay: ManagedProcess, pool: Pool, timeoutMs = 20_000): Promise<void> {
  await eventually(
    'the relay to lead',
    async () => {
      if ((await relayLockHolder(pool)) !== undefined) return true;
      if (relay.hasExited()) {
        throw new Error(`the relay exited before it led; its log:\n${await relay.lastLines(30)}`);
      }
      return false;
    },
    { timeoutMs, detail: async () => `its log:\n${await relay.lastLines(30)}` },
  );
}
