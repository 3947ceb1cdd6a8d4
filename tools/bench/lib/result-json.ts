/**
 * A result as JSON. Plain JSON has no infinity, and a saga that never finished has an
 * infinite latency: such values are written as the number 1e999, which JSON parsers read
 * back as infinity (JavaScript, Python) or the largest double (jq). A statistic with no
 * samples (NaN) is written as null. Results of older schemas are read as schema 3, so
 * `--render` and `--compare` still read them: schema 1 (before local activities) and 2
 * (before per saga counters, the many-SKU load and the hot-SKU search: those read as
 * null, not measured).
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
  ) as BenchResult | ResultV2 | ResultV1;
  if (parsed.schema === 3) return parsed;
  return fromV2(parsed.schema === 1 ? fromV1(parsed) : parsed);
}

/** Schema 2: no per saga counters, no hot-SKU search (every order bought one product). */
type ResultV2 = Omit<BenchResult, 'schema' | 'hot' | 'perSaga'> & { schema: 2 };

function fromV2(result: ResultV2): BenchResult {
  return { ...result, schema: 3, hot: null, perSaga: null };
}

/** Schema 1: every saga step an activity (task queue not recorded), the bare runs too. */
type ResultV1 = Omit<ResultV2, 'schema' | 'saga' | 'bare'> & {
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

function fromV1({ saga, bare, ...rest }: ResultV1): ResultV2 {
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
