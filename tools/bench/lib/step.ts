/**
 * What one load step measured, computed from the raw samples of its orders. Pure, so the
 * definitions (what counts as completed, how throughput and keeping up are measured) are
 * unit-tested and written down in one place.
 */
import { summarize, type Summary } from './stats';

export type TerminalStatus = 'COMPLETED' | 'FAILED' | 'CANCELLED';

/** One order (or bare workflow) of a step. Times are wall-clock ms. */
export interface OrderSample {
  /** When the open-loop schedule said to send it. */
  dueAtMs: number;
  /** When it was handed to the HTTP client (later than due when the sender ran late). */
  sentAtMs: number;
  /** When the 202 (or the start call's answer) arrived; undefined when it failed. */
  acceptedAtMs: number | undefined;
  /** The terminal status this order should reach (10 % of the mix are declined → FAILED). */
  expected: TerminalStatus;
  status: TerminalStatus | undefined;
  /** When the saga reached its terminal state: the terminal event's occurredAt. */
  doneAtMs: number | undefined;
  /** When the terminal event was stored in the stream (its JetStream timestamp). */
  publishedAtMs: number | undefined;
  /** Commit-to-stream lag of each of the order's events. */
  lagsMs: number[];
}

export interface StepWindow {
  startedAtMs: number;
  durationMs: number;
  offeredPerS: number;
}

export interface StepMetrics {
  offeredPerS: number;
  durationS: number;
  sent: number;
  /** Requests actually sent per second (below offered when the client could not keep up). */
  sentPerS: number;
  accepted: number;
  acceptedPerS: number;
  /** Failed requests plus sagas that ended in an unexpected status. */
  errors: number;
  errorKinds: Record<string, number>;
  /** Sagas that reached their terminal state (any status). */
  finished: number;
  /** Accepted sagas that had not finished when the step stopped waiting. */
  unfinished: number;
  /** Sagas finished per second during the second half of the step (steady state). */
  completedPerS: number;
  /** Finished ÷ sent during the second half: below 1 means a backlog is building. */
  keepUp: number;
  /** POST (or start call) latency from the scheduled send time. */
  post: Summary;
  /** POST latency from the moment the request was actually sent. */
  postFromSend: Summary;
  /** How late the sender was against the schedule. */
  sendDelay: Summary;
  /** Scheduled send → terminal state in the database; unfinished sagas count as Infinity. */
  saga: Summary;
  /** Scheduled send → terminal event on the stream. */
  endToEnd: Summary;
  /** Outbox commit → stream, every event of the step's orders. */
  outboxLag: Summary;
}

export function stepMetrics(
  window: StepWindow,
  samples: readonly OrderSample[],
  requestErrors: Readonly<Record<string, number>>,
): StepMetrics {
  const errorKinds: Record<string, number> = { ...requestErrors };
  const accepted = samples.filter((sample) => sample.acceptedAtMs !== undefined);
  const finished = accepted.filter((sample) => sample.status !== undefined && sample.doneAtMs !== undefined);
  for (const sample of finished) {
    if (sample.status !== sample.expected) {
      const kind = `saga ended ${sample.status} (expected ${sample.expected})`;
      errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
    }
  }
  const errors = Object.values(errorKinds).reduce((total, count) => total + count, 0);
  const durationS = window.durationMs / 1000;
  const sent = samples.length;

  // Steady state: the second half of the sending window.
  const halfStart = window.startedAtMs + window.durationMs / 2;
  const halfEnd = window.startedAtMs + window.durationMs;
  const inHalf = (at: number | undefined): boolean => at !== undefined && at >= halfStart && at < halfEnd;
  const finishedInHalf = finished.filter((sample) => inHalf(sample.doneAtMs)).length;
  const dueInHalf = samples.filter((sample) => inHalf(sample.dueAtMs)).length;
  const halfS = window.durationMs / 2 / 1000;

  return {
    offeredPerS: window.offeredPerS,
    durationS,
    sent,
    sentPerS: durationS > 0 ? sent / durationS : Number.NaN,
    accepted: accepted.length,
    acceptedPerS: durationS > 0 ? accepted.length / durationS : Number.NaN,
    errors,
    errorKinds,
    finished: finished.length,
    unfinished: accepted.length - finished.length,
    completedPerS: halfS > 0 ? finishedInHalf / halfS : Number.NaN,
    keepUp: dueInHalf > 0 ? finishedInHalf / dueInHalf : Number.NaN,
    post: summarize(accepted.map((sample) => sample.acceptedAtMs! - sample.dueAtMs)),
    postFromSend: summarize(accepted.map((sample) => sample.acceptedAtMs! - sample.sentAtMs)),
    sendDelay: summarize(samples.map((sample) => sample.sentAtMs - sample.dueAtMs)),
    saga: summarize(
      accepted.map((sample) =>
        sample.doneAtMs === undefined ? Number.POSITIVE_INFINITY : sample.doneAtMs - sample.dueAtMs,
      ),
    ),
    endToEnd: summarize(
      accepted.map((sample) =>
        sample.publishedAtMs === undefined ? Number.POSITIVE_INFINITY : sample.publishedAtMs - sample.dueAtMs,
      ),
    ),
    outboxLag: summarize(accepted.flatMap((sample) => sample.lagsMs)),
  };
}

/** The error kind of a request the client did not send because too many were in flight. */
export const DROPPED = 'dropped: too many requests in flight';
