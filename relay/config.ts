import { ConfigError, duration, integer, logLevel, optionalString, splitUrls, url, urls, type Env } from '../lib/env';

/** Everything `npm run relay` reads from the environment (CONTRACT §6), read only here. */
export interface RelayConfig {
  databaseUrl: string;
  /** NATS_URL: one server, or every node of a cluster, comma-separated. */
  natsUrls: string[];
  logLevel: string;
  batchSize: number;
  pollIntervalMs: number;
  maxAttempts: number;
  retentionMs: number;
  duplicateWindowMs: number;
  /** How long a relay's heartbeat holds its partitions: a dead relay's move this long after it died. */
  leaseTtlMs: number;
  /** How often a relay renews its leases and rebalances. */
  heartbeatIntervalMs: number;
  /**
   * NATS_STREAM_REPLICAS: replicas of stream ORDERS in a clustered JetStream (3 on a 3-node
   * cluster), applied when the relay creates or checks the stream; unset: created with 1,
   * an existing stream's replicas left as they are.
   */
  streamReplicas?: number;
  /** Where GET /metrics is served (Prometheus text); undefined: no metrics server. */
  metrics: { host: string; port: number } | undefined;
}

export function loadRelayConfig(env: Env): RelayConfig {
  const leaseTtlMs = duration(env, 'RELAY_LEASE_TTL', '2500ms').ms;
  const heartbeatIntervalMs = duration(env, 'RELAY_HEARTBEAT_INTERVAL', '500ms').ms;
  // Two heartbeats may fail or run late before a relay's own leases lapse under it.
  if (leaseTtlMs < 3 * heartbeatIntervalMs) {
    throw new ConfigError('RELAY_LEASE_TTL', 'must be at least three times RELAY_HEARTBEAT_INTERVAL');
  }
  return {
    databaseUrl: url(env, 'DATABASE_URL', ['postgres', 'postgresql']),
    natsUrls: splitUrls(urls(env, 'NATS_URL', ['nats', 'tls'])),
    logLevel: logLevel(env),
    batchSize: integer(env, 'RELAY_BATCH_SIZE', 500, { min: 1, max: 10_000 }),
    pollIntervalMs: duration(env, 'RELAY_POLL_INTERVAL', '500ms').ms,
    maxAttempts: integer(env, 'RELAY_MAX_ATTEMPTS', 20, { min: 1, max: 1_000 }),
    retentionMs: duration(env, 'OUTBOX_RETENTION', '7d').ms,
    duplicateWindowMs: duration(env, 'NATS_DUPLICATE_WINDOW', '2h').ms,
    leaseTtlMs,
    heartbeatIntervalMs,
    ...(optionalString(env, 'NATS_STREAM_REPLICAS') === undefined
      ? {}
      : { streamReplicas: integer(env, 'NATS_STREAM_REPLICAS', 1, { min: 1, max: 5 }) }),
    metrics:
      optionalString(env, 'RELAY_METRICS_PORT') === undefined
        ? undefined
        : {
            host: optionalString(env, 'RELAY_METRICS_HOST', '127.0.0.1'),
            port: integer(env, 'RELAY_METRICS_PORT', 0, { min: 1, max: 65_535 }),
          },
  };
}
