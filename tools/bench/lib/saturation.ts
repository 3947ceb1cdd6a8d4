/**
 * The saturation search: step the offered rate up a ladder until a step is not sustained,
 * optionally try once between the last good rate and the first bad one, and report the
 * highest sustained step. Pure: the runner feeds it step results.
 */
import type { StepMetrics } from './step';

export interface SaturationBounds {
  /** A step whose saga p99 exceeds this is not sustained. */
  sagaP99Ms: number;
  /** Finished ÷ sent in the second half of a step must reach this (else a backlog grows). */
  minKeepUp: number;
  /** Errors (failed requests, unexpected outcomes, unfinished sagas) ÷ sent allowed. */
  maxErrorRatio: number;
  /** The client must send at least this share of the offered rate, else it is the limit. */
  minSendRatio: number;
}

export const DEFAULT_BOUNDS: SaturationBounds = {
  sagaP99Ms: 1_000,
  minKeepUp: 0.95,
  maxErrorRatio: 0,
  minSendRatio: 0.95,
};

/** The brief's ladder: 10, 20, 40, then steps of 20 to 120, then coarser. */
export const DEFAULT_LADDER: readonly number[] = [
  10, 20, 40, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500, 600, 800, 1000,
];

export interface Verdict {
  sustained: boolean;
  /** Why not, in words (empty when sustained). */
  reasons: string[];
}

type Judged = Pick<
  StepMetrics,
  'offeredPerS' | 'sent' | 'sentPerS' | 'errors' | 'unfinished' | 'keepUp' | 'saga'
>;

export function judgeStep(step: Judged, bounds: SaturationBounds): Verdict {
  const reasons: string[] = [];
  const failures = step.errors + step.unfinished;
  if (step.sent === 0) {
    reasons.push('nothing was sent');
  } else if (failures > bounds.maxErrorRatio * step.sent) {
    const parts = [
      ...(step.errors > 0 ? [`${step.errors} errors`] : []),
      ...(step.unfinished > 0 ? [`${step.unfinished} sagas unfinished`] : []),
    ];
    reasons.push(parts.join(', '));
  }
  // Written so that NaN (no finished saga at all) fails too.
  if (!(step.saga.p99 <= bounds.sagaP99Ms)) {
    reasons.push(`saga p99 ${formatMs(step.saga.p99)} > ${bounds.sagaP99Ms} ms`);
  }
  if (step.keepUp < bounds.minKeepUp) {
    reasons.push(`backlog grows (finished/sent ${step.keepUp.toFixed(2)} < ${bounds.minKeepUp})`);
  }
  if (step.sentPerS < bounds.minSendRatio * step.offeredPerS) {
    reasons.push(`client sent only ${step.sentPerS.toFixed(1)}/s of ${step.offeredPerS}/s`);
  }
  return { sustained: reasons.length === 0, reasons };
}

/** How a rate was chosen: up the ladder, down (nothing sustained yet), or a refinement. */
export type Probe = 'ladder' | 'down' | 'refine';

export interface Tried {
  offeredPerS: number;
  sustained: boolean;
  probe: Probe;
}

export interface SearchOptions {
  /** Try once between the highest sustained rate and the lowest failed one above it. */
  refine: boolean;
  /** Refine only when the failed rate is more than this factor above the good one. */
  refineGap: number;
  maxSteps: number;
}

/**
 * The next rate to try, or undefined when the search is over:
 * - up the ladder (at most doubling) while every step is sustained;
 * - when nothing has been sustained yet, halve the lowest rate tried (down to 1/s), so a
 *   slow configuration still gets a figure rather than "none";
 * - once there is a sustained and a failed rate, at most one refinement at their midpoint.
 */
export function nextRate(
  tried: readonly Tried[],
  ladder: readonly number[],
  options: SearchOptions,
): { ratePerS: number; probe: Probe } | undefined {
  if (tried.length >= options.maxSteps) return undefined;
  const rates = (steps: readonly Tried[]): number[] => steps.map((step) => step.offeredPerS);
  const good = rates(tried.filter((step) => step.sustained));
  const bad = rates(tried.filter((step) => !step.sustained));
  if (tried.length === 0)
    return ladder[0] === undefined ? undefined : { ratePerS: ladder[0], probe: 'ladder' };
  if (bad.length === 0) {
    // The next rung, but never more than double: a search that starts low climbs 1, 2, 4, 8, 10…
    const highest = Math.max(...good);
    const above = ladder.find((rate) => rate > highest);
    return above === undefined ? undefined : { ratePerS: Math.min(above, 2 * highest), probe: 'ladder' };
  }
  if (good.length === 0) {
    const down = Math.floor(Math.min(...bad) / 2);
    return down >= 1 ? { ratePerS: down, probe: 'down' } : undefined;
  }
  if (!options.refine || tried.some((step) => step.probe === 'refine')) return undefined;
  const goodRate = Math.max(...good);
  const failedAbove = bad.filter((rate) => rate > goodRate);
  if (failedAbove.length === 0) return undefined;
  const failedRate = Math.min(...failedAbove);
  if (failedRate <= goodRate * options.refineGap) return undefined;
  const midpoint = Math.round((goodRate + failedRate) / 2);
  if (midpoint <= goodRate || midpoint >= failedRate || rates(tried).includes(midpoint)) return undefined;
  return { ratePerS: midpoint, probe: 'refine' };
}

export interface Saturation<T extends Tried> {
  /** The sustained step with the highest offered rate (undefined if none was). */
  sustained: T | undefined;
  /** The step that finished the most sagas per second, sustained or not. */
  peak: T | undefined;
}

export function saturationOf<T extends Tried & { completedPerS: number }>(
  steps: readonly T[],
): Saturation<T> {
  let sustained: T | undefined;
  let peak: T | undefined;
  for (const step of steps) {
    if (step.sustained && (sustained === undefined || step.offeredPerS > sustained.offeredPerS)) {
      sustained = step;
    }
    if (peak === undefined || step.completedPerS > peak.completedPerS) peak = step;
  }
  return { sustained, peak };
}

/** A ladder that starts at `start` (rounded) and goes on with the rungs above it. */
export function ladderFrom(ladder: readonly number[], start: number): number[] {
  const first = Math.max(1, Math.round(start));
  return [first, ...ladder.filter((rate) => rate > first)];
}

function formatMs(ms: number): string {
  return Number.isFinite(ms) ? `${Math.round(ms)} ms` : 'unfinished';
}
