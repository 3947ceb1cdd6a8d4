/**
 * Per happy saga counters (issue 17): what one saga costs the Temporal server, read from the
 * run's own histories, and what it costs Postgres, read from its transaction ids. Pure.
 *
 * History counters are plain counts of events; none needs a payload, so the histories are
 * counted as fetched (their payloads encrypted by the codec):
 * - events: every history event;
 * - workflow tasks: WorkflowTaskCompleted events (a task that failed or timed out is not one
 *   the workflow got through, and shows up as extra events instead);
 * - activities: ActivityTaskScheduled events;
 * - local activities: markers named `core_local_activity` (one per attempt that reached an
 *   outcome or backed off: a local retry is a second marker);
 * - patch markers: markers named `core_patch` (one per `patched()` call that took the new path);
 * - other markers: any other MarkerRecorded event;
 * - search-attribute upserts: UpsertWorkflowSearchAttributes events (the SDK's own
 *   `TemporalChangeVersion` upsert of each `patched()` call included).
 */
import type { History } from '@temporalio/common/lib/proto-utils';
import { LOCAL_ACTIVITY_MARKER } from '../../../lib/history-steps';

/** Core SDK's marker name for a `patched()` call. */
export const PATCH_MARKER = 'core_patch';

export const HISTORY_COUNTERS = [
  'events',
  'workflowTasks',
  'activities',
  'localActivities',
  'patchMarkers',
  'otherMarkers',
  'searchAttributeUpserts',
] as const;
export type HistoryCounter = (typeof HISTORY_COUNTERS)[number];

export type HistoryCounts = Record<HistoryCounter, number>;

/** How a counter is written in reports. */
export const COUNTER_LABELS: Readonly<Record<HistoryCounter, string>> = {
  events: 'history events',
  workflowTasks: 'workflow tasks',
  activities: 'activities',
  localActivities: 'local activities',
  patchMarkers: 'patch markers',
  otherMarkers: 'other markers',
  searchAttributeUpserts: 'search-attribute upserts',
};

/** The counters of one history. */
export function countHistory(history: History): HistoryCounts {
  const counts: HistoryCounts = {
    events: 0,
    workflowTasks: 0,
    activities: 0,
    localActivities: 0,
    patchMarkers: 0,
    otherMarkers: 0,
    searchAttributeUpserts: 0,
  };
  for (const event of history.events ?? []) {
    counts.events++;
    if (event.workflowTaskCompletedEventAttributes) counts.workflowTasks++;
    if (event.activityTaskScheduledEventAttributes) counts.activities++;
    if (event.upsertWorkflowSearchAttributesEventAttributes) counts.searchAttributeUpserts++;
    const marker = event.markerRecordedEventAttributes;
    if (marker) {
      if (marker.markerName === LOCAL_ACTIVITY_MARKER) counts.localActivities++;
      else if (marker.markerName === PATCH_MARKER) counts.patchMarkers++;
      else counts.otherMarkers++;
    }
  }
  return counts;
}

/** Whether a history is of a run that completed (its last event says so). */
export function completedRun(history: History): boolean {
  const events = history.events ?? [];
  return events[events.length - 1]?.workflowExecutionCompletedEventAttributes != null;
}

/** One counter over the sampled sagas: equal min and max mean every saga counted the same. */
export interface CounterStat {
  min: number;
  max: number;
  mean: number;
}

export function counterStats(samples: readonly HistoryCounts[]): Record<HistoryCounter, CounterStat> | null {
  if (samples.length === 0) return null;
  const stat = (counter: HistoryCounter): CounterStat => {
    const values = samples.map((sample) => sample[counter]);
    return {
      min: Math.min(...values),
      max: Math.max(...values),
      mean: values.reduce((sum, value) => sum + value, 0) / values.length,
    };
  };
  return Object.fromEntries(HISTORY_COUNTERS.map((counter) => [counter, stat(counter)])) as Record<
    HistoryCounter,
    CounterStat
  >;
}

/** "33", or "33.4 (33–35)" when the sampled sagas differ. */
export function formatCounter(stat: CounterStat | undefined): string {
  if (stat === undefined) return '–';
  if (stat.min === stat.max) return String(stat.min);
  return `${stat.mean.toFixed(1)} (${stat.min}–${stat.max})`;
}

/**
 * Postgres write transactions between two reads of `pg_current_xact_id()`, each read in a
 * transaction of its own. A transaction gets an id the first time it writes (and each read
 * takes one, which is why it counts itself), so the ids handed out strictly between the two
 * reads are the write transactions of everyone else: `after - before - 1`. "Writes" is
 * Postgres's own notion: any row inserted, updated or deleted, a row lock (SELECT … FOR
 * UPDATE writes the row's header), a NOTIFY; a read-only transaction takes no id and is not
 * counted. A subtransaction (savepoint) that writes takes an id of its own and counts as
 * one more. Ids are the server's, shared by all its databases.
 */
export interface WriteTransactions {
  /** pg_current_xact_id() before the measured step, and after its sagas and their events were done. */
  before: number;
  after: number;
  /** Ids taken by the bench's own reads between them (the `after` read). */
  reads: number;
  /** Write transactions of everyone else: after − before − reads. */
  transactions: number;
  /** Sagas of the step that completed. */
  sagas: number;
  /** transactions ÷ sagas. */
  perSaga: number;
  /** What wrote in that window, in words. */
  includes: string;
  /** How long the window lasted (ms). */
  windowMs: number;
  /**
   * Writes that come with time, not with sagas (the relay's lease, autovacuum…): counted the
   * same way over `ms` with no load just before; `perSaga` includes them, `inWindow` is their
   * share at that rate (null: not measured).
   */
  background: { transactions: number; ms: number; inWindow: number } | null;
}

/** A window: the ids read at its start and end, and when (ms). */
export interface IdWindow {
  before: number;
  after: number;
  ms: number;
}

/** Write transactions in a window: the ids in between, less the `after` read's own. */
function writesIn({ before, after }: IdWindow): number {
  const transactions = after - before - 1;
  if (!Number.isInteger(transactions) || transactions < 0) {
    throw new Error(`transaction ids went from ${before} to ${after}: not a window of this server`);
  }
  return transactions;
}

export function writeTransactions(
  window: IdWindow,
  sagas: number,
  includes: string,
  idle: IdWindow | null = null,
): WriteTransactions {
  const { before, after } = window;
  const reads = 1;
  const transactions = writesIn(window);
  const idleWrites = idle ? writesIn(idle) : null;
  return {
    before,
    after,
    reads,
    transactions,
    sagas,
    perSaga: sagas > 0 ? transactions / sagas : Number.NaN,
    includes,
    windowMs: window.ms,
    background:
      idle && idleWrites !== null && idle.ms > 0
        ? {
            transactions: idleWrites,
            ms: idle.ms,
            inWindow: Math.round((idleWrites * window.ms) / idle.ms),
          }
        : null,
  };
}

/** Evenly spread picks of at most `count` items, first and last included. */
export function spreadSample<T>(items: readonly T[], count: number): T[] {
  if (items.length <= count) return [...items];
  if (count <= 1) return items.slice(0, Math.max(0, count));
  return Array.from(
    { length: count },
    (_, index) => items[Math.round((index * (items.length - 1)) / (count - 1))]!,
  );
}
