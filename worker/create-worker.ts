import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { createSimulatedCarrier, createSimulatedPaymentGateway } from '../activities/providers/simulated';
import type { Pool } from '../db/pool';

export interface SagaWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: Pool;
  /** Path of a prebuilt workflow bundle; the worker bundles workflows/ when absent. */
  workflowBundlePath?: string;
  slowPaymentMs: number;
  maxConcurrentActivities?: number;
  maxConcurrentWorkflowTasks?: number;
}

/** Builds the saga worker over injected dependencies (used by worker/main.ts and tests). */
export async function createSagaWorker(options: SagaWorkerOptions): Promise<Worker> {
  const activities = createActivities({
    pool: options.pool,
    gateway: createSimulatedPaymentGateway(options.pool, { slowCallMs: options.slowPaymentMs }),
    carrier: createSimulatedCarrier(options.pool),
  });
  const workflows: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> = options.workflowBundlePath
    ? { workflowBundle: { codePath: options.workflowBundlePath } }
    : { workflowsPath: require.resolve('../workflows') };
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    activities,
    ...workflows,
    ...(options.maxConcurrentActivities ? { maxConcurrentActivityTaskExecutions: options.maxConcurrentActivities } : {}),
    ...(options.maxConcurrentWorkflowTasks
      ? { maxConcurrentWorkflowTaskExecutions: options.maxConcurrentWorkflowTasks }
      : {}),
    shutdownGraceTime: '10s',
  });
}
