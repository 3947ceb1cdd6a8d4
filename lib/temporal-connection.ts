import { readFileSync } from 'node:fs';
import { ConfigError, hostPort, optionalString, type Env } from './env';

/** How to reach Temporal: what every process that talks to it (api, worker, replay, bench) reads. */
export interface TemporalConnectionConfig {
  address: string;
  namespace: string;
  apiKey?: string;
  tls?: { clientCertPair?: { crt: Buffer; key: Buffer }; serverRootCACertificate?: Buffer };
}

/** TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY and TEMPORAL_TLS_{CERT,KEY,CA}. */
export function loadTemporalConnection(env: Env): TemporalConnectionConfig {
  const address = hostPort(env, 'TEMPORAL_ADDRESS');
  const namespace = optionalString(env, 'TEMPORAL_NAMESPACE', 'default');
  const apiKey = optionalString(env, 'TEMPORAL_API_KEY');
  const certPath = optionalString(env, 'TEMPORAL_TLS_CERT');
  const keyPath = optionalString(env, 'TEMPORAL_TLS_KEY');
  const caPath = optionalString(env, 'TEMPORAL_TLS_CA');
  if ((certPath === undefined) !== (keyPath === undefined)) {
    throw new ConfigError(
      certPath === undefined ? 'TEMPORAL_TLS_CERT' : 'TEMPORAL_TLS_KEY',
      'TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together',
    );
  }
  const ca = caPath === undefined ? undefined : readConfigFile('TEMPORAL_TLS_CA', caPath);
  const clientCertPair =
    certPath && keyPath
      ? {
          crt: readConfigFile('TEMPORAL_TLS_CERT', certPath),
          key: readConfigFile('TEMPORAL_TLS_KEY', keyPath),
        }
      : undefined;
  // An API key (Temporal Cloud) implies TLS, even without client certificates.
  const useTls = clientCertPair !== undefined || ca !== undefined || apiKey !== undefined;
  return {
    address,
    namespace,
    ...(apiKey ? { apiKey } : {}),
    ...(useTls
      ? {
          tls: {
            ...(clientCertPair ? { clientCertPair } : {}),
            ...(ca ? { serverRootCACertificate: ca } : {}),
          },
        }
      : {}),
  };
}

function readConfigFile(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch {
    throw new ConfigError(variable, `cannot read file ${path}`);
  }
}
