/**
 * The bare-Temporal baseline: the saga's shape and nothing else — no search attributes, no
 * queries, no compensation bookkeeping — whose steps do nothing. The shape comes with each
 * run (tools/bench/lib/saga-shape.ts, from a real saga): steps in sequence, each awaited, each a
 * local activity or an activity on the workflow's task queue or on one derived from it
 * (the saga's payments bulkhead, `<taskQueue>-payments`), with the saga's step timeouts
 * and retries. Bundled on its own (workflowsPath), so it shares no code with the saga.
 */
import { proxyActivities, proxyLocalActivities, workflowInfo } from '@temporalio/workflow';
import type { StepShape } from './lib/saga-shape';

export interface BareActivities {
  /** Does nothing; the last one tells the bench the run reached its end. */
  benchNoop(index: number, last: number): Promise<void>;
}

export interface BareInput {
  steps: StepShape[];
  /** An argument of the saga input's size, so payloads weigh what the saga's do. */
  payload: unknown;
}

const OPTIONS = {
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 10 },
} as const;

const activities = proxyActivities<BareActivities>(OPTIONS);
const local = proxyLocalActivities<BareActivities>(OPTIONS);

export async function bareSaga(input: BareInput): Promise<void> {
  const last = input.steps.length - 1;
  const { taskQueue } = workflowInfo();
  for (const [index, step] of input.steps.entries()) {
    if (step.local) await local.benchNoop(index, last);
    else if (step.queueSuffix === '') await activities.benchNoop(index, last);
    else {
      await activities.benchNoop.executeWithOptions(
        { ...OPTIONS, taskQueue: `${taskQueue}${step.queueSuffix}` },
        [index, last],
      );
    }
  }
}
