/**
 * Per happy saga counters around one measured step (lib/counters.ts says what each one
 * counts): Postgres transaction ids read before the step and after its sagas and their
 * events are done, and the histories of a sample of its completed sagas, fetched through
 * the Temporal client (counted as fetched: the payloads stay encrypted).
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { workflowIdFor } from '../../contracts/index';
import { createPool, type Pool } from '../../store/pool';
import type { Engine } from './config';
import { performance } from 'node:perf_hooks';
import { completedRun, countHistory, spreadSample, type HistoryCounts, type IdWindow } from './lib/counters';

/** How many completed sagas' histories are counted. */
export const HISTORY_SAMPLE = 20;
const FETCH_CONCURRENCY = 4;

/** What wrote on the Postgres server while a step was counted. */
export function writersIncluded(engine: Engine): string {
  return (
    'every transaction that wrote anything on the Postgres server, in any database: the api (order, idempotency key, ' +
    "saga start), the worker's steps and compensation ledger, the simulated providers' writes, the relay (marking " +
    'events published, leadership, retention), autovacuum/autoanalyze; ' +
    (engine === 'dev'
      ? 'not the Temporal dev server, which keeps its state in SQLite'
      : 'and the Temporal server, when its persistence is on the same Postgres server')
  );
}

export interface TransactionIds {
  /** pg_current_xact_id() in a transaction of its own: takes an id, and returns it. */
  read(): Promise<number>;
  /** The ids read around `during` and how long it took (ms). */
  window(during: () => Promise<unknown>): Promise<IdWindow>;
  /** Resolves once the outbox holds nothing to publish (false at the deadline). */
  relayCaughtUp(timeoutMs: number, signal: AbortSignal): Promise<boolean>;
  close(): Promise<void>;
}

export function transactionIds(databaseUrl: string): TransactionIds {
  const pool: Pool = createPool(databaseUrl, { max: 1, applicationName: 'order-saga-bench-counters' });
  const pending = async (): Promise<number> => {
    const { rows } = await pool.query<{ pending: number }>(
      'SELECT count(*)::int AS pending FROM outbox WHERE published_at IS NULL AND parked_at IS NULL',
    );
    return rows[0]?.pending ?? 0;
  };
  const read = async (): Promise<number> => {
    // Outside any transaction of ours: the statement is its own transaction, which the id ends.
    const { rows } = await pool.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid');
    const xid = Number(rows[0]?.xid);
    if (!Number.isSafeInteger(xid)) throw new Error(`pg_current_xact_id() returned ${rows[0]?.xid}`);
    return xid;
  };
  return {
    read,
    window: async (during) => {
      const before = await read();
      const started = performance.now();
      await during();
      const after = await read();
      return { before, after, ms: performance.now() - started };
    },
    relayCaughtUp: async (timeoutMs, signal) => {
      const deadline = Date.now() + timeoutMs;
      while ((await pending()) > 0) {
        if (Date.now() > deadline) return false;
        await delay(100, undefined, { signal });
      }
      return true;
    },
    close: () => pool.end(),
  };
}

/**
 * The counters of up to HISTORY_SAMPLE of these orders' sagas, spread over them; a saga
 * whose run did not complete is left out (and counted in `skipped`).
 */
export async function countSagaHistories(
  client: Client,
  orderIds: readonly string[],
): Promise<{ counts: HistoryCounts[]; skipped: number }> {
  const sample = spreadSample(orderIds, HISTORY_SAMPLE);
  const counts: HistoryCounts[] = [];
  let skipped = 0;
  for (let start = 0; start < sample.length; start += FETCH_CONCURRENCY) {
    const histories = await Promise.all(
      sample
        .slice(start, start + FETCH_CONCURRENCY)
        .map((orderId) => client.workflow.getHandle(workflowIdFor(orderId)).fetchHistory()),
    );
    for (const history of histories) {
      if (completedRun(history)) counts.push(countHistory(history));
      else skipped++;
    }
  }
  return { counts, skipped };
}
