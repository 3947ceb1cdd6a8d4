/**
 * The saga's happy path as the baselines follow it: which steps ran, in order, whether each
 * ran as a local activity or as an activity on which task queue, and the same steps read
 * from the history as a check. Pure.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils';
import { historySteps } from '../../../lib/history-steps';

/** One call the saga made, as the bench's workflow interceptor saw it during replay. */
export interface RecordedCall {
  activity: string;
  args: unknown[];
  local: boolean;
  /** The task queue an activity was given (null: the workflow's own, or a local activity). */
  taskQueue: string | null;
}

/** One step of the saga's happy path. */
export interface SagaStep {
  activity: string;
  /** Its arguments, decoded. */
  args: unknown[];
  /** A local activity: run by the worker inside the workflow task, recorded as a marker. */
  local: boolean;
  /** The task queue an activity was scheduled on; null for a local activity. */
  taskQueue: string | null;
}

/** A step's shape, relative to the workflow's own task queue, for a workflow elsewhere to copy. */
export type StepShape = { local: true } | { local: false; queueSuffix: string };

/** `queue` moved from under `from` to under `to` ("q-payments" from "q" to "r" is "r-payments"). */
export function rebaseQueue(queue: string, from: string, to: string): string {
  return queue.startsWith(from) ? `${to}${queue.slice(from.length)}` : queue;
}

/**
 * A recorded call as a step of the saga. The replay worker runs the workflow on a task queue
 * of its own, so a queue derived from it (paymentTaskQueueFor) is moved under the saga's.
 */
export function stepFromCall(call: RecordedCall, replayQueue: string, sagaQueue: string): SagaStep {
  return {
    activity: call.activity,
    args: call.args,
    local: call.local,
    taskQueue: call.local ? null : rebaseQueue(call.taskQueue ?? replayQueue, replayQueue, sagaQueue),
  };
}

/**
 * The shape of the steps: a queue derived from the workflow's own keeps its suffix (''
 * for the workflow's own); any other queue becomes a suffix of its own.
 */
export function shapeOf(
  steps: ReadonlyArray<Pick<SagaStep, 'local' | 'taskQueue'>>,
  ownQueue: string,
): StepShape[] {
  return steps.map((step) => {
    if (step.local) return { local: true };
    const queue = step.taskQueue ?? ownQueue;
    return {
      local: false,
      queueSuffix: queue.startsWith(ownQueue) ? queue.slice(ownQueue.length) : `-${queue}`,
    };
  });
}

/** The task queues other than the workflow's own that a shape uses, as suffixes. */
export function otherQueues(shape: readonly StepShape[]): string[] {
  return [
    ...new Set(shape.flatMap((step) => (step.local || step.queueSuffix === '' ? [] : [step.queueSuffix]))),
  ];
}

const activities = (n: number, kind = ''): string => `${n} ${kind}${n === 1 ? 'activity' : 'activities'}`;

/** "4 local + 2 activities, 1 on a second task queue", "6 activities", "6 local activities". */
export function describeShape(shape: readonly StepShape[]): string {
  const local = shape.filter((step) => step.local).length;
  const regular = shape.length - local;
  const words =
    regular === 0
      ? activities(local, 'local ')
      : local === 0
        ? activities(regular)
        : `${local} local + ${activities(regular)}`;
  const queues = otherQueues(shape);
  if (queues.length === 0) return words;
  const elsewhere = shape.filter((step) => !step.local && step.queueSuffix !== '').length;
  return `${words}, ${elsewhere} on ${queues.length === 1 ? 'a second task queue' : `${queues.length} other task queues`}`;
}

export interface ShapeVariant {
  name: 'all activities' | 'all local';
  shape: StepShape[];
}

/** Other shapes of the same steps, to measure next to the saga's: those that differ from it. */
export function shapeVariants(shape: readonly StepShape[]): ShapeVariant[] {
  const variants: ShapeVariant[] = [
    // Local steps as activities on the workflow's queue: the saga before local activities.
    {
      name: 'all activities',
      shape: shape.map((step): StepShape => (step.local ? { local: false, queueSuffix: '' } : step)),
    },
    // Every step local: the most that local activities could bring.
    { name: 'all local', shape: shape.map((): StepShape => ({ local: true })) },
  ];
  return variants.filter((variant) => !sameShape(variant.shape, shape));
}

function sameShape(a: readonly StepShape[], b: readonly StepShape[]): boolean {
  return (
    a.length === b.length &&
    a.every((step, index) => {
      const other = b[index];
      return step.local
        ? other?.local === true
        : other?.local === false && other.queueSuffix === step.queueSuffix;
    })
  );
}

/** "createOrder [local]", "chargePayment [orders-payments]". */
export function stepLabel(step: Pick<SagaStep, 'activity' | 'local' | 'taskQueue'>): string {
  return `${step.activity} [${step.local ? 'local' : (step.taskQueue ?? '?')}]`;
}

/** What a completed saga's history itself says about its steps. */
export interface HistoryFacts {
  /** The workflow's input (its first argument). */
  input: unknown;
  /** The task queue the workflow ran on. */
  taskQueue: string;
  /** Activities scheduled, in order (local activities are not scheduled: they leave markers). */
  scheduled: Array<{ activity: string; taskQueue: string; args: unknown[] }>;
  /**
   * Local activities run to their outcome, in order, from their markers (which hold the
   * activity type and the result, not the arguments); undefined where a marker's data
   * could not be read. Markers of attempts that backed off are left out.
   */
  localActivities: Array<string | undefined>;
  events: number;
  eventKinds: Record<string, number>;
}

export function readHistory(history: History): HistoryFacts {
  const events = history.events ?? [];
  const eventKinds: Record<string, number> = {};
  for (const event of events) {
    const kind = Object.keys(event).find(
      (key) => key.endsWith('EventAttributes') && (event as Record<string, unknown>)[key] != null,
    );
    const name = kind ? kind.replace(/EventAttributes$/, '') : 'unknown';
    eventKinds[name] = (eventKinds[name] ?? 0) + 1;
  }
  const started = events.find(
    (event) => event.workflowExecutionStartedEventAttributes,
  )?.workflowExecutionStartedEventAttributes;
  const steps = historySteps(events);
  return {
    input: started?.input?.payloads?.[0]
      ? defaultPayloadConverter.fromPayload(started.input.payloads[0])
      : undefined,
    taskQueue: started?.taskQueue?.name ?? '',
    scheduled: steps
      .filter((step) => !step.local)
      .map((step) => ({
        activity: step.activity ?? '?',
        taskQueue: step.taskQueue ?? '?',
        args: step.args ?? [],
      })),
    localActivities: steps.filter((step) => step.local && !step.backedOff).map((step) => step.activity),
    events: events.length,
    eventKinds,
  };
}

/**
 * Where the steps recorded by replay disagree with the history: the activities must be the
 * scheduled ones, in order, on the same queues and with the same arguments, and the local
 * activities the ones its markers name, in order.
 */
export function disagreements(steps: readonly SagaStep[], facts: HistoryFacts): string[] {
  const problems: string[] = [];
  const regular = steps.filter((step) => !step.local);
  const seen = (list: Array<{ activity: string; taskQueue: string | null }>): string =>
    list.map((step) => `${step.activity}@${step.taskQueue ?? '?'}`).join(', ') || 'none';
  if (seen(regular) !== seen(facts.scheduled)) {
    problems.push(
      `activities recorded (${seen(regular)}) are not the ones scheduled (${seen(facts.scheduled)})`,
    );
  } else {
    const differing = regular.filter(
      (step, index) => JSON.stringify(step.args) !== JSON.stringify(facts.scheduled[index]?.args),
    );
    if (differing.length > 0) {
      problems.push(
        `the arguments of ${differing.map((step) => step.activity).join(', ')} differ from the history's`,
      );
    }
  }
  const local = steps.filter((step) => step.local).map((step) => step.activity);
  const marked = facts.localActivities;
  const mismatch = (name: string, index: number): boolean => ![name, undefined].includes(marked[index]);
  if (local.length !== marked.length || local.some(mismatch)) {
    problems.push(
      `local activities recorded (${local.join(', ') || 'none'}) are not the ones in the history's markers ` +
        `(${marked.map((name) => name ?? '?').join(', ') || 'none'})`,
    );
  }
  return problems;
}
