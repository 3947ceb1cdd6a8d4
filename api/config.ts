import { ConfigError, duration, integer, list, logLevel, optionalString, url, type Env } from '../lib/env';
import { loadAuthSettings, type AuthSettings } from './plugins/auth-sources';
import { loadPayloadEncryption, type PayloadEncryption } from '../lib/payload-codec';
import { loadTemporalConnection, type TemporalConnectionConfig } from '../lib/temporal-connection';
import { loadTracingSettings, type TracingSettings } from '../lib/tracing';
import { DEFAULT_TASK_QUEUE } from '../contracts/index';

/** The API's Temporal connection: the one every process reads (lib/temporal-connection.ts). */
export type TemporalSettings = TemporalConnectionConfig;

export interface ApiConfig {
  port: number;
  host: string;
  databaseUrl: string;
  dbPoolSize: number;
  temporal: TemporalSettings;
  /** PAYLOAD_ENCRYPTION_KEYS (required unless PAYLOAD_ENCRYPTION=off): the client's codec and /codec/*. */
  payloadEncryption: PayloadEncryption;
  taskQueue: string;
  /** Base of the Temporal Web UI, without a trailing slash. */
  temporalUiUrl: string;
  /** Token sources (API_TOKENS, API_KEYS_FILE, AUTH_JWKS_URL…); none set: the API is open. */
  auth: AuthSettings;
  approvalThresholdCents: number;
  /** Duration text such as '24h'; handed to the saga as is, so it was validated here. */
  approvalTimeout: string;
  idempotencyTtlHours: number;
  logLevel: string;
  /** Requests per window per caller (bearer token, else client address). */
  rateLimit: { max: number; windowMs: number };
  /** Origins allowed to call the API from a browser; empty: no CORS headers at all. */
  corsOrigins: string[];
  /** Origins allowed to call /codec/* from a browser: the Web UI's (TEMPORAL_UI_URL). */
  codecOrigins: string[];
  /** Fastify's trustProxy: false, a hop count, or the proxies' addresses/CIDRs. */
  trustProxy: boolean | number | string[];
  /** OpenTelemetry export; undefined: tracing off. */
  tracing?: TracingSettings;
}

/** The API process's whole configuration; the only place in api/ that reads the environment. */
export function loadApiConfig(env: Env): ApiConfig {
  const uiUrl = url(env, 'TEMPORAL_UI_URL', ['http', 'https'], true) ?? 'http://localhost:8233';
  return {
    port: integer(env, 'PORT', 3000, { min: 0, max: 65_535 }),
    host: optionalString(env, 'HOST', '127.0.0.1'),
    databaseUrl: url(env, 'DATABASE_URL', ['postgres', 'postgresql']),
    dbPoolSize: integer(env, 'API_DB_POOL_SIZE', 20, { min: 1, max: 1_000 }),
    temporal: loadTemporalConnection(env),
    payloadEncryption: loadPayloadEncryption(env, { required: true }),
    taskQueue: optionalString(env, 'TEMPORAL_TASK_QUEUE', DEFAULT_TASK_QUEUE),
    temporalUiUrl: uiUrl.replace(/\/+$/, ''),
    auth: loadAuthSettings(env),
    approvalThresholdCents: integer(env, 'APPROVAL_THRESHOLD_CENTS', 100_000, { min: 0 }),
    approvalTimeout: duration(env, 'APPROVAL_TIMEOUT', '24h').text,
    // The contract promises keys are kept at least a day.
    idempotencyTtlHours: integer(env, 'IDEMPOTENCY_TTL_HOURS', 24, { min: 24, max: 24 * 365 }),
    logLevel: logLevel(env),
    rateLimit: {
      max: integer(env, 'RATE_LIMIT_MAX', 1_000, { min: 1, max: 1_000_000 }),
      windowMs: duration(env, 'RATE_LIMIT_WINDOW', '1m').ms,
    },
    corsOrigins: corsOrigins(env),
    codecOrigins: codecOrigins(uiUrl),
    trustProxy: trustProxy(env),
    ...optionalTracing(env),
  };
}

function optionalTracing(env: Env): { tracing?: TracingSettings } {
  const tracing = loadTracingSettings(env, 'order-saga-api');
  return tracing ? { tracing } : {};
}

/** The Web UI's origin; on loopback both names, as a browser may open either. */
function codecOrigins(uiUrl: string): string[] {
  const ui = new URL(uiUrl);
  const aliases = ['localhost', '127.0.0.1'].includes(ui.hostname) ? ['localhost', '127.0.0.1'] : [ui.hostname];
  return aliases.map((host) => `${ui.protocol}//${host}${ui.port ? `:${ui.port}` : ''}`);
}

/** CORS_ORIGINS: comma-separated origins (scheme://host[:port]), or `*` for any. */
function corsOrigins(env: Env): string[] {
  const origins = list(env, 'CORS_ORIGINS');
  for (const origin of origins) {
    if (origin === '*') continue;
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || !['http:', 'https:'].includes(parsed.protocol) || parsed.origin !== origin) {
      throw new ConfigError('CORS_ORIGINS', `"${origin}" is not an origin such as https://app.example.com`);
    }
  }
  if (origins.includes('*') && origins.length > 1) {
    throw new ConfigError('CORS_ORIGINS', '* stands alone; list origins or use *');
  }
  return origins;
}

/**
 * TRUST_PROXY: how many proxies sit in front (a number), or their addresses/CIDRs
 * (comma-separated). Only then are X-Forwarded-For addresses used as the client address
 * (for per-address rate limits); unset: the peer address.
 */
function trustProxy(env: Env): boolean | number | string[] {
  const raw = optionalString(env, 'TRUST_PROXY');
  if (raw === undefined || raw === 'false') return false;
  if (/^\d+$/.test(raw)) return integer(env, 'TRUST_PROXY', 0, { min: 0, max: 100 });
  const proxies = list(env, 'TRUST_PROXY');
  for (const proxy of proxies) {
    if (
      !/^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(proxy) &&
      !['loopback', 'linklocal', 'uniquelocal'].includes(proxy)
    ) {
      throw new ConfigError(
        'TRUST_PROXY',
        `"${proxy}" is not an address, CIDR, loopback, linklocal or uniquelocal`,
      );
    }
  }
  return proxies;
}
