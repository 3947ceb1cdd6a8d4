/**
 * Baseline (b), direct: the saga's SQL transactions without Temporal. The recipe is read
 * from a real completed saga's history (which activities ran, in order, with which
 * arguments), so the baseline follows the saga as it changes. Each direct "saga" is that
 * recipe with a fresh order id: the API's own insert, then every activity function from
 * createActivities, called in sequence inside MockActivityEnvironment (which provides the
 * activity Context they read). Several run at once; sagas/s is what completes.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../activities';
import { createSimulatedCarrier, createSimulatedPaymentGateway } from '../activities/providers/simulated';
import { insertOrderIfAbsent } from '../db/orders';
import { createPool } from '../db/pool';
import { withTransaction } from '../db/tx';
import { workflowIdFor, type OrderSagaInput } from '../workflows/contracts';
import { summarize, type Summary } from './lib/stats';

export interface SagaTemplate {
  workflowId: string;
  orderId: string;
  input: OrderSagaInput;
  /** The activities the saga ran, in order, with their decoded arguments. */
  steps: Array<{ activity: string; args: unknown[] }>;
  /** History size and its event kinds: what each saga costs the Temporal server. */
  historyEvents: number;
  eventKinds: Record<string, number>;
}

/** Reads a completed saga's history into a recipe (fails unless it is a plain happy path). */
export async function captureSagaTemplate(client: Client, workflowId: string): Promise<SagaTemplate> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const eventKinds: Record<string, number> = {};
  const steps: SagaTemplate['steps'] = [];
  let input: OrderSagaInput | undefined;
  const decode = (payloads: Payload[] | null | undefined): unknown[] =>
    (payloads ?? []).map((payload) => defaultPayloadConverter.fromPayload(payload));
  for (const event of events) {
    const kind = Object.keys(event).find(
      (key) => key.endsWith('EventAttributes') && (event as Record<string, unknown>)[key] != null,
    );
    const name = kind ? kind.replace(/EventAttributes$/, '') : 'unknown';
    eventKinds[name] = (eventKinds[name] ?? 0) + 1;
    const started = event.workflowExecutionStartedEventAttributes;
    if (started) input = decode(started.input?.payloads)[0] as OrderSagaInput;
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) {
      steps.push({ activity: scheduled.activityType?.name ?? '?', args: decode(scheduled.input?.payloads) });
    }
  }
  if (input === undefined || steps.length === 0) {
    throw new Error(`${workflowId}: no saga input or no activities in its history`);
  }
  return { workflowId, orderId: input.orderId, input, steps, historyEvents: events.length, eventKinds };
}

/** The recipe for another order: every mention of the template's order id replaced. */
export function instantiate(template: SagaTemplate, orderId: string): Pick<SagaTemplate, 'input' | 'steps'> {
  const text = JSON.stringify({ input: template.input, steps: template.steps });
  return JSON.parse(text.replaceAll(template.orderId, orderId)) as Pick<SagaTemplate, 'input' | 'steps'>;
}

export interface DirectRun {
  concurrency: number;
  sagas: number;
  sagasPerS: number;
  /** One direct saga, first statement to last commit. */
  latency: Summary;
  errors: number;
  firstError?: string;
}

type ActivityFunction = (...args: unknown[]) => Promise<unknown>;

export async function runDirect(
  options: {
    databaseUrl: string;
    poolSize: number;
    slowPaymentMs: number;
    template: SagaTemplate;
    concurrency: number;
    durationMs: number;
  },
  signal: AbortSignal,
): Promise<DirectRun> {
  const pool = createPool(options.databaseUrl, {
    max: options.poolSize,
    applicationName: 'order-saga-bench-direct',
  });
  const activities = createActivities({
    pool,
    gateway: createSimulatedPaymentGateway(pool, { slowCallMs: options.slowPaymentMs }),
    carrier: createSimulatedCarrier(pool),
  }) as unknown as Record<string, ActivityFunction | undefined>;

  const runOne = async (): Promise<void> => {
    const orderId = randomUUID();
    const workflowId = workflowIdFor(orderId);
    const { input, steps } = instantiate(options.template, orderId);
    await withTransaction(pool, (tx) => insertOrderIfAbsent(tx, input)); // what the API writes
    for (const step of steps) {
      const activity = activities[step.activity];
      if (activity === undefined) throw new Error(`no activity ${step.activity}`);
      const environment = new MockActivityEnvironment({
        workflowExecution: { workflowId, runId: randomUUID() },
        activityType: step.activity,
        attempt: 1,
      });
      const outcome = await environment.run(activity, ...step.args);
      if (typeof outcome === 'object' && outcome !== null && (outcome as { ok?: unknown }).ok === false) {
        throw new Error(`${step.activity} refused: ${JSON.stringify(outcome)}`);
      }
    }
  };

  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const origin = performance.now();
  const deadline = origin + options.durationMs;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline && !signal.aborted) {
      const started = performance.now();
      try {
        await runOne();
        latencies.push(performance.now() - started);
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, loop));
  } finally {
    await pool.end();
  }
  signal.throwIfAborted();
  const elapsedS = (performance.now() - origin) / 1000;
  return {
    concurrency: options.concurrency,
    sagas: latencies.length,
    sagasPerS: latencies.length / elapsedS,
    latency: summarize(latencies),
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
  };
}
