/**
 * A result as JSON. Plain JSON has no infinity, and a saga that never finished has an
 * infinite latency: such values are written as the number 1e999, which JSON parsers read
 * back as infinity (JavaScript, Python) or the largest double (jq). A statistic with no
 * samples (NaN) is written as null. Results of schema 1 (before local activities) are read
 * as schema 2, so `--render` still renders them.
 */
import type { BenchResult, SearchRecord, StepRecord } from './result';
import { describeShape, type StepShape } from './saga-shape';

const INFINITY_MARK = '__bench_infinity__';
const SUMMARY_FIELDS = new Set(['min', 'mean', 'p50', 'p95', 'p99', 'max']);

export function stringifyResult(result: BenchResult): string {
  const text = JSON.stringify(
    result,
    (_key, value: unknown) =>
      value === Number.POSITIVE_INFINITY
        ? INFINITY_MARK
        : value === Number.NEGATIVE_INFINITY
          ? `-${INFINITY_MARK}`
          : value,
    2,
  );
  return text.replaceAll(`"-${INFINITY_MARK}"`, '-1e999').replaceAll(`"${INFINITY_MARK}"`, '1e999');
}

export function parseResult(text: string): BenchResult {
  const parsed = JSON.parse(text, (key, value: unknown) =>
    value === null && SUMMARY_FIELDS.has(key) ? Number.NaN : value,
  ) as BenchResult | ResultV1;
  return parsed.schema === 1 ? fromV1(parsed) : parsed;
}

/** Schema 1: every saga step an activity (task queue not recorded), the bare runs too. */
type ResultV1 = Omit<BenchResult, 'schema' | 'saga' | 'bare'> & {
  schema: 1;
  saga: { activities: string[]; historyEvents: number; eventKinds: Record<string, number> } | null;
  bare: {
    activities: number;
    idle: StepRecord | null;
    /** The same runs with local activities. */
    localIdle: StepRecord | null;
    search: SearchRecord | null;
  } | null;
};

function fromV1({ saga, bare, ...rest }: ResultV1): BenchResult {
  const shape = (steps: number, local: boolean): string =>
    describeShape(
      Array.from({ length: steps }, (): StepShape =>
        local ? { local: true } : { local: false, queueSuffix: '' },
      ),
    );
  return {
    ...rest,
    schema: 2,
    saga: saga && {
      steps: saga.activities.map((activity) => ({ activity, local: false, taskQueue: null })),
      shape: shape(saga.activities.length, false),
      historyEvents: saga.historyEvents,
      eventKinds: saga.eventKinds,
    },
    bare: bare && {
      shape: shape(bare.activities, false),
      idle: bare.idle,
      variants: bare.localIdle ? [{ shape: shape(bare.activities, true), idle: bare.localIdle }] : [],
      search: bare.search,
    },
  };
}
