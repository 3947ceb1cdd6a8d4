import { DEFAULT_TASK_QUEUE } from '../contracts/index';
import { ConfigError, duration, integer, list, logLevel, optionalString, url, type Env } from '../lib/env';
import { loadPayloadEncryption, type PayloadEncryption } from '../lib/payload-codec';
import { loadTemporalConnection, type TemporalConnectionConfig } from '../lib/temporal-connection';
import { loadTracingSettings, type TracingSettings } from '../lib/tracing';

// Re-exported: the bench and the replay script read the connection from here too.
export { loadTemporalConnection, type TemporalConnectionConfig };

export interface WorkerConfig {
  databaseUrl: string;
  temporal: TemporalConnectionConfig;
  /** PAYLOAD_ENCRYPTION_KEYS (required unless PAYLOAD_ENCRYPTION=off). */
  payloadEncryption: PayloadEncryption;
  taskQueue: string;
  logLevel: string;
  /** Prebuilt workflow bundle (Docker image); bundled at start when absent. */
  workflowBundlePath?: string;
  maxConcurrentActivities: number;
  maxConcurrentWorkflowTasks: number;
  dbPoolSize: number;
  slowPaymentMs: number;
  /** Payment bulkhead: activity slots and task-queue-wide activities per second (0 = no limit). */
  payments: { maxConcurrentActivities: number; maxActivitiesPerSecond: number };
  fraudDenyList: ReadonlySet<string>;
  /** How long running activities may take to finish once shutdown starts (SIGTERM). */
  shutdownGraceMs: number;
  /**
   * Prometheus endpoints, each optional: `port` serves the saga metrics and the process's
   * (prom-client), `sdkPort` the Temporal SDK's own (the Rust core's exporter).
   */
  metrics: { host: string; port?: number; sdkPort?: number };
  /** OpenTelemetry export; undefined: tracing off. */
  tracing?: TracingSettings;
}

export function loadWorkerConfig(env: Env): WorkerConfig {
  const bundle = optionalString(env, 'WORKFLOW_BUNDLE_PATH');
  return {
    databaseUrl: url(env, 'DATABASE_URL', ['postgres', 'postgresql']),
    temporal: loadTemporalConnection(env),
    payloadEncryption: loadPayloadEncryption(env, { required: true }),
    taskQueue: optionalString(env, 'TEMPORAL_TASK_QUEUE', DEFAULT_TASK_QUEUE),
    logLevel: logLevel(env),
    ...(bundle ? { workflowBundlePath: bundle } : {}),
    maxConcurrentActivities: integer(env, 'WORKER_MAX_CONCURRENT_ACTIVITIES', 100, { min: 1, max: 10_000 }),
    maxConcurrentWorkflowTasks: integer(env, 'WORKER_MAX_CONCURRENT_WORKFLOW_TASKS', 40, {
      min: 2,
      max: 10_000,
    }),
    dbPoolSize: integer(env, 'WORKER_DB_POOL_SIZE', 20, { min: 1, max: 1_000 }),
    slowPaymentMs: duration(env, 'SIMULATED_SLOW_PAYMENT', '4s').ms,
    payments: {
      maxConcurrentActivities: integer(env, 'PAYMENT_MAX_CONCURRENT_ACTIVITIES', 20, { min: 1, max: 10_000 }),
      maxActivitiesPerSecond: integer(env, 'PAYMENT_RATE_LIMIT_PER_SECOND', 0, { min: 0, max: 1_000_000 }),
    },
    fraudDenyList: new Set(list(env, 'FRAUD_DENY_LIST')),
    shutdownGraceMs: duration(env, 'WORKER_SHUTDOWN_GRACE', '10s').ms,
    metrics: workerMetrics(env),
    ...optionalTracing(env),
  };
}

function optionalTracing(env: Env): { tracing?: TracingSettings } {
  const tracing = loadTracingSettings(env, 'order-saga-worker');
  return tracing ? { tracing } : {};
}

function workerMetrics(env: Env): WorkerConfig['metrics'] {
  const port = (name: string): number | undefined =>
    optionalString(env, name) === undefined ? undefined : integer(env, name, 0, { min: 1, max: 65_535 });
  const metrics = {
    host: optionalString(env, 'WORKER_METRICS_HOST', '127.0.0.1'),
    port: port('WORKER_METRICS_PORT'),
    sdkPort: port('WORKER_SDK_METRICS_PORT'),
  };
  if (metrics.port !== undefined && metrics.port === metrics.sdkPort) {
    throw new ConfigError('WORKER_SDK_METRICS_PORT', 'must differ from WORKER_METRICS_PORT');
  }
  return {
    host: metrics.host,
    ...(metrics.port !== undefined ? { port: metrics.port } : {}),
    ...(metrics.sdkPort !== undefined ? { sdkPort: metrics.sdkPort } : {}),
  };
}
