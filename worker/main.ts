import { NativeConnection, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { createPool } from '../db/pool';
import { loadOrExit } from '../lib/env';
import { createLogger } from '../lib/logger';
import { loadWorkerConfig } from './config';
import { createSagaWorkers } from './create-worker';

async function main(): Promise<void> {
  const config = loadOrExit(() => loadWorkerConfig(process.env));
  const logger = createLogger('worker', config.logLevel);
  Runtime.install({
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) } },
  });
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
    ...(config.workflowBundlePath ? { workflowBundlePath: config.workflowBundlePath } : {}),
  });
  logger.info({ taskQueue: config.taskQueue, namespace: config.temporal.namespace }, 'worker started');
  // worker.run() resolves after SIGINT/SIGTERM (the SDK's default shutdown signals) once
  // running activities finish within shutdownGraceTime.
  await workers.run();
  await connection.close();
  await pool.end();
  logger.info('worker stopped');
}

main().catch((error: unknown) => {
  process.stderr.write(`worker failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
