import { Client, Connection } from '@temporalio/client';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import { dataConverterFor, type EncryptionKey } from '../lib/payload-codec';
import type { TemporalSettings } from './config';

export interface TemporalClient {
  connection: Connection;
  client: Client;
}

export interface TemporalClientOptions {
  /**
   * Tracing is on: starting a saga (and signalling, cancelling, updating it) is a span of
   * the active trace, carried to the workflow in its headers.
   */
  traced?: boolean;
  /** Payload encryption keys (lib/payload-codec.ts); none: payloads in clear. */
  encryptionKeys?: readonly EncryptionKey[] | undefined;
}

/**
 * A lazily connecting client: the API starts (and reports not ready on /readyz) while
 * Temporal is still coming up, instead of crash-looping; gRPC reconnects on its own.
 */
export function createTemporalClient(
  settings: TemporalSettings,
  options: TemporalClientOptions = {},
): TemporalClient {
  const connection = Connection.lazy({
    address: settings.address,
    ...(settings.tls ? { tls: settings.tls } : {}),
    ...(settings.apiKey ? { apiKey: settings.apiKey } : {}),
  });
  return {
    connection,
    client: new Client({
      connection,
      namespace: settings.namespace,
      dataConverter: dataConverterFor(options.encryptionKeys),
      ...(options.traced
        ? { interceptors: { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } }
        : {}),
    }),
  };
}
