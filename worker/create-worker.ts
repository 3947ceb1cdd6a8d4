import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { withCircuitBreaker } from '../activities/providers/circuit-breaker';
import { createSimulatedCarrier, createSimulatedPaymentGateway } from '../activities/providers/simulated';
import type { Pool } from '../db/pool';
import { paymentTaskQueueFor } from '../workflows/contracts';

export interface SagaWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: Pool;
  /** Path of a prebuilt workflow bundle; the worker bundles workflows/ when absent. */
  workflowBundlePath?: string;
  slowPaymentMs: number;
  fraudDenyList?: ReadonlySet<string>;
  maxConcurrentActivities?: number;
  maxConcurrentWorkflowTasks?: number;
  /** The payments bulkhead: its own activity slots and a task-queue-wide rate limit. */
  payments?: { maxConcurrentActivities?: number; maxActivitiesPerSecond?: number };
}

/** The saga's workers: one for workflows and saga steps, one bulkhead for payment calls. */
export interface SagaWorkers {
  /** Runs both until shutdown() (or SIGINT/SIGTERM), letting running activities finish. */
  run(): Promise<void>;
  shutdown(): void;
}

/** Builds the saga workers over injected dependencies (used by worker/main.ts and tests). */
export async function createSagaWorkers(options: SagaWorkerOptions): Promise<SagaWorkers> {
  const activities = createActivities({
    pool: options.pool,
    // One breaker per provider per worker process: a dead provider fails fast, and
    // Temporal's retry backoff does the waiting.
    gateway: withCircuitBreaker(createSimulatedPaymentGateway(options.pool, { slowCallMs: options.slowPaymentMs }), {
      name: 'payment gateway',
    }),
    carrier: withCircuitBreaker(createSimulatedCarrier(options.pool), { name: 'carrier' }),
    ...(options.fraudDenyList ? { fraudDenyList: options.fraudDenyList } : {}),
  });
  const workflows: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> = options.workflowBundlePath
    ? { workflowBundle: { codePath: options.workflowBundlePath } }
    : { workflowsPath: require.resolve('../workflows') };
  const common = { connection: options.connection, namespace: options.namespace, shutdownGraceTime: '10s' as const };
  // The main queue keeps every activity registered, so runs that scheduled a payment there
  // before the bulkhead existed still complete.
  const main = await Worker.create({
    ...common,
    taskQueue: options.taskQueue,
    activities,
    ...workflows,
    ...(options.maxConcurrentActivities ? { maxConcurrentActivityTaskExecutions: options.maxConcurrentActivities } : {}),
    ...(options.maxConcurrentWorkflowTasks
      ? { maxConcurrentWorkflowTaskExecutions: options.maxConcurrentWorkflowTasks }
      : {}),
  });
  const payments = await Worker.create({
    ...common,
    taskQueue: paymentTaskQueueFor(options.taskQueue),
    activities: { chargePayment: activities.chargePayment, refundPayment: activities.refundPayment },
    ...(options.payments?.maxConcurrentActivities
      ? { maxConcurrentActivityTaskExecutions: options.payments.maxConcurrentActivities }
      : {}),
    ...(options.payments?.maxActivitiesPerSecond
      ? { maxTaskQueueActivitiesPerSecond: options.payments.maxActivitiesPerSecond }
      : {}),
  });
  return {
    async run() {
      await Promise.all([main.run(), payments.run()]);
    },
    shutdown() {
      for (const worker of [main, payments]) {
        if (worker.getState() === 'RUNNING') worker.shutdown();
      }
    },
  };
}
