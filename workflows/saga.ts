/**
 * A small compensation stack for sagas. Pure: the workflow injects Temporal's `sleep` and
 * `CancellationScope.nonCancellable`, so this file runs in unit tests without a server.
 *
 * - A compensation is registered BEFORE its step runs: a step that timed out may still
 *   have committed, so its undo must run anyway (every compensation is a no-op when there
 *   is nothing to undo).
 * - Compensations run in reverse order of registration (LIFO); consecutive ones that share
 *   a `group` are independent and run concurrently.
 * - The unwind cannot be cancelled and never gives up: each compensation is retried with
 *   capped exponential backoff until it succeeds. After `attentionAfterFailures` failures
 *   in a row `onAttention(true)` is called (retries go on), and `onAttention(false)` once
 *   that compensation succeeds.
 * - After `pivot()` (the point of no return) nothing is compensated any more.
 */

export interface SagaRuntime {
  sleep(ms: number): Promise<void>;
  nonCancellable<T>(fn: () => Promise<T>): Promise<T>;
}

export interface SagaOptions {
  /** Consecutive failures of one compensation before onAttention(true). */
  attentionAfterFailures: number;
  backoff: { initialMs: number; coefficient: number; maximumMs: number };
  onAttention?: (needed: boolean, compensation: string, error: unknown) => Promise<void>;
  /** Called once before the first compensation runs. */
  onUnwindStart?: () => Promise<void>;
}

export interface Compensation {
  name: string;
  run: () => Promise<void>;
  /** Compensations registered one after another with the same group run concurrently. */
  group?: string;
}

export const DEFAULT_SAGA_OPTIONS: SagaOptions = {
  attentionAfterFailures: 3,
  backoff: { initialMs: 500, coefficient: 2, maximumMs: 60_000 },
};

export class Saga {
  private readonly stack: Compensation[] = [];
  private pivoted = false;
  private readonly options: SagaOptions;

  constructor(
    private readonly runtime: SagaRuntime,
    options: Partial<SagaOptions> = {},
  ) {
    this.options = { ...DEFAULT_SAGA_OPTIONS, ...options };
  }

  /** Registers the undo of the step about to run. Ignored after the pivot. */
  add(compensation: Compensation): void {
    if (!this.pivoted) this.stack.push(compensation);
  }

  /** The point of no return: what is registered so far will never be compensated. */
  pivot(): void {
    this.pivoted = true;
    this.stack.length = 0;
  }

  get pending(): readonly string[] {
    return this.stack.map((c) => c.name);
  }

  /** Runs every registered compensation in reverse, to completion, uncancellably. */
  async compensate(): Promise<void> {
    const batches = reverseBatches(this.stack.splice(0));
    if (batches.length === 0) return;
    await this.runtime.nonCancellable(async () => {
      await this.options.onUnwindStart?.();
      for (const batch of batches) {
        await Promise.all(batch.map((compensation) => this.runUntilDone(compensation)));
      }
    });
  }

  private async runUntilDone(compensation: Compensation): Promise<void> {
    const { initialMs, coefficient, maximumMs } = this.options.backoff;
    let failures = 0;
    for (;;) {
      try {
        await compensation.run();
        if (failures >= this.options.attentionAfterFailures) {
          await this.options.onAttention?.(false, compensation.name, undefined);
        }
        return;
      } catch (error) {
        failures++;
        if (failures === this.options.attentionAfterFailures) {
          await this.options.onAttention?.(true, compensation.name, error);
        }
        await this.runtime.sleep(Math.min(maximumMs, initialMs * coefficient ** (failures - 1)));
      }
    }
  }
}

/** Reverses the stack and groups consecutive compensations that share a group. */
export function reverseBatches(stack: readonly Compensation[]): Compensation[][] {
  const batches: Compensation[][] = [];
  for (const compensation of [...stack].reverse()) {
    const last = batches[batches.length - 1];
    const lastGroup = last?.[0]?.group;
    if (last && compensation.group !== undefined && compensation.group === lastGroup) {
      last.push(compensation);
    } else {
      batches.push([compensation]);
    }
  }
  return batches;
}
