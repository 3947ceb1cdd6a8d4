import { duration, integer, logLevel, optionalString, url, urls, type Env } from '../lib/env';

/** Everything `npm run relay` reads from the environment (CONTRACT §6), read only here. */
export interface RelayConfig {
  databaseUrl: string;
  /** NATS_URL: one URL, or every node of a cluster comma-separated (splitUrls lists them). */
  natsUrl: string;
  logLevel: string;
  batchSize: number;
  pollIntervalMs: number;
  maxAttempts: number;
  retentionMs: number;
  duplicateWindowMs: number;
  /** Where GET /metrics is served (Prometheus text); undefined: no metrics server. */
  metrics: { host: string; port: number } | undefined;
}

export function loadRelayConfig(env: Env): RelayConfig {
  return {
    databaseUrl: url(env, 'DATABASE_URL', ['postgres', 'postgresql']),
    natsUrl: urls(env, 'NATS_URL', ['nats', 'tls']),
    logLevel: logLevel(env),
    batchSize: integer(env, 'RELAY_BATCH_SIZE', 500, { min: 1, max: 10_000 }),
    pollIntervalMs: duration(env, 'RELAY_POLL_INTERVAL', '500ms').ms,
    maxAttempts: integer(env, 'RELAY_MAX_ATTEMPTS', 20, { min: 1, max: 1_000 }),
    retentionMs: duration(env, 'OUTBOX_RETENTION', '7d').ms,
    duplicateWindowMs: duration(env, 'NATS_DUPLICATE_WINDOW', '2h').ms,
    metrics:
      optionalString(env, 'RELAY_METRICS_PORT') === undefined
        ? undefined
        : {
            host: optionalString(env, 'RELAY_METRICS_HOST', '127.0.0.1'),
            port: integer(env, 'RELAY_METRICS_PORT', 0, { min: 1, max: 65_535 }),
          },
  };
}
