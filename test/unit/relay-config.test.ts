import { ConfigError } from '../../lib/env';
import { loadRelayConfig } from '../../relay/config';

/** `npm run relay`'s environment (CONTRACT §6), the metrics server in particular. */

const REQUIRED = { DATABASE_URL: 'postgres://relay@db:5432/orders', NATS_URL: 'nats://nats:4222' };

function configError(env: Record<string, string>): ConfigError {
  try {
    loadRelayConfig({ ...REQUIRED, ...env });
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but the environment was accepted');
}

test('when only the required variables are set, then the documented defaults apply and no metrics server runs', () => {
  expect(loadRelayConfig(REQUIRED)).toEqual({
    databaseUrl: REQUIRED.DATABASE_URL,
    natsUrls: [REQUIRED.NATS_URL],
    logLevel: 'info',
    batchSize: 500,
    pollIntervalMs: 500,
    maxAttempts: 20,
    retentionMs: 7 * 24 * 3_600_000,
    duplicateWindowMs: 2 * 3_600_000,
    leaseTtlMs: 2_500,
    heartbeatIntervalMs: 500,
    metrics: undefined,
  });
});

test('when NATS_URL lists every node of a cluster, then the relay takes the list as given', () => {
  const cluster = 'nats://n1:4222,nats://n2:4222,nats://n3:4222';
  expect(loadRelayConfig({ ...REQUIRED, NATS_URL: cluster }).natsUrls).toEqual(cluster.split(','));
  expect(configError({ NATS_URL: 'nats://n1:4222,n2' }).message).toMatch(/^NATS_URL: /);
});

test('when RELAY_METRICS_PORT is set, then metrics are served on it, on 127.0.0.1 unless RELAY_METRICS_HOST says otherwise', () => {
  expect(loadRelayConfig({ ...REQUIRED, RELAY_METRICS_PORT: '9464' }).metrics).toEqual({
    host: '127.0.0.1',
    port: 9464,
  });
  expect(
    loadRelayConfig({ ...REQUIRED, RELAY_METRICS_PORT: '9464', RELAY_METRICS_HOST: '0.0.0.0' }).metrics,
  ).toEqual({ host: '0.0.0.0', port: 9464 });
});

test('when RELAY_METRICS_PORT is blank, then it counts as unset', () => {
  expect(loadRelayConfig({ ...REQUIRED, RELAY_METRICS_PORT: ' ' }).metrics).toBeUndefined();
});

test('when RELAY_METRICS_PORT is not a port, then the error names the variable', () => {
  for (const value of ['http', '0', '65536', '-1', '94.64']) {
    expect(configError({ RELAY_METRICS_PORT: value }).variable).toBe('RELAY_METRICS_PORT');
  }
});

test('when RELAY_LEASE_TTL is under three heartbeats, then the error names it; at three or more it is taken', () => {
  expect(configError({ RELAY_LEASE_TTL: '1s', RELAY_HEARTBEAT_INTERVAL: '500ms' }).variable).toBe(
    'RELAY_LEASE_TTL',
  );
  expect(configError({ RELAY_HEARTBEAT_INTERVAL: 'soon' }).variable).toBe('RELAY_HEARTBEAT_INTERVAL');
  expect(
    loadRelayConfig({ ...REQUIRED, RELAY_LEASE_TTL: '3s', RELAY_HEARTBEAT_INTERVAL: '1s' }),
  ).toMatchObject({
    leaseTtlMs: 3_000,
    heartbeatIntervalMs: 1_000,
  });
});

test("when NATS_URL lists a cluster's nodes, then the relay knows every one", () => {
  const env = { ...REQUIRED, NATS_URL: 'nats://nats-1:4222, nats://nats-2:4222,nats://nats-3:4222' };
  expect(loadRelayConfig(env).natsUrls).toEqual([
    'nats://nats-1:4222',
    'nats://nats-2:4222',
    'nats://nats-3:4222',
  ]);
});

test('when one of the NATS_URL entries is not a nats URL, then the error names the variable', () => {
  for (const value of ['nats://nats-1:4222,http://nats-2:4222', 'nats://nats-1:4222,not a url', ' , ']) {
    expect(configError({ NATS_URL: value }).variable).toBe('NATS_URL');
  }
});

test('when NATS_STREAM_REPLICAS is set, then ORDERS gets that many replicas; unset, none is asked for', () => {
  expect(loadRelayConfig({ ...REQUIRED, NATS_STREAM_REPLICAS: '3' }).streamReplicas).toBe(3);
  expect(loadRelayConfig(REQUIRED).streamReplicas).toBeUndefined();
  for (const value of ['0', '6', 'three']) {
    expect(configError({ NATS_STREAM_REPLICAS: value }).variable).toBe('NATS_STREAM_REPLICAS');
  }
});
