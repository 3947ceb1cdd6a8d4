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
import { readPartitionOwners } from '../../store/relay-lease';

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

/** The outbox's partitions (migrations/0007). */
export const OUTBOX_PARTITIONS = 16;

/** Each partition's live lease holder (a relay id), or null, by partition. */
export async function partitionOwners(pool: Pool): Promise<(string | null)[]> {
  return (await readPartitionOwners(pool)).map((row) => row.owner);
}

/** The partitions whose live lease the relay process holds (its id is host:pid:random). */
export async function partitionsHeldBy(relay: ManagedProcess, pool: Pool): Promise<number[]> {
  const owners = await partitionOwners(pool);
  return owners.flatMap((owner, partition) =>
    owner !== null && owner.split(':')[1] === String(relay.pid) ? [partition] : [],
  );
}

/**
 * Waits until the relay process holds `partitions` partitions (all of them, alone); fails
 * if it exits first.
 */
export async function waitUntilHolding(
  relay: ManagedProcess,
  pool: Pool,
  { partitions = OUTBOX_PARTITIONS, timeoutMs = 20_000 }: { partitions?: number; timeoutMs?: number } = {},
): Promise<void> {
  await eventually(
    `the relay to hold ${partitions} partitions`,
    async () => {
      if ((await partitionsHeldBy(relay, pool)).length >= partitions) return true;
      if (relay.hasExited()) {
        throw new Error(
          `the relay exited before it held its partitions; its log:\n${await relay.lastLines(30)}`,
        );
      }
      return false;
    },
    { timeoutMs, detail: async () => `its log:\n${await relay.lastLines(30)}` },
  );
}
