import {
  BrokenCircuitError,
  CircuitState,
  IsolatedCircuitError,
  SamplingBreaker,
  circuitBreaker,
  handleWhen,
} from 'cockatiel';
import { TransientProviderError } from './types';

/**
 * A circuit breaker around a provider adapter (payment gateway, carrier), built on
 * cockatiel. When more than `failureRatio` of the calls made in the last `windowMs` failed
 * transiently, and there were at least `minimumCalls` of them, the breaker opens and every
 * call fails fast with ProviderUnavailableError, without reaching the provider; after
 * `halfOpenAfterMs` one trial call goes through: success closes the breaker, a transient
 * failure opens it again. Calls made while the trial runs wait for its outcome.
 *
 * A ratio over a window, not a count of failures in a row, and only failures of the
 * provider itself: one order's bad luck (a card whose charges fail transiently a few
 * times) must not cut every other order off the provider. The chaos drills saw exactly
 * that: a few orders retrying at once opened the breaker, healthy payments failed fast,
 * burnt their retry budget and ended `step_timeout`; and once the load ended, the only
 * calls left were refunds that fail on purpose a few times, so the ratio tripped it, each
 * half-open trial was one of them, and those orders sat in REQUIRES_ATTENTION for minutes.
 * A provider that is really down fails most calls, from every order, and still trips it.
 *
 * Only a TransientProviderError of scope 'provider' counts as a failure. Business answers
 * (declined, refused) are results, so they count as successes; other errors say nothing
 * about the provider's health and are not counted at all: request-scoped transient errors
 * (one card's processing error), bugs, and calls aborted because the activity was
 * cancelled or timed out.
 *
 * Temporal does the waiting: the activity fails with a retryable failure and the saga's
 * retry policy backs off, so a dead provider costs one fast failure per attempt instead of
 * a timeout, and sees one trial call per `halfOpenAfterMs` from this process.
 *
 * Build one per provider per worker process (at the composition root) and share it
 * between every activity that calls that provider.
 */

export interface CircuitBreakerOptions {
  /** The provider, in error messages: 'payment gateway', 'carrier'. */
  name: string;
  /** Share of transiently failed calls, over the window, that opens the breaker. Default 0.5. */
  failureRatio?: number;
  /** The sliding window the ratio is measured over. Default 10 s. */
  windowMs?: number;
  /** Calls the window must hold before the ratio counts (no opening on a trickle). Default 20. */
  minimumCalls?: number;
  /** How long the breaker stays open before a trial call goes through. Default 5 s. */
  halfOpenAfterMs?: number;
  /** Called on every state change, e.g. to log that a provider is considered down. */
  onStateChange?: (state: BreakerState) => void;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export const BREAKER_DEFAULTS = {
  failureRatio: 0.5,
  windowMs: 10_000,
  minimumCalls: 20,
  halfOpenAfterMs: 5_000,
} as const;

/**
 * The breaker is open: the call was not made. Retryable; its name is the Temporal error
 * type, so it reads `ProviderUnavailable` even where it is not converted explicitly
 * (activities/step-runner.ts converts it).
 */
export class ProviderUnavailableError extends Error {
  override readonly name = 'ProviderUnavailable';
}

const isProviderFailure = (error: unknown): boolean =>
  error instanceof TransientProviderError && error.scope === 'provider';

/** Wraps a provider error raised by a call that was aborted, so the breaker ignores it. */
class AbortedCall {
  constructor(readonly error: unknown) {}
}

const STATE_NAMES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'open',
};

/** Provider adapters: objects whose methods each take one request and return a promise. */
type ProviderAdapter<T> = { [K in keyof T]: (request: never) => Promise<unknown> };

/**
 * Returns `adapter` with every method guarded by one shared breaker (the adapter's calls
 * all reach the same provider, so they share its health).
 */
export function withCircuitBreaker<T extends ProviderAdapter<T>>(
  adapter: T,
  options: CircuitBreakerOptions,
): T {
  const windowMs = options.windowMs ?? BREAKER_DEFAULTS.windowMs;
  const minimumCalls = options.minimumCalls ?? BREAKER_DEFAULTS.minimumCalls;
  const policy = circuitBreaker(handleWhen(isProviderFailure), {
    breaker: new SamplingBreaker({
      threshold: options.failureRatio ?? BREAKER_DEFAULTS.failureRatio,
      duration: windowMs,
      // cockatiel asks for a rate; the window holds at least minimumCalls at this rate.
      minimumRps: minimumCalls / (windowMs / 1000),
    }),
    halfOpenAfter: options.halfOpenAfterMs ?? BREAKER_DEFAULTS.halfOpenAfterMs,
  });
  if (options.onStateChange) {
    const notify = options.onStateChange;
    policy.onStateChange((state) => notify(STATE_NAMES[state]));
  }

  const guarded = async (call: () => Promise<unknown>, request: unknown): Promise<unknown> => {
    const signal = (request as { signal?: unknown } | undefined)?.signal;
    try {
      return await policy.execute(async () => {
        try {
          return await call();
        } catch (error) {
          throw signal instanceof AbortSignal && signal.aborted ? new AbortedCall(error) : error;
        }
      });
    } catch (error) {
      if (error instanceof AbortedCall) throw error.error;
      if (error instanceof BrokenCircuitError || error instanceof IsolatedCircuitError) {
        throw new ProviderUnavailableError(
          `${options.name} unavailable: circuit open after repeated transient failures, call not made`,
        );
      }
      throw error;
    }
  };

  return new Proxy(adapter, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      const method = value as (request: unknown) => Promise<unknown>;
      return (request: unknown) => guarded(() => method.call(target, request), request);
    },
  });
}
