/**
 * Renders a BenchResult: the markdown summary (also printed), one line per load step for
 * the progress display, and the chart's series. Pure.
 */
import { COUNTER_LABELS, formatCounter, HISTORY_COUNTERS, type HistoryCounter } from './counters';
import { ROLES, type CpuReport } from './procstat';
import type { BenchResult, DirectRecord, SearchRecord, StepRecord } from './result';
import { stepLabel } from './saga-shape';
import type { Series } from './svg';

export function formatMs(ms: number): string {
  if (Number.isNaN(ms)) return '–';
  if (!Number.isFinite(ms)) return '∞';
  return ms < 10 ? ms.toFixed(1) : String(Math.round(ms));
}

export function formatRate(perS: number | null | undefined): string {
  if (perS === null || perS === undefined || Number.isNaN(perS)) return '–';
  return perS >= 100 ? String(Math.round(perS)) : perS.toFixed(1);
}

const ratio = (value: number | null): string => (value === null ? '–' : `${value.toFixed(2)}×`);
const check = (met: boolean | null): string => (met === null ? '–' : met ? 'met' : 'missed');

/** "api 20% · worker 35% · … · other 12%": CPU per process as a share of one core. */
export function formatCpu(cpu: CpuReport | undefined): string {
  if (cpu === undefined) return '';
  const parts = ROLES.flatMap((role) => {
    const used = cpu.roles[role];
    return used === undefined ? [] : [`${role} ${Math.round(used.pctOfCore)}%`];
  });
  return (
    `${parts.join(' ')} | machine ${Math.round(cpu.machineBusyPct)}% busy ` +
    `(${Math.round(cpu.foreignPct)}% other work), ${Math.round(cpu.machineIowaitPct)}% iowait`
  );
}

/** The progress line of one step. */
export function stepLine(step: StepRecord): string {
  const verdict =
    (step.sustained ? 'ok' : `NOT sustained: ${step.reasons.join('; ')}`) +
    (step.backlogAtStart > 0 ? ` (started behind ${step.backlogAtStart} unfinished sagas)` : '');
  return (
    [
      `${step.label.padEnd(9)} ${formatRate(step.offeredPerS).padStart(5)}/s`,
      `sent ${step.sent} (${formatRate(step.sentPerS)}/s)`,
      `done ${formatRate(step.completedPerS)}/s`,
      `POST p50/p99 ${formatMs(step.post.p50)}/${formatMs(step.post.p99)} ms`,
      `saga p50/p99 ${formatMs(step.saga.p50)}/${formatMs(step.saga.p99)} ms`,
      `errors ${step.errors}`,
      verdict,
    ].join('  ') + (step.cpu ? `\n          cpu: ${formatCpu(step.cpu)}` : '')
  );
}

/** The targets, each against what was measured. */
function summaryRows(result: BenchResult): string[][] {
  const saturation = result.happy?.sustained ?? null;
  const bareSaturation = result.bare?.search?.sustained ?? null;
  const half = result.half;
  const idle = result.idle;
  const direct = directFigures(result);
  const sagaPerS = saturation?.completedPerS ?? null;
  const rows: string[][] = [
    [
      'completed sagas/s at saturation (happy path)',
      sagaPerS === null
        ? 'none sustained'
        : `${formatRate(sagaPerS)} (offered ${formatRate(saturation!.offeredPerS)}/s)`,
      '',
      '',
    ],
    ['accepted orders/s at saturation', formatRate(saturation?.acceptedPerS), '', ''],
    [
      'peak completed sagas/s under overload',
      result.happy?.peak
        ? `${formatRate(result.happy.peak.completedPerS)} (offered ${formatRate(result.happy.peak.offeredPerS)}/s)`
        : '–',
      '',
      '',
    ],
    [
      'completed sagas/s at saturation, 10 % declined',
      result.mix?.sustained
        ? `${formatRate(result.mix.sustained.completedPerS)} (offered ${formatRate(result.mix.sustained.offeredPerS)}/s)`
        : result.mix
          ? 'none sustained'
          : 'not run',
      '',
      '',
    ],
    [
      `completed sagas/s at saturation, hot SKU (every order buys ${result.settings.load?.hotSku ?? 'one product'})`,
      searchFigure(result.hot),
      '',
      '',
    ],
    [
      `bare Temporal (the saga's shape, no-op: ${result.bare?.shape ?? '?'}), completed/s`,
      bareSaturation
        ? `${formatRate(bareSaturation.completedPerS)} (offered ${formatRate(bareSaturation.offeredPerS)}/s)`
        : '–',
      '',
      '',
    ],
    [
      [
        "bare Temporal p50 / p99, idle: the saga's shape",
        ...(result.bare?.variants ?? []).map((v) => v.shape),
      ].join(' · '),
      result.bare?.idle
        ? [result.bare.idle, ...result.bare.variants.map((variant) => variant.idle)]
            .map((idle) => `${formatMs(idle.saga.p50)} / ${formatMs(idle.saga.p99)} ms`)
            .join(' · ')
        : '–',
      '',
      '',
    ],
    [
      'direct (same SQL, no Temporal, products spread over the catalog), sagas/s',
      direct.spread ?? '–',
      '',
      '',
    ],
    ['direct, every run buying the same products (hot rows), sagas/s', direct.same ?? '–', '', ''],
    [
      'saga ÷ bare Temporal (sustained rates)',
      ratio(result.ratios.sagaOverBare),
      '≥ 0.7×',
      check(nullable(result.ratios.sagaOverBare, (v) => v >= 0.7)),
    ],
    ['saga sustained rate ÷ direct', ratio(result.ratios.sagaOverDirect), '', ''],
    [
      `POST /orders p50 / p95 / p99 at 50 % (${formatRate(half?.offeredPerS)}/s)`,
      half ? `${formatMs(half.post.p50)} / ${formatMs(half.post.p95)} / ${formatMs(half.post.p99)} ms` : '–',
      'p99 ≤ 15 ms',
      check(half ? half.post.p99 <= 15 : null),
    ],
    [
      '… the same, timed from the actual send',
      half
        ? `${formatMs(half.postFromSend.p50)} / ${formatMs(half.postFromSend.p95)} / ${formatMs(half.postFromSend.p99)} ms`
        : '–',
      '',
      '',
    ],
    [
      'POST-to-COMPLETED p50 / p99, idle (one at a time)',
      idle ? `${formatMs(idle.saga.p50)} / ${formatMs(idle.saga.p99)} ms` : '–',
      'p50 ≤ 100 ms',
      check(idle ? idle.saga.p50 <= 100 : null),
    ],
    [
      'POST-to-COMPLETED p50 / p99 at 50 %',
      half ? `${formatMs(half.saga.p50)} / ${formatMs(half.saga.p99)} ms` : '–',
      '',
      '',
    ],
    [
      'POST to OrderCompleted on the stream p50 / p99 at 50 %',
      half ? `${formatMs(half.endToEnd.p50)} / ${formatMs(half.endToEnd.p99)} ms` : '–',
      '',
      '',
    ],
    [
      'outbox commit-to-publish lag p50 / p99 at 50 %',
      half ? `${formatMs(half.outboxLag.p50)} / ${formatMs(half.outboxLag.p99)} ms` : '–',
      'p99 ≤ 20 ms',
      check(half && half.outboxLag.count > 0 ? half.outboxLag.p99 <= 20 : null),
    ],
    [
      'backlog drain',
      result.drain ? `${formatRate(result.drain.eventsPerS)} events/s (${result.drain.events} events)` : '–',
      '≥ 10,000/s',
      check(result.drain ? result.drain.eventsPerS >= 10_000 && result.drain.leftOver === 0 : null),
    ],
    ...perSagaRows(result),
  ];
  return rows;
}

/** The system's processes: every role but the bench's own load generator and consumer. */
export const SYSTEM_ROLES = ROLES.filter((role) => role !== 'bench');

/** CPU ms per saga of the system's processes together (null: not measured). */
export function systemCpuMs(cpu: BenchResult['cpuMsPerSaga']): number | null {
  if (!cpu) return null;
  return SYSTEM_ROLES.reduce((sum, role) => sum + (cpu[role] ?? 0), 0);
}

/** "131 (api 7 · worker 40 · …)": all processes, then each; – when not measured. */
function cpuFigure(cpu: BenchResult['cpuMsPerSaga'] | undefined): string {
  const total = systemCpuMs(cpu ?? null);
  if (!cpu || total === null) return '–';
  const each = SYSTEM_ROLES.flatMap((role) =>
    cpu[role] === undefined ? [] : [`${role} ${Math.round(cpu[role])}`],
  );
  return `${Math.round(total)} (${each.join(' · ')})`;
}

/** "8.0 (offered 8/s)", "none sustained" or "not run". */
function searchFigure(search: SearchRecord | null | undefined): string {
  if (!search) return 'not run';
  if (!search.sustained) return 'none sustained';
  return `${formatRate(search.sustained.completedPerS)} (offered ${formatRate(search.sustained.offeredPerS)}/s)`;
}

/** Issue 17's per saga targets (the others have none). */
const COUNTER_TARGETS: Partial<Record<HistoryCounter, number>> = {
  events: 20,
  workflowTasks: 2,
  searchAttributeUpserts: 2,
};
const WRITE_TRANSACTIONS_TARGET = 10;

/** Per happy saga: CPU, Postgres write transactions and the history counters (lib/counters.ts). */
function perSagaRows(result: BenchResult): string[][] {
  const perSaga = result.perSaga;
  const history = perSaga?.history ?? null;
  const writes = perSaga?.writeTransactions ?? null;
  const background = perSaga?.backgroundCpu;
  const backgroundMsPerS = background
    ? (SYSTEM_ROLES.reduce((sum, role) => sum + (background.roles[role]?.ms ?? 0), 0) / background.wallMs) *
      1000
    : null;
  const rows: string[][] = [
    [
      "per happy saga at 50 %: CPU ms, all processes (the bench's own not included)",
      cpuFigure(result.cpuMsPerSaga),
      '',
      '',
    ],
    [
      'per happy saga at 50 %: CPU ms beyond the background' +
        (backgroundMsPerS === null ? '' : ` (idle, the processes burn ${Math.round(backgroundMsPerS)} ms/s)`),
      cpuFigure(result.cpuMsPerSagaBeyondBackground),
      '',
      '',
    ],
    [
      'per happy saga at 50 %: Postgres write transactions (transaction ids; everything on the server)',
      writes
        ? `${Number.isNaN(writes.perSaga) ? '–' : writes.perSaga.toFixed(1)} (${writes.transactions} for ${writes.sagas} sagas` +
          (writes.background ? `; about ${writes.background.inWindow} with time, not sagas)` : ')')
        : '–',
      `≤ ${WRITE_TRANSACTIONS_TARGET}`,
      check(writes && !Number.isNaN(writes.perSaga) ? writes.perSaga <= WRITE_TRANSACTIONS_TARGET : null),
    ],
  ];
  for (const counter of HISTORY_COUNTERS) {
    const stat = history?.counters[counter];
    const target = COUNTER_TARGETS[counter];
    rows.push([
      `per happy saga at 50 %: ${COUNTER_LABELS[counter]} (history of ${history?.sampled ?? 0} sagas)`,
      formatCounter(stat),
      target === undefined ? '' : `≤ ${target}`,
      target === undefined ? '' : check(stat ? stat.max <= target : null),
    ]);
  }
  return rows;
}

function nullable<T>(value: T | null, test: (value: T) => boolean): boolean | null {
  return value === null ? null : test(value);
}

export function bestDirectRun(
  result: Pick<BenchResult, 'direct'>,
): BenchResult['direct'][number] | undefined {
  return bestOf(result.direct);
}

function bestOf(runs: readonly DirectRecord[]): DirectRecord | undefined {
  return runs.reduce<DirectRecord | undefined>(
    (best, run) => (best === undefined || run.sagasPerS > best.sagasPerS ? run : best),
    undefined,
  );
}

/**
 * A result's direct runs by the products they bought: results written before the direct
 * baseline spread (no `directSameProducts`) ran the recipe's own products in every run.
 */
export function directRunsByProducts(result: Pick<BenchResult, 'direct' | 'directSameProducts'>): {
  spread: DirectRecord[] | undefined;
  same: DirectRecord[];
} {
  return result.directSameProducts === undefined
    ? { spread: undefined, same: result.direct }
    : { spread: result.direct, same: result.directSameProducts };
}

/** The best run of each kind, as the report's and the comparison's one-line figures. */
export function directFigures(result: Pick<BenchResult, 'direct' | 'directSameProducts'>): {
  spread: string | undefined;
  same: string | undefined;
} {
  const { spread, same } = directRunsByProducts(result);
  const figure = (run: DirectRecord | undefined): string | undefined =>
    run ? `${formatRate(run.sagasPerS)} (${run.concurrency} at once)` : undefined;
  return { spread: figure(bestOf(spread ?? [])), same: figure(bestOf(same)) };
}

export function markdownTable(header: string[], rows: string[][]): string {
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|');
  return [
    `| ${header.map(escape).join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(escape).join(' | ')} |`),
  ].join('\n');
}

function stepsTable(search: SearchRecord): string {
  return markdownTable(
    [
      'offered/s',
      'sent/s',
      'accepted/s',
      'completed/s',
      'POST p50 / p99 ms',
      'saga p50 / p99 ms',
      'errors',
      'sustained',
    ],
    [...search.steps]
      .sort((a, b) => a.offeredPerS - b.offeredPerS)
      .map((step) => [
        formatRate(step.offeredPerS),
        formatRate(step.sentPerS),
        formatRate(step.acceptedPerS),
        formatRate(step.completedPerS),
        `${formatMs(step.post.p50)} / ${formatMs(step.post.p99)}`,
        `${formatMs(step.saga.p50)} / ${formatMs(step.saga.p99)}`,
        String(step.errors),
        step.sustained ? 'yes' : `no: ${step.reasons.join('; ')}`,
      ]),
  );
}

function cpuTable(result: BenchResult): string | undefined {
  const saga = result.cpuMsPerSaga;
  const bare = result.cpuMsPerBareRun;
  if (!saga && !bare) return undefined;
  const half = result.half?.cpu;
  const busiest = (result.happy?.steps ?? []).reduce<StepRecord | undefined>(
    (top, step) => (top === undefined || step.offeredPerS > top.offeredPerS ? step : top),
    undefined,
  );
  const ms = (value: number | undefined): string => (value === undefined ? '–' : value.toFixed(2));
  const pct = (value: number | undefined): string => (value === undefined ? '–' : `${Math.round(value)}%`);
  const rows = ROLES.flatMap((role) =>
    saga?.[role] === undefined && bare?.[role] === undefined
      ? []
      : [
          [
            role,
            ms(saga?.[role]),
            pct(half?.roles[role]?.pctOfCore),
            pct(busiest?.cpu?.roles[role]?.pctOfCore),
            ms(bare?.[role]),
          ],
        ],
  );
  const total = (values: Partial<Record<string, number>> | null): string =>
    values === null
      ? '–'
      : Object.values(values)
          .reduce<number>((sum, value) => sum + (value ?? 0), 0)
          .toFixed(2);
  rows.push(['all of the above', total(saga), '', '', total(bare)]);
  return markdownTable(
    [
      'process',
      'CPU ms per saga (50 %)',
      'CPU, % of a core (50 %)',
      `CPU, % of a core (saga at ${formatRate(busiest?.offeredPerS)}/s)`,
      'CPU ms per bare Temporal run',
    ],
    rows,
  );
}

export function machineLine(result: BenchResult): string {
  const { machine, contention } = result;
  const load = contention.loadAverageAtStart.map((value) => value.toFixed(2)).join(' ');
  return (
    `${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}; ` +
    `load average at start ${load}`
  );
}

export function contentionLine(result: BenchResult): string {
  const { contention, machine } = result;
  const load = contention.loadAverageAtStart[0] ?? 0;
  const foreign = contention.foreignCpuPctMean;
  const foreignText =
    foreign === null
      ? 'CPU used by other work was not measured'
      : `other work used on average ${Math.round(foreign)}% of all cores during the measured steps`;
  if (!contention.contended)
    return `Quiet machine: load average ${load.toFixed(2)} at start; ${foreignText}.`;
  return (
    `**Contended run**: load average ${load.toFixed(2)} at start on ${machine.cores} cores; ${foreignText}. ` +
    'Throughput figures are lower bounds and latencies are noisy.'
  );
}

/** The summary table alone (printed at the end of a run, and the README's table). */
export function summaryTable(result: BenchResult): string {
  return markdownTable(['metric', 'value', 'target', ''], summaryRows(result));
}

export function renderMarkdown(result: BenchResult): string {
  const sections: string[] = [
    `# Benchmark, ${result.startedAt} (${result.mode} mode, ${Math.round(result.durationS)} s)`,
    '',
    `Machine: ${machineLine(result)}.`,
    '',
    contentionLine(result),
    '',
    summaryTable(result),
    '',
    `Workload: ${result.settings.workload}`,
  ];
  if (result.saga) {
    sections.push(
      '',
      `Saga happy path: ${result.saga.shape} (${result.saga.steps.map(stepLabel).join(' → ')}), ` +
        `${result.saga.historyEvents} history events.`,
    );
  }
  const searches: Array<[string, SearchRecord | null | undefined]> = [
    ['Saturation search: saga, happy path', result.happy],
    ['Saturation search: saga, 10 % declined', result.mix],
    ['Saturation search: saga, hot SKU', result.hot],
    ['Saturation search: bare Temporal', result.bare?.search],
  ];
  for (const [title, search] of searches) {
    if (!search || search.steps.length === 0) continue;
    sections.push('', `## ${title}`, '', `Stopped: ${search.stoppedBy}.`, '', stepsTable(search));
  }
  const counted = perSagaNote(result);
  if (counted) sections.push('', '## Per happy saga counters', '', counted);
  const cpu = cpuTable(result);
  if (cpu) sections.push('', '## CPU per process', '', cpu);
  const directRuns = directRunsByProducts(result);
  for (const [title, runs] of [
    ['products spread over the catalog', directRuns.spread ?? []],
    ["every run buying the recipe's own products (hot rows)", directRuns.same],
  ] as const) {
    if (runs.length === 0) continue;
    sections.push(
      '',
      `## Direct baseline (the same transactions, no Temporal), ${title}`,
      '',
      markdownTable(
        ['concurrency', 'sagas/s', 'latency p50 / p99 ms', 'errors'],
        runs.map((run) => [
          String(run.concurrency),
          formatRate(run.sagasPerS),
          `${formatMs(run.latency.p50)} / ${formatMs(run.latency.p99)}`,
          run.errors > 0 ? `${run.errors} (${run.firstError ?? ''})` : '0',
        ]),
      ),
    );
  }
  if (result.notes.length > 0) sections.push('', '## Notes', '', ...result.notes.map((note) => `- ${note}`));
  sections.push('');
  return sections.join('\n');
}

/** How the per saga counters were taken, for the report. */
function perSagaNote(result: BenchResult): string | undefined {
  const perSaga = result.perSaga;
  if (!perSaga) return undefined;
  const lines: string[] = [];
  if (perSaga.history) {
    lines.push(
      `History counters: the histories of ${perSaga.history.sampled} completed sagas of the ${perSaga.step} step, spread over it, ` +
        'counted as fetched (no payload decoded): every event; workflow tasks = WorkflowTaskCompleted; activities = ' +
        'ActivityTaskScheduled; local activities = `core_local_activity` markers; patch markers = `core_patch` markers; ' +
        'other markers; search-attribute upserts = UpsertWorkflowSearchAttributes (the SDK upserts `TemporalChangeVersion` ' +
        'once per `patched()` call). "a (b–c)" is the mean when the sampled sagas differ.',
    );
  }
  const writes = perSaga.writeTransactions;
  if (writes) {
    lines.push(
      `Write transactions: \`pg_current_xact_id()\` read in a transaction of its own before the ${perSaga.step} step ` +
        `(${writes.before}) and after its sagas finished and the relay had published their events (${writes.after}); ` +
        `${writes.after} − ${writes.before} − ${writes.reads} (the bench's own read) = ${writes.transactions} transactions that wrote, ` +
        `÷ ${writes.sagas} completed sagas. Included: ${writes.includes}.` +
        (writes.background
          ? ` With no load, just before, the server took ${writes.background.transactions} write transactions in ` +
            `${(writes.background.ms / 1000).toFixed(1)} s: at that rate about ${writes.background.inWindow} of the ` +
            `${writes.transactions} came with the ${(writes.windowMs / 1000).toFixed(1)} s the step took, not with its sagas.`
          : ''),
    );
  }
  return lines.join('\n\n') || undefined;
}

/** Latency against offered rate: the saga's and the bare baseline's, p50 solid, p99 dashed. */
export function chartSeries(result: BenchResult): Series[] {
  const points = (search: SearchRecord | null | undefined, pick: (step: StepRecord) => number) =>
    (search?.steps ?? []).map((step) => ({ x: step.offeredPerS, y: pick(step) }));
  return [
    { name: 'saga p50 (POST→COMPLETED)', color: '#1f77b4', points: points(result.happy, (s) => s.saga.p50) },
    { name: 'saga p99', color: '#1f77b4', dashed: true, points: points(result.happy, (s) => s.saga.p99) },
    { name: 'POST /orders p50', color: '#2ca02c', points: points(result.happy, (s) => s.post.p50) },
    {
      name: 'POST /orders p99',
      color: '#2ca02c',
      dashed: true,
      points: points(result.happy, (s) => s.post.p99),
    },
    { name: 'bare Temporal p50', color: '#d62728', points: points(result.bare?.search, (s) => s.saga.p50) },
    {
      name: 'bare Temporal p99',
      color: '#d62728',
      dashed: true,
      points: points(result.bare?.search, (s) => s.saga.p99),
    },
  ];
}
