import type { Tracer } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import {
  NativeConnection,
  Worker,
  type ActivityInterceptorsFactory,
  type WorkerOptions,
} from '@temporalio/worker';
import { createActivities } from '../activities';
import { withCircuitBreaker } from '../activities/providers/circuit-breaker';
import { createSimulatedCarrier, createSimulatedPaymentGateway } from '../activities/providers/simulated';
import type { Pool } from '../store/pool';
import type { Logger } from '../lib/logger';
import { paymentTaskQueueFor } from '../contracts/index';
import { dataConverterFor, type EncryptionKey } from '../lib/payload-codec';
import { sagaObserver, type SagaMetrics } from './saga-observer';

/** Bundled into the workflow code when tracing is on: RunWorkflow and StartActivity spans. */
export const OTEL_WORKFLOW_INTERCEPTORS =
  require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/** What the worker process observes the saga with (worker/main.ts); tests may leave it out. */
export interface SagaObservability {
  logger: Logger;
  /** Saga metrics (worker/saga-observer.ts); without them only log lines. */
  metrics?: SagaMetrics;
  /** OpenTelemetry: spans for workflows and activities, joined to the trace that started the saga. */
  tracing?: { tracer: Tracer; spanProcessor: SpanProcessor; resource: Resource };
}

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
  /** How long running activities may take to finish once shutdown starts. Default 10 s. */
  shutdownGraceMs?: number;
  observability?: SagaObservability;
  /**
   * Payload encryption keys (lib/payload-codec.ts); none: payloads in clear. A prebuilt
   * bundle must have been built with `workflowBundleConverters` (failures encoded alike).
   */
  encryptionKeys?: readonly EncryptionKey[] | undefined;
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
  const { observability } = options;
  const tracing = observability?.tracing;
  // A prebuilt bundle has no room for the tracing workflow interceptors: bundle at start.
  if (tracing && options.workflowBundlePath) {
    observability.logger.warn(
      { workflowBundlePath: options.workflowBundlePath },
      'tracing is on: bundling the workflows with the OpenTelemetry interceptors instead of using the prebuilt bundle',
    );
  }
  const workflows: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> =
    options.workflowBundlePath && !tracing
      ? { workflowBundle: { codePath: options.workflowBundlePath } }
      : { workflowsPath: require.resolve('../workflows') };

  const activityInterceptors: ActivityInterceptorsFactory[] = [];
  if (tracing) {
    // Outermost, so the saga observer's log lines carry the activity's trace context.
    activityInterceptors.push((ctx) => ({
      inbound: new OpenTelemetryActivityInboundInterceptor(ctx, { tracer: tracing.tracer }),
      outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
    }));
  }
  if (observability) {
    activityInterceptors.push(
      sagaObserver({
        pool: options.pool,
        ...(observability.metrics ? { metrics: observability.metrics } : {}),
      }),
    );
  }

  const common = {
    connection: options.connection,
    namespace: options.namespace,
    dataConverter: dataConverterFor(options.encryptionKeys),
    shutdownGraceTime: options.shutdownGraceMs ?? 10_000,
  };
  // The main queue keeps every activity registered, so runs that scheduled a payment there
  // before the bulkhead existed still complete.
  const main = await Worker.create({
    ...common,
    taskQueue: options.taskQueue,
    activities,
    ...workflows,
    interceptors: {
      activity: activityInterceptors,
      ...(tracing ? { workflowModules: [OTEL_WORKFLOW_INTERCEPTORS] } : {}),
    },
    ...(tracing
      ? { sinks: { exporter: makeWorkflowExporter(tracing.spanProcessor, tracing.resource) } }
      : {}),
    ...(options.maxConcurrentActivities ? { maxConcurrentActivityTaskExecutions: options.maxConcurrentActivities } : {}),
    ...(options.maxConcurrentWorkflowTasks
      ? { maxConcurrentWorkflowTaskExecutions: options.maxConcurrentWorkflowTasks }
      : {}),
  });
  const payments = await Worker.create({
    ...common,
    taskQueue: paymentTaskQueueFor(options.taskQueue),
    activities: {
      chargePayment: activities.chargePayment,
      chargeAndShip: activities.chargeAndShip,
      refundPayment: activities.refundPayment,
    },
    interceptors: { activity: activityInterceptors },
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
