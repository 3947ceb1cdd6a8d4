/**
 * A result as JSON. Plain JSON has no infinity, and a saga that never finished has an
 * infinite latency: such values are written as the number 1e999, which JSON parsers read
 * back as infinity (JavaScript, Python) or the largest double (jq). A statistic with no
 * samples (NaN) is written as null.
 */
import type { BenchResult } from './result';

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
  return JSON.parse(text, (key, value: unknown) =>
    value === null && SUMMARY_FIELDS.has(key) ? Number.NaN : value,
  ) as BenchResult;
}
