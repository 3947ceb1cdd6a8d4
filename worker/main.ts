import { existsSync } from 'node:fs';
import path from 'node:path';
import { NativeConnection, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { createPool } from '../store/pool';
import { loadOrExit } from '../lib/env';
import { createLogger } from '../lib/logger';
import { startOtlpTracing } from '../lib/tracing';
import { loadWorkerConfig } from './config';
import { createSagaWorkers } from './create-worker';
// The relay's metrics endpoint is a plain prom-client server; the worker serves its own the same way.
import { serveMetrics } from '../lib/metrics-server';
import { createSagaMetrics } from './saga-observer';
import { temporalLogger } from './temporal-logger';

/** `host:port`, with IPv6 hosts in brackets, as the Rust core's exporter binds it. */
const bindAddress = (host: string, port: number): string =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;

/**
 * The compiled worker (dist/worker/main.js) loads the bundle `npm run build` wrote beside it,
 * dist/workflow-bundle.js, so it runs no webpack at start; under tsx it bundles workflows/.
 */
function builtWorkflowBundle(): string | undefined {
  if (path.extname(__filename) !== '.js') return undefined;
  const bundle = path.resolve(__dirname, '..', 'workflow-bundle.js');
  return existsSync(bundle) ? bundle : undefined;
}

async function main(): Promise<void> {
  const config = loadOrExit(() => loadWorkerConfig(process.env));
  const workflowBundlePath = config.workflowBundlePath ?? builtWorkflowBundle();
  const logger = createLogger('worker', config.logLevel);
  const tracing = config.tracing ? startOtlpTracing(config.tracing) : undefined;
  const { host, port, sdkPort } = config.metrics;
  // Every line from the SDK, workflows, activities and the Rust core goes through pino.
  Runtime.install({
    logger: temporalLogger(logger),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
      ...(sdkPort !== undefined
        ? { metrics: { prometheus: { bindAddress: bindAddress(host, sdkPort) } } }
        : {}),
    },
  });

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = createSagaMetrics(registry);
  const metricsServer = port !== undefined ? await serveMetrics(registry, { host, port }, logger) : undefined;

  const pool = createPool(config.databaseUrl, { max: config.dbPoolSize, applicationName: 'order-saga-worker' });
  const connection = await NativeConnection.connect({
    address: config.temporal.address,
    ...(config.temporal.tls ? { tls: config.temporal.tls } : {}),
    ...(config.temporal.apiKey ? { apiKey: config.temporal.apiKey } : {}),
  });
  const workers = await createSagaWorkers({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.taskQueue,
    pool,
    slowPaymentMs: config.slowPaymentMs,
    maxConcurrentActivities: config.maxConcurrentActivities,
    maxConcurrentWorkflowTasks: config.maxConcurrentWorkflowTasks,
    payments: config.payments,
    fraudDenyList: config.fraudDenyList,
    shutdownGraceMs: config.shutdownGraceMs,
    encryptionKeys: config.payloadEncryption.keys,
    observability: { logger, metrics, ...(tracing ? { tracing } : {}) },
    ...(workflowBundlePath ? { workflowBundlePath } : {}),
  });
  logger.info(
    {
      taskQueue: config.taskQueue,
      namespace: config.temporal.namespace,
      workflows: workflowBundlePath && !tracing ? workflowBundlePath : 'bundled at start',
      ...(metricsServer ? { metrics: `http://${bindAddress(host, metricsServer.port)}/metrics` } : {}),
      ...(sdkPort !== undefined ? { sdkMetrics: `http://${bindAddress(host, sdkPort)}/metrics` } : {}),
      tracing: tracing ? 'otlp' : 'off',
      payloadEncryption: config.payloadEncryption.keys
        ? `on (key ${config.payloadEncryption.keys[0]!.id})`
        : 'off',
    },
    'worker started',
  );
  // worker.run() resolves after SIGINT/SIGTERM (the SDK's default shutdown signals) once
  // running activities finish, within the shutdown grace time.
  await workers.run();
  await metricsServer?.close();
  await tracing?.shutdown(); // flushes the last spans
  await connection.close();
  await pool.end();
  logger.info('worker stopped');
}

main().catch((error: unknown) => {
  process.stderr.write(`worker failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
