/**
 * The bare-Temporal baseline: the saga's shape (N activities in sequence, each awaited,
 * with the saga's step options) and nothing else — no search attributes, no queries, no
 * compensation bookkeeping — whose activities do nothing. Bundled on its own
 * (workflowsPath), so it shares no code with the real saga. bareSagaLocal is the same
 * with local activities: what that optimisation could at best bring.
 */
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';

export interface BareActivities {
  /** Does nothing; the last one tells the bench the run reached its end. */
  benchNoop(index: number, last: number): Promise<void>;
}

export interface BareInput {
  activities: number;
  /** An argument of the saga input's size, so payloads weigh what the saga's do. */
  payload: unknown;
}

const { benchNoop } = proxyActivities<BareActivities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 10 },
});

export async function bareSaga(input: BareInput): Promise<void> {
  for (let index = 0; index < input.activities; index++) {
    await benchNoop(index, input.activities - 1);
  }
}

const local = proxyLocalActivities<BareActivities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 10 },
});

/** The same shape with local activities: run by the worker inside its workflow task. */
export async function bareSagaLocal(input: BareInput): Promise<void> {
  for (let index = 0; index < input.activities; index++) {
    await local.benchNoop(index, input.activities - 1);
  }
}
