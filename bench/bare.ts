/**
 * Baseline (a), bare Temporal: bench/baseline-workflow.ts on the same server, run by an
 * in-process Worker with the saga worker's slot settings on a task queue of its own, and
 * started at a constant rate straight through @temporalio/client (no HTTP, no Postgres,
 * no outbox). The last no-op activity reports the run's end to the tracker in memory,
 * the point that matches the saga's OrderCompleted commit.
 */
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Worker } from '@temporalio/worker';
import type { TemporalConnectionConfig } from '../worker/config';
import type { BareActivities, bareSaga, bareSagaLocal } from './baseline-workflow';
import { wallNow } from './cpu';
import { RequestError, type Driver } from './load';
import type { Tracker } from './tracker';

export function bundleBareWorkflow(): Promise<string> {
  return bundleWorkflowCode({
    workflowsPath: require.resolve('./baseline-workflow'),
    logger: new DefaultLogger('WARN'),
  }).then(({ code }) => code);
}

export interface BareOptions {
  connection: TemporalConnectionConfig;
  namespace: string;
  client: Client;
  bundleCode: string;
  /** How many activities the saga's happy path runs (counted in a real saga's history). */
  activities: number;
  payload: unknown;
  worker: { maxConcurrentActivities: number; maxConcurrentWorkflowTasks: number };
  tracker: Tracker;
}

export interface BareTemporal {
  driver: Driver;
  /** The same runs with local activities (bareSagaLocal). */
  localDriver: Driver;
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
  let running: Promise<void> | undefined;
  try {
    const worker = await Worker.create({
      connection,
      namespace: options.namespace,
      taskQueue,
      workflowBundle: { code: options.bundleCode },
      activities,
      maxConcurrentActivityTaskExecutions: options.worker.maxConcurrentActivities,
      maxConcurrentWorkflowTaskExecutions: options.worker.maxConcurrentWorkflowTasks,
      shutdownGraceTime: '10s',
    });
    let failure: unknown;
    running = worker.run().catch((error: unknown) => {
      failure = error;
    });

    const driverFor = (workflowType: 'bareSaga' | 'bareSagaLocal'): Driver => ({
      async submit() {
        if (failure !== undefined) {
          throw new RequestError(
            `bare worker failed: ${failure instanceof Error ? failure.message : 'unknown'}`,
          );
        }
        const workflowId = `bare-${randomUUID()}`;
        try {
          await options.client.workflow.start<typeof bareSaga | typeof bareSagaLocal>(workflowType, {
            taskQueue,
            workflowId,
            args: [{ activities: options.activities, payload: options.payload }],
          });
        } catch (error) {
          throw new RequestError(`start failed: ${error instanceof Error ? error.name : String(error)}`);
        }
        return workflowId;
      },
    });
    let stopped: Promise<void> | undefined;
    const stop = (): Promise<void> =>
      (stopped ??= (async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await running;
        await connection.close();
      })());
    return { driver: driverFor('bareSaga'), localDriver: driverFor('bareSagaLocal'), taskQueue, stop };
  } catch (error) {
    await running;
    await connection.close();
    throw error;
  }
}
