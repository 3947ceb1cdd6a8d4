/**
 * Latency statistics. Percentiles are nearest-rank (the smallest sample with at least p %
 * of the samples at or below it), so every reported figure is a latency that was measured.
 * A saga that never finished counts as +Infinity: it pushes the high percentiles up
 * instead of silently leaving the sample.
 */

export interface Summary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of values sorted ascending; NaN when there are none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  if (p <= 0) return sorted[0]!;
  const rank = Math.ceil((Math.min(p, 100) / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const count = sorted.length;
  const sum = sorted.reduce((total, value) => total + value, 0);
  return {
    count,
    min: count === 0 ? Number.NaN : sorted[0]!,
    mean: count === 0 ? Number.NaN : sum / count,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: count === 0 ? Number.NaN : sorted[count - 1]!,
  };
}

export const EMPTY_SUMMARY: Summary = summarize([]);
