/**
 * `npm run bench -- --compare a.json b.json`: two results side by side (dev vs cluster,
 * before vs after), one row per headline figure. A figure a result does not have (an older
 * schema, a phase that did not run) shows as "—". Pure.
 */
import { COUNTER_LABELS, formatCounter, HISTORY_COUNTERS, type HistoryCounter } from './counters';
import { ROLES } from './procstat';
import { directFigures, formatMs, formatRate, markdownTable, systemCpuMs } from './report';
import type { BenchResult, SearchRecord, StepRecord } from './result';

const MISSING = '—';

type Figure = (result: BenchResult) => string | undefined;

const sustained = (search: SearchRecord | null | undefined): string | undefined =>
  search?.sustained
    ? `${formatRate(search.sustained.completedPerS)} (offered ${formatRate(search.sustained.offeredPerS)}/s)`
    : search
      ? 'none sustained'
      : undefined;
const latency = (step: StepRecord | null | undefined, pick: (step: StepRecord) => [number, number]) =>
  step ? pick(step).map(formatMs).join(' / ') + ' ms' : undefined;

/**
 * A history counter: from the sampled histories (schema 3), else, for the counters an older
 * result's first-saga history kinds can give, from those, marked "(first saga)".
 */
const EVENT_KINDS: Partial<Record<HistoryCounter, string>> = {
  workflowTasks: 'workflowTaskCompleted',
  activities: 'activityTaskScheduled',
  searchAttributeUpserts: 'upsertWorkflowSearchAttributes',
};
function historyCounter(counter: HistoryCounter): Figure {
  return (result) => {
    const stat = result.perSaga?.history?.counters[counter];
    if (stat) return formatCounter(stat);
    if (!result.saga) return undefined;
    if (counter === 'events') return `${result.saga.historyEvents} (first saga)`;
    const kind = EVENT_KINDS[counter];
    return kind === undefined ? undefined : `${result.saga.eventKinds[kind] ?? 0} (first saga)`;
  };
}

const FIGURES: Array<[string, Figure]> = [
  ['run', (r) => `${r.mode}, ${r.startedAt}`],
  ['engine', (r) => r.settings.engine ?? 'dev'],
  ['machine', (r) => `${r.machine.cores} cores, ${r.machine.cpuModel}`],
  [
    'foreign CPU during measured steps',
    (r) => nullable(r.contention.foreignCpuPctMean, (v) => `${Math.round(v)} %`),
  ],
  [
    'load',
    (r) =>
      r.settings.load ? `${r.settings.load.products} products, seed ${r.settings.load.seed}` : 'one product',
  ],
  ["saga's shape", (r) => r.saga?.shape],
  ['completed sagas/s at saturation, happy path', (r) => sustained(r.happy)],
  ['… 10 % declined', (r) => sustained(r.mix)],
  ['… hot SKU', (r) => sustained(r.hot)],
  ['bare Temporal, same shape', (r) => sustained(r.bare?.search)],
  ['saga ÷ bare Temporal', (r) => nullable(r.ratios.sagaOverBare, (v) => `${v.toFixed(2)}×`)],
  ['direct (same SQL, no Temporal), products spread, sagas/s', (r) => directFigures(r).spread],
  ['direct, the same products every run, sagas/s', (r) => directFigures(r).same],
  ['POST /orders p50 / p99 at 50 %', (r) => latency(r.half, (s) => [s.post.p50, s.post.p99])],
  ['POST-to-COMPLETED p50 / p99, idle', (r) => latency(r.idle, (s) => [s.saga.p50, s.saga.p99])],
  ['POST-to-COMPLETED p50 / p99 at 50 %', (r) => latency(r.half, (s) => [s.saga.p50, s.saga.p99])],
  ['outbox lag p50 / p99 at 50 %', (r) => latency(r.half, (s) => [s.outboxLag.p50, s.outboxLag.p99])],
  ['backlog drain, events/s', (r) => (r.drain ? formatRate(r.drain.eventsPerS) : undefined)],
  [
    "per saga: CPU ms, all processes (not the bench's)",
    (r) => nullable(systemCpuMs(r.cpuMsPerSaga), (v) => v.toFixed(1)),
  ],
  ...ROLES.map((role): [string, Figure] => [
    `per saga: CPU ms, ${role}`,
    (r) => nullable(r.cpuMsPerSaga?.[role] ?? null, (v) => v.toFixed(1)),
  ]),
  [
    'per saga: CPU ms beyond the background, all processes',
    (r) => nullable(systemCpuMs(r.cpuMsPerSagaBeyondBackground ?? null), (v) => v.toFixed(1)),
  ],
  ...ROLES.map((role): [string, Figure] => [
    `per saga: CPU ms beyond the background, ${role}`,
    (r) => nullable(r.cpuMsPerSagaBeyondBackground?.[role] ?? null, (v) => v.toFixed(1)),
  ]),
  [
    'per saga: Postgres write transactions',
    (r) =>
      nullable(r.perSaga?.writeTransactions?.perSaga ?? null, (v) => (Number.isNaN(v) ? '–' : v.toFixed(1))),
  ],
  ...HISTORY_COUNTERS.map((counter): [string, Figure] => [
    `per saga: ${COUNTER_LABELS[counter]}`,
    historyCounter(counter),
  ]),
];

function nullable<T>(value: T | null, format: (value: T) => string): string | undefined {
  return value === null ? undefined : format(value);
}

/** The markdown table: metric, then a's figure and b's, under the given names. */
export function compareTable(a: BenchResult, b: BenchResult, names: [string, string]): string {
  return markdownTable(
    ['metric', ...names],
    FIGURES.map(([metric, figure]) => [metric, figure(a) ?? MISSING, figure(b) ?? MISSING]),
  );
}
