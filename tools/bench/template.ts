/**
 * The recipe both baselines follow, read from a real completed saga, so they follow the
 * saga as it changes: its input and every step of its happy path, in order, with the
 * step's arguments, whether it ran as a local activity, and an activity's task queue.
 *
 * A history alone cannot give that: a local activity leaves a marker with its result but
 * not its arguments. So the history is replayed (Worker.runReplayHistory) with the saga's
 * own workflow code and a workflow interceptor (./step-recorder.ts) that reports each
 * activity and local activity as the code schedules it; the activities the history did
 * schedule, and its local activity markers, then check what the replay reported.
 */
import type { Client } from '@temporalio/client';
import { Worker, type InjectedSinks } from '@temporalio/worker';
import type { OrderSagaInput } from '../../contracts/index';
import { decodeHistory } from '../../lib/decode-history';
import { bundleWorkflows } from './bundle';
import {
  disagreements,
  readHistory,
  shapeOf,
  stepFromCall,
  type SagaStep,
  type StepShape,
} from './lib/saga-shape';
import type { StepRecorderSinks } from './step-recorder';

export interface SagaTemplate {
  workflowId: string;
  orderId: string;
  input: OrderSagaInput;
  /** The task queue the saga ran on. */
  taskQueue: string;
  /** Every activity and local activity of its happy path, in order, with decoded arguments. */
  steps: SagaStep[];
  /** The same steps' shape (local or not, which queue), which the bare baseline copies. */
  shape: StepShape[];
  /** History size and its event kinds: what each saga costs the Temporal server. */
  historyEvents: number;
  eventKinds: Record<string, number>;
}

/** How long the recipe's saga may take to close after its end was seen on the stream. */
const CLOSE_WAIT_MS = 30_000;

/** The saga's workflow code with the step recorder: the bundle captureSagaTemplate replays. */
export function bundleStepRecorder(): Promise<string> {
  return bundleWorkflows(require.resolve('../../workflows'), [require.resolve('./step-recorder')]);
}

/** Reads a completed saga into a recipe (fails if the replay and the history disagree). */
export async function captureSagaTemplate(
  client: Client,
  workflowId: string,
  recorderBundle: string,
): Promise<SagaTemplate> {
  // The saga's end is seen on the stream (completeOrder's commit), which can come before the
  // workflow task that records completeOrder's marker and closes the run: wait for the close.
  const handle = client.workflow.getHandle(workflowId);
  await client.connection.withDeadline(Date.now() + CLOSE_WAIT_MS, () => handle.result());
  // Decoded here (the payloads are encrypted): the history's facts are read from its payloads.
  const history = await decodeHistory(
    await handle.fetchHistory(),
    client.options.loadedDataConverter.payloadCodecs,
  );
  const facts = readHistory(history);
  const input = facts.input as OrderSagaInput | undefined;
  if (input === undefined) throw new Error(`${workflowId}: no saga input in its history`);
  const steps: SagaStep[] = [];
  const sinks: InjectedSinks<StepRecorderSinks> = {
    benchSteps: {
      scheduled: {
        // The replay worker runs on a task queue of its own: queues are moved under the saga's.
        fn: (info, call) => void steps.push(stepFromCall(call, info.taskQueue, facts.taskQueue)),
        callDuringReplay: true,
      },
    },
  };
  // The real workflow id: the saga derives its steps' idempotency keys from it.
  await Worker.runReplayHistory(
    { workflowBundle: { code: recorderBundle }, sinks, replayName: 'bench-template' },
    history,
    workflowId,
  );
  if (steps.length === 0) throw new Error(`${workflowId}: the replay scheduled no activities`);
  const problems = disagreements(steps, facts);
  if (problems.length > 0) {
    throw new Error(`${workflowId}: the replayed steps disagree with the history: ${problems.join('; ')}`);
  }
  return {
    workflowId,
    orderId: input.orderId,
    input,
    taskQueue: facts.taskQueue,
    steps,
    shape: shapeOf(steps, facts.taskQueue),
    historyEvents: facts.events,
    eventKinds: facts.eventKinds,
  };
}

/**
 * The recipe for another order: every mention of the template's order id replaced, and
 * every string value naming a product in `products` (template sku → sku to buy instead)
 * replaced by its new product, each value once (a product that replaces one is never
 * replaced again; "BENCH-0001" is not a part of "BENCH-00010").
 */
export function instantiate(
  template: SagaTemplate,
  orderId: string,
  products: ReadonlyMap<string, string> = new Map(),
): Pick<SagaTemplate, 'input' | 'steps'> {
  const text = JSON.stringify({ input: template.input, steps: template.steps }).replaceAll(
    template.orderId,
    orderId,
  );
  return JSON.parse(text, (_key, value: unknown) =>
    typeof value === 'string' ? (products.get(value) ?? value) : value,
  ) as Pick<SagaTemplate, 'input' | 'steps'>;
}
