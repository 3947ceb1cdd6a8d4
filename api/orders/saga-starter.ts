import type { Client } from '@temporalio/client';
import type { OrderSagaInput } from '../../contracts/index';
import type { Logger } from '../../lib/logger';
import {
  claimDueStarts,
  readPendingStarts,
  sagaStarted,
  sagaStartFailed,
  type DueStart,
  type PendingStarts,
} from '../../store/saga-starts';
import type { Pool } from '../../store/pool';
import { startSaga } from './saga-start';

/** pg_advisory lock key the starters take, one pass at a time. */
const STARTER_LOCK_KEY = 7_236_003;

export interface SagaStarterOptions {
  /** How long a fresh request is left to the accepting request's own start. */
  graceMs: number;
  /** How often the starter looks for requests left over. */
  pollMs: number;
  /** Requests claimed per pass, started concurrently. */
  batchSize: number;
  /** How long a claimed request stays with this starter before another may take it. */
  leaseMs: number;
  /** How long one start may wait for Temporal. */
  startDeadlineMs: number;
  /** How often a running starter reads how many starts are pending (for its metrics). */
  backlogEveryMs: number;
  /** Retry backoff: first delay and cap (with jitter, so a returning Temporal is not stampeded). */
  backoff: { initialMs: number; maximumMs: number };
}

// Capped at 4 s (+ a 3 s start deadline, + the poll): a saga waiting for Temporal starts
// within 10 s of Temporal answering again.
export const DEFAULT_STARTER_OPTIONS: SagaStarterOptions = {
  graceMs: 2_000,
  pollMs: 500,
  batchSize: 50,
  leaseMs: 10_000,
  startDeadlineMs: 3_000,
  backlogEveryMs: 5_000,
  backoff: { initialMs: 250, maximumMs: 4_000 },
};

export interface SagaStarter {
  readonly graceMs: number;
  /**
   * Starts an accepted order's saga now; resolves once it started, failed, or `waitMs`
   * passed, whichever is first (it never rejects). A start not done by then goes on in the
   * background; one that fails is retried by a starter pass.
   */
  startSoon(input: OrderSagaInput, waitMs?: number): Promise<void>;
  /** Starts a pending saga now and waits for Temporal to have it; throws when it could not. */
  startNow(input: OrderSagaInput): Promise<void>;
  /** One pass over the requests that are due; resolves with how many it started. */
  pass(): Promise<number>;
  /** What the last backlog read found (a running starter reads it every backlogEveryMs). */
  backlog(): PendingStarts;
  /** Passes every pollMs until stop(). */
  run(): void;
  /** Waits for the starts in flight. */
  settle(): Promise<void>;
  /** Stops passing and waits for the starts in flight. */
  stop(): Promise<void>;
}

export interface SagaStarterDeps {
  pool: Pool;
  temporal: Client;
  taskQueue: string;
  logger?: Logger;
  options?: Partial<SagaStarterOptions>;
  /** Jitter source in [0, 1); injectable for tests. */
  random?: () => number;
}

/**
 * Starts the sagas of accepted orders from their start requests (store/saga-starts.ts):
 * right after acceptance, and by passes that pick up whatever is left (Temporal down or
 * slow, the accepting process killed). Starting is idempotent by workflow id, so a saga
 * started twice is one run; a started saga's request is deleted.
 */
export function createSagaStarter(deps: SagaStarterDeps): SagaStarter {
  const options = { ...DEFAULT_STARTER_OPTIONS, ...deps.options };
  const random = deps.random ?? Math.random;
  const inFlight = new Set<Promise<unknown>>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let backlog: PendingStarts = { pending: 0, oldestAgeSeconds: 0 };
  let backlogReadAt = 0;

  const backoffMs = (attempts: number): number => {
    const { initialMs, maximumMs } = options.backoff;
    const capped = Math.min(maximumMs, initialMs * 2 ** Math.min(attempts, 20));
    return Math.round(capped * (0.5 + random() / 2));
  };

  const track = <T>(promise: Promise<T>): Promise<T> => {
    inFlight.add(promise);
    void promise.finally(() => inFlight.delete(promise)).catch(() => undefined);
    return promise;
  };

  /** Starts the saga; once Temporal has the run, its request (and the payment token) goes. */
  const startNow = async (input: OrderSagaInput): Promise<void> => {
    await startSaga(deps.temporal, { taskQueue: deps.taskQueue }, input, options.startDeadlineMs);
    await sagaStarted(deps.pool, input.orderId);
  };
  /**
   * The accepting request's start leaves the request to the saga's first step, which deletes
   * it in its own transaction (one write fewer per order). Should that step not have run
   * within the grace, a starter pass starts again (Temporal answers that the run exists) and
   * deletes it.
   */
  const startFresh = (input: OrderSagaInput): Promise<void> =>
    startSaga(deps.temporal, { taskQueue: deps.taskQueue }, input, options.startDeadlineMs);

  /** One attempt for a request: a failed start is rescheduled with backoff, never thrown. */
  const start = async ({ input, attempts }: DueStart, run = startNow): Promise<boolean> => {
    try {
      await run(input);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      deps.logger?.warn(
        { orderId: input.orderId, attempts: attempts + 1, err: message },
        'saga start failed; will retry',
      );
      await sagaStartFailed(deps.pool, input.orderId, backoffMs(attempts), message).catch(() => undefined);
      return false;
    }
    return true;
  };

  const pass = async (): Promise<number> => {
    const due = await claimDueStarts(deps.pool, STARTER_LOCK_KEY, options.batchSize, options.leaseMs);
    const started = await Promise.all(due.map((request) => track(start(request))));
    return started.filter(Boolean).length;
  };

  const readBacklog = async (): Promise<void> => {
    if (Date.now() - backlogReadAt < options.backlogEveryMs) return;
    backlogReadAt = Date.now();
    backlog = await readPendingStarts(deps.pool);
  };

  const loop = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      pass()
        .then(readBacklog)
        .catch((error: unknown) => deps.logger?.warn({ err: error }, 'saga starter pass failed'))
        .finally(loop);
    }, options.pollMs);
  };

  return {
    graceMs: options.graceMs,
    startSoon: async (input, waitMs = 0) => {
      // Failures are the starter's to retry: the request is in Postgres already.
      const starting = track(start({ input, attempts: 0 }, startFresh)).catch(() => false);
      let waiting: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => (waiting = setTimeout(resolve, waitMs)));
      await Promise.race([starting, waited]);
      clearTimeout(waiting);
    },
    startNow,
    pass,
    backlog: () => backlog,
    run: () => {
      stopped = false;
      loop();
    },
    settle: async () => {
      await Promise.allSettled([...inFlight]);
    },
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await Promise.allSettled([...inFlight]);
    },
  };
}
