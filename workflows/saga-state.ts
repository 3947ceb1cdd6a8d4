/**
 * What the saga knows of its order while it runs: served by the `state` query, shown as the
 * run's current details in the Web UI and kept in the OrderStatus search attribute. The
 * database's copy is written by the activities (store/lifecycle.ts); this one only reports.
 */
import {
  ActivityFailure,
  CancellationScope,
  isCancellation,
  setCurrentDetails,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import {
  STEP_NAMES,
  type FailureReason,
  type OrderSagaInput,
  type OrderSagaState,
  type OrderStatus,
  type StepName,
  type StepOutcome,
  type StepState,
} from '../contracts/index';
import { OrderStatusKey } from './search-attributes';

/** A step refused for a business reason; unwinds the saga with that failure reason. */
export class StepRefused extends Error {
  constructor(readonly reason: FailureReason) {
    super(reason);
  }
}

export class SagaState {
  readonly view: OrderSagaState;
  /** The step that refused or ran out of retries, shown FAILED when the order closes. */
  failedStep: StepName | null = null;

  constructor(input: OrderSagaInput) {
    this.view = {
      orderId: input.orderId,
      status: 'PENDING',
      failureReason: null,
      steps: STEP_NAMES.map((name): StepState => ({
        name,
        status: name === 'approval' && !input.requiresApproval ? 'SKIPPED' : 'PENDING',
        attempts: 0,
      })),
    };
  }

  get status(): OrderStatus {
    return this.view.status;
  }

  step(name: StepName): StepState {
    return this.view.steps.find((s) => s.name === name)!;
  }

  setStatus(status: OrderStatus): void {
    this.view.status = status;
    upsertSearchAttributes([{ key: OrderStatusKey, value: status }]);
    const reason = this.view.failureReason;
    setCurrentDetails(`**${status}**${reason ? ` — ${reason}` : ''}`);
  }

  /** Runs a forward step; a refusal throws StepRefused, which unwinds the saga. */
  async forward(name: StepName, run: () => Promise<StepOutcome>): Promise<void> {
    const step = this.step(name);
    step.status = 'RUNNING';
    step.attempts++;
    let outcome: StepOutcome;
    try {
      outcome = await run();
    } catch (error) {
      // Out of retries: the saga unwinds from here. A cancellation is not this step's failure.
      if (!isCancellation(error)) {
        step.status = 'FAILED';
        this.failedStep = name;
      }
      throw error;
    }
    step.status = outcome.ok ? 'COMPLETED' : 'FAILED';
    if (!outcome.ok) {
      this.failedStep = name;
      throw new StepRefused(outcome.reason);
    }
  }

  /** Wraps a compensation so the step it undoes shows COMPENSATING, then COMPENSATED. */
  undoing(name: StepName, run: () => Promise<void>): () => Promise<void> {
    return async () => {
      const step = this.step(name);
      const wasDone = step.status === 'COMPLETED' || step.status === 'COMPENSATING';
      if (wasDone) step.status = 'COMPENSATING';
      await run();
      if (wasDone) step.status = 'COMPENSATED';
    };
  }

  /** Why the order is being undone, shown from the first compensation on. */
  failing(reason: FailureReason | null): void {
    this.view.failureReason = reason;
  }

  /** The order closes unfinished: what never ran, or was interrupted by a cancel, shows SKIPPED. */
  close(status: OrderStatus): void {
    for (const step of this.view.steps) {
      const interrupted = status === 'CANCELLED' && step.name === this.failedStep && step.status === 'FAILED';
      if (step.status === 'PENDING' || step.status === 'RUNNING' || interrupted) step.status = 'SKIPPED';
    }
    this.setStatus(status);
  }
}

export type Ending = { status: 'FAILED' | 'CANCELLED'; reason: FailureReason | null };

/** Why the saga stopped going forward. Anything unexpected fails the workflow task (a bug). */
export function classifyFailure(error: unknown): Ending {
  if (error instanceof StepRefused) return { status: 'FAILED', reason: error.reason };
  // Once a cancel was requested, whatever surfaced from the interrupted step is its echo.
  if (isCancellation(error) || CancellationScope.current().consideredCancelled) {
    return { status: 'CANCELLED', reason: null };
  }
  if (error instanceof ActivityFailure) return { status: 'FAILED', reason: 'step_timeout' };
  throw error;
}
