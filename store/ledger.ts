import { STEP_ABANDONED, stepKey, type StepName, type StepOutcome } from '../contracts/index';
import type { Pool, PoolClient } from './pool';
import { withTransaction } from './tx';

export interface LedgerEntry {
  idempotencyKey: string;
  workflowId: string;
  step: string;
}

/** The stored result of a step that already ran, or undefined. */
export async function findRecorded<T>(pool: Pool, idempotencyKey: string): Promise<T | undefined> {
  const { rows } = await pool.query<{ result: T }>(
    'SELECT result FROM activity_ledger WHERE idempotency_key = $1 AND result IS NOT NULL',
    [idempotencyKey],
  );
  return rows[0]?.result;
}

/**
 * Runs `work` exactly once per idempotency key. The ledger row is inserted first, in the
 * same transaction as the work: a concurrent duplicate blocks on that row until the first
 * commits, then finds it and replays the stored result; if the first rolls back, the
 * duplicate does the work itself. A retry after a commit returns the stored result.
 */
export async function runOnce<T>(
  pool: Pool,
  entry: LedgerEntry,
  work: (tx: PoolClient) => Promise<T>,
): Promise<T> {
  return withTransaction(pool, async (tx) => {
    const claim = await claimKey<T>(tx, entry);
    if (!claim.claimed) return claim.result;
    const result = await work(tx);
    await recordResults(tx, [{ idempotencyKey: entry.idempotencyKey, result }]);
    return result;
  });
}

/**
 * runOnce's first half, for steps committed in the caller's transaction
 * (activities/step-runner.ts commitSteps): claims the key, or, when it was claimed before,
 * waits for that claim to commit and returns its result. Every key claimed must get its
 * result from recordResults before the transaction commits.
 */
export async function claimKey<T>(
  tx: PoolClient,
  entry: LedgerEntry,
): Promise<{ claimed: true } | { claimed: false; result: T }> {
  const claimed = await tx.query(
    `INSERT INTO activity_ledger (idempotency_key, workflow_id, step)
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING idempotency_key`,
    [entry.idempotencyKey, entry.workflowId, entry.step],
  );
  if (claimed.rowCount === 1) return { claimed: true };
  const { rows } = await tx.query<{ result: T }>(
    'SELECT result FROM activity_ledger WHERE idempotency_key = $1',
    [entry.idempotencyKey],
  );
  return { claimed: false, result: rows[0]!.result };
}

/** Stores the results of keys this transaction claimed, in one statement. */
export async function recordResults(
  tx: PoolClient,
  results: ReadonlyArray<{ idempotencyKey: string; result: unknown }>,
): Promise<void> {
  if (results.length === 0) return;
  if (results.length === 1) {
    const [only] = results;
    await tx.query('UPDATE activity_ledger SET result = $2 WHERE idempotency_key = $1', [
      only!.idempotencyKey,
      JSON.stringify(only!.result ?? null),
    ]);
    return;
  }
  await tx.query(
    `UPDATE activity_ledger l SET result = r.result
       FROM unnest($1::text[], $2::jsonb[]) AS r(idempotency_key, result)
      WHERE l.idempotency_key = r.idempotency_key`,
    [results.map((r) => r.idempotencyKey), results.map((r) => JSON.stringify(r.result ?? null))],
  );
}

/**
 * Fences a forward step before its compensation undoes it: claims the step's key (the one
 * the workflow gives it, `<workflowId>:<step>`) with STEP_ABANDONED, unless the step already
 * ran. A step attempt that comes afterwards (a local activity left running by a workflow task
 * that was lost, or an attempt that outlived its timeout) finds the key taken and replays
 * that, so it never does what was just undone. An attempt in flight holds the key's row: the
 * fence waits for it to commit, and the compensation, reading after the fence (READ
 * COMMITTED: each statement sees what committed before it), sees what it did and undoes it.
 * Returns the outcome that stands under the key: STEP_ABANDONED if the fence claimed it,
 * otherwise what the step recorded.
 */
export async function fenceStep(tx: PoolClient, workflowId: string, step: StepName): Promise<StepOutcome> {
  const key = stepKey(workflowId, step);
  const fenced = await tx.query(
    `INSERT INTO activity_ledger (idempotency_key, workflow_id, step, result)
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
    [key, workflowId, step, JSON.stringify(STEP_ABANDONED)],
  );
  if (fenced.rowCount === 1) return STEP_ABANDONED;
  const { rows } = await tx.query<{ result: StepOutcome | null }>(
    'SELECT result FROM activity_ledger WHERE idempotency_key = $1',
    [key],
  );
  return rows[0]?.result ?? STEP_ABANDONED;
}
