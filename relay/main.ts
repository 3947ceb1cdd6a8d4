import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { collectDefaultMetrics, register } from 'prom-client';
import { createPool } from '../store/pool';
import { loadOrExit, splitUrls } from '../lib/env';
import { createLogger } from '../lib/logger';
import { loadRelayConfig } from './config';
import { createOutboxRelay, DEFAULT_RELAY_OPTIONS, retryHorizonMs } from './relay';
import { serveMetrics, type MetricsServer } from '../lib/metrics-server';
import { ensureOrdersStream, type NatsConnection } from './stream';

/** `npm run relay`: one outbox relay process (several may run; one is active). */
async function main(): Promise<void> {
  const config = loadOrExit(() => loadRelayConfig(process.env));
  const logger = createLogger('relay', config.logLevel);
  // The lock connection, the batch queries and the metrics query: a small pool suffices.
  const pool = createPool(config.databaseUrl, { max: 4, applicationName: 'order-saga-relay' });
  // connect()'s declared return type does not resolve under this repo's module resolution
  // (see relay/stream.ts); it is a NatsConnection.
  const nats = (await connect({
    servers: splitUrls(config.natsUrl),
    name: 'order-saga-relay',
    maxReconnectAttempts: -1, // a NATS restart must never end the relay
  })) as NatsConnection;
  await ensureOrdersStream(await jetstreamManager(nats), { duplicateWindowMs: config.duplicateWindowMs });

  const options = {
    batchSize: config.batchSize,
    pollIntervalMs: config.pollIntervalMs,
    maxAttempts: config.maxAttempts,
    retentionMs: config.retentionMs,
    duplicateWindowMs: config.duplicateWindowMs,
  };
  const horizonMs = retryHorizonMs({ ...DEFAULT_RELAY_OPTIONS, ...options });
  if (config.duplicateWindowMs <= horizonMs) {
    // Still exactly once (late retries are looked up on the stream first), only slower.
    logger.warn(
      { duplicateWindowMs: config.duplicateWindowMs, retryHorizonMs: horizonMs },
      'NATS_DUPLICATE_WINDOW is not longer than the retry horizon: late retries will be looked up on the stream before they are sent',
    );
  }
  const relay = createOutboxRelay({ pool, nats, logger, options, registry: register });
  let metrics: MetricsServer | undefined;
  if (config.metrics !== undefined) {
    collectDefaultMetrics({ register });
    metrics = await serveMetrics(register, config.metrics, logger);
    logger.info({ url: `http://${config.metrics.host}:${metrics.port}/metrics` }, 'relay metrics served');
  }
  await relay.start();
  // Hosts only, never credentials that a URL may carry.
  logger.info(
    { nats: splitUrls(config.natsUrl).map(hostOf), postgres: hostOf(config.databaseUrl) },
    'relay started',
  );

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'relay stopping');
    await relay.stop();
    await metrics?.close();
    await nats.drain();
    await pool.end();
    logger.info('relay stopped');
    process.exit(0);
  };
  // The client reconnects forever, so a closed connection means something final (e.g. its
  // credentials were revoked): exit, and let the orchestrator restart the relay, rather
  // than fail every batch from now on.
  void nats
    .closed()
    .then(async (error) => {
      if (stopping) return;
      stopping = true;
      logger.fatal(
        { err: error instanceof Error ? error.message : undefined },
        'NATS connection closed; exiting',
      );
      await relay.stop();
      process.exit(1);
    })
    .catch(() => process.exit(1));
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      shutdown(signal).catch((error: unknown) => {
        process.stderr.write(
          `relay shutdown failed: ${error instanceof Error ? error.message : String(error)}\n`,
        );
        process.exit(1);
      });
    });
  }
}

function hostOf(raw: string): string {
  const parsed = new URL(raw);
  return `${parsed.protocol}//${parsed.host}`;
}

main().catch((error: unknown) => {
  process.stderr.write(`relay failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
