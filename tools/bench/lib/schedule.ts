/**
 * Open-loop, constant-arrival scheduling: request i is due at i × 1000 / rate ms after the
 * start, whatever happened to the earlier ones. The sender wakes, sends every request that
 * is due (catching up after a late timer), and sleeps until the next one. Latency is taken
 * from the scheduled time, so a late send counts against the system, not in its favour
 * (no coordinated omission).
 */

/** How many requests a step of `durationMs` at `ratePerS` sends (at least one). */
export function requestCount(ratePerS: number, durationMs: number): number {
  return Math.max(1, Math.round((ratePerS * durationMs) / 1000));
}

/** When request `index` (from 0) is due, in ms after the step started. */
export function scheduledOffsetMs(index: number, ratePerS: number): number {
  return (index * 1000) / ratePerS;
}

/** How many requests are due `elapsedMs` after the start (the first at 0), at most `total`. */
export function dueCount(elapsedMs: number, ratePerS: number, total: number): number {
  if (elapsedMs < 0) return 0;
  return Math.min(total, Math.floor((elapsedMs * ratePerS) / 1000 + 1e-9) + 1);
}

/** How long to sleep before request `sent` is due (0 when it already is). */
export function msUntilDue(sent: number, ratePerS: number, elapsedMs: number): number {
  return Math.max(0, scheduledOffsetMs(sent, ratePerS) - elapsedMs);
}
