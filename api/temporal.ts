import { Client, Connection } from '@temporalio/client';
import type { TemporalSettings } from './config';

export interface TemporalClient {
  connection: Connection;
  client: Client;
}

/**
 * A lazily connecting client: the API starts (and reports not ready on /readyz) while
 * Temporal is still coming up, instead of crash-looping; gRPC reconnects on its own.
 */
export function createTemporalClient(settings: TemporalSettings): TemporalClient {
  const connection = Connection.lazy({
    address: settings.address,
    ...(settings.tls ? { tls: settings.tls } : {}),
    ...(settings.apiKey ? { apiKey: settings.apiKey } : {}),
  });
  return { connection, client: new Client({ connection, namespace: settings.namespace }) };
}
