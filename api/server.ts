import { createPool } from '../store/pool';
import { loadOrExit } from '../lib/env';
import { createLogger } from '../lib/logger';
import { startOtlpTracing } from '../lib/tracing';
import { buildApp } from './app';
import { loadApiConfig } from './config';
import { purgeExpiredKeys } from '../store/idempotency-keys';
import { createSagaStarter } from './orders/saga-starter';
import { createTemporalClient } from './temporal';

const PURGE_INTERVAL_MS = 60 * 60 * 1000;
/** In-flight requests are bounded by the Temporal deadlines (10 s) and DB timeouts. */
const SHUTDOWN_GRACE_MS = 25_000;

/** The API process: the only code that reads process.env for the API and listens. */
async function main(): Promise<void> {
  const config = loadOrExit(() => loadApiConfig(process.env));
  const logger = createLogger('api', config.logLevel);
  const tracing = config.tracing ? startOtlpTracing(config.tracing) : undefined;
  const pool = createPool(config.databaseUrl, { max: config.dbPoolSize, applicationName: 'order-saga-api' });
  const temporal = createTemporalClient(config.temporal, {
    traced: tracing !== undefined,
    encryptionKeys: config.payloadEncryption.keys,
  });
  // Starts the sagas of accepted orders, and keeps passing over those left waiting (Temporal
  // down, or an api replica killed between acceptance and start).
  const starter = createSagaStarter({ pool, temporal: temporal.client, taskQueue: config.taskQueue, logger });
  const app = buildApp({
    pool,
    temporal: temporal.client,
    config,
    starter,
    logger,
    ...(tracing ? { tracer: tracing.tracer } : {}),
  });

  // Idempotency keys outlive IDEMPOTENCY_TTL_HOURS by at most an interval; every replica
  // purging is harmless (each batch deletes what is there).
  const purge = (): Promise<void> =>
    purgeExpiredKeys(pool, config.idempotencyTtlHours).then(
      (purged) => {
        if (purged > 0) logger.info({ purged }, 'expired idempotency keys purged');
      },
      (error: unknown) => logger.warn({ err: error }, 'idempotency key purge failed; retrying next interval'),
    );
  const purgeTimer = setInterval(() => void purge(), PURGE_INTERVAL_MS).unref();

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // A second Ctrl-C means "now".
      logger.warn({ signal }, 'api stopping at once');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'api stopping');
    clearInterval(purgeTimer);
    setTimeout(() => {
      logger.error('api did not stop within the grace period');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    // close() stops accepting connections, answers requests arriving on open connections
    // with 503 (plugins/draining.ts) and waits for those in flight to finish.
    app
      .close()
      .then(() => starter.stop())
      .then(() => pool.end())
      .then(() => temporal.connection.close())
      .then(() => tracing?.shutdown()) // flushes the last spans
      .then(() => {
        logger.info('api stopped');
        process.exit(0);
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, 'api did not stop cleanly');
        process.exit(1);
      });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  await app.listen({ host: config.host, port: config.port });
  starter.run();
  void purge();
  logger.info(
    {
      namespace: config.temporal.namespace,
      taskQueue: config.taskQueue,
      auth: {
        staticTokens: config.auth.staticTokens.length,
        apiKeys: config.auth.apiKeys.map((key) => key.id),
        jwt: config.auth.jwt ? { jwks: config.auth.jwt.jwksUrl, issuer: config.auth.jwt.issuer } : 'off',
      },
      rateLimit: config.rateLimit,
      cors: config.corsOrigins.length > 0 ? config.corsOrigins : 'off',
      tracing: tracing ? 'otlp' : 'off',
      payloadEncryption: config.payloadEncryption.keys
        ? `on (key ${config.payloadEncryption.keys[0]!.id})`
        : 'off',
    },
    'api listening',
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`api failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
