/**
 * Baseline (a), bare Temporal: tools/bench/baseline-workflow.ts on the same server, in the
 * saga's shape (a local activity where the saga runs one, an activity where it runs one,
 * on the matching task queue), run by in-process Workers with the saga workers' settings,
 * as worker/create-worker.ts sets them up: one on a task queue of its own with the saga
 * worker's slots, and, for a second queue the saga uses (its payments bulkhead), one on
 * `<bare queue>-payments` with the payments worker's slots and rate limit. Runs are
 * started at a constant rate straight through @temporalio/client (no HTTP, no Postgres,
 * no outbox). The last no-op step reports the run's end to the tracker in memory, the
 * point that matches the saga's OrderCompleted commit.
 */
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { TemporalConnectionConfig } from '../../worker/config';
import type { BareActivities, bareSaga } from './baseline-workflow';
import { bundleWorkflows } from './bundle';
import type { BenchConfig } from './config';
import { wallNow } from './cpu';
import { otherQueues, type StepShape } from './lib/saga-shape';
import { RequestError, type Driver } from './load';
import type { Tracker } from './tracker';
import { dataConverterFor, type EncryptionKey } from '../../lib/payload-codec';

export function bundleBareWorkflow(): Promise<string> {
  return bundleWorkflows(require.resolve('./baseline-workflow'));
}

export interface BareOptions {
  connection: TemporalConnectionConfig;
  namespace: string;
  client: Client;
  bundleCode: string;
  /** The saga's shape (tools/bench/lib/saga-shape.ts): which task queues get a worker. */
  shape: StepShape[];
  payload: unknown;
  /** The saga's payload encryption, so the baseline pays for it too. */
  encryptionKeys: readonly EncryptionKey[] | undefined;
  worker: Pick<
    BenchConfig['worker'],
    | 'maxConcurrentActivities'
    | 'maxConcurrentWorkflowTasks'
    | 'paymentMaxConcurrentActivities'
    | 'paymentMaxActivitiesPerSecond'
  >;
  tracker: Tracker;
}

export interface BareTemporal {
  /** Starts runs of the given shape: the saga's, or another of the same steps on the same queues. */
  driverFor(shape: StepShape[]): Driver;
  taskQueue: string;
  stop(): Promise<void>;
}

export async function startBareTemporal(options: BareOptions): Promise<BareTemporal> {
  const taskQueue = `bench-bare-${randomUUID()}`;
  const { tracker } = options;
  const activities: BareActivities = {
    benchNoop(index, last) {
      if (index === last) {
        const workflowId = Context.current().info.workflowExecution?.workflowId;
        const now = wallNow();
        if (workflowId) tracker.finish(workflowId, 'COMPLETED', now, now);
      }
      return Promise.resolve();
    },
  };
  const connection = await NativeConnection.connect({
    address: options.connection.address,
    ...(options.connection.tls ? { tls: options.connection.tls } : {}),
    ...(options.connection.apiKey ? { apiKey: options.connection.apiKey } : {}),
  });
  const suffixes = otherQueues(options.shape);
  const workers: Worker[] = [];
  const runs: Array<Promise<void>> = [];
  let failure: unknown;
  // Each worker runs as soon as it exists, so a failure to create the next one stops it.
  const startWorker = async (workerOptions: WorkerOptions): Promise<void> => {
    const worker = await Worker.create(workerOptions);
    workers.push(worker);
    runs.push(worker.run().catch((error: unknown) => void (failure ??= error)));
  };
  const stopWorkers = async (): Promise<void> => {
    for (const worker of workers) {
      if (worker.getState() === 'RUNNING') worker.shutdown();
    }
    await Promise.all(runs);
    await connection.close();
  };
  try {
    const common = {
      connection,
      namespace: options.namespace,
      activities,
      shutdownGraceTime: 10_000,
      dataConverter: dataConverterFor(options.encryptionKeys),
    };
    await startWorker({
      ...common,
      taskQueue,
      workflowBundle: { code: options.bundleCode },
      maxConcurrentActivityTaskExecutions: options.worker.maxConcurrentActivities,
      maxConcurrentWorkflowTaskExecutions: options.worker.maxConcurrentWorkflowTasks,
    });
    const perSecond = options.worker.paymentMaxActivitiesPerSecond;
    for (const suffix of suffixes) {
      await startWorker({
        ...common,
        taskQueue: `${taskQueue}${suffix}`,
        maxConcurrentActivityTaskExecutions: options.worker.paymentMaxConcurrentActivities,
        ...(perSecond > 0 ? { maxTaskQueueActivitiesPerSecond: perSecond } : {}),
      });
    }

    const driverFor = (shape: StepShape[]): Driver => {
      const missing = otherQueues(shape).filter((suffix) => !suffixes.includes(suffix));
      if (missing.length > 0) throw new Error(`no bare worker polls the task queues ${missing.join(', ')}`);
      return {
        async submit() {
          if (failure !== undefined) {
            throw new RequestError(
              `bare worker failed: ${failure instanceof Error ? failure.message : 'unknown'}`,
            );
          }
          const workflowId = `bare-${randomUUID()}`;
          try {
            await options.client.workflow.start<typeof bareSaga>('bareSaga', {
              taskQueue,
              workflowId,
              args: [{ steps: shape, payload: options.payload }],
            });
          } catch (error) {
            throw new RequestError(`start failed: ${error instanceof Error ? error.name : String(error)}`);
          }
          return workflowId;
        },
      };
    };
    let stopped: Promise<void> | undefined;
    return { driverFor, taskQueue, stop: () => (stopped ??= stopWorkers()) };
  } catch (error) {
    await stopWorkers();
    throw error;
  }
}
