import type { Client } from '@temporalio/client';
import type { Pool } from '../store/pool';
import type { ApiConfig } from './config';
import type { SagaStarter } from './orders/saga-starter';

/** Everything the routes need, handed in by whoever builds the app (server or test). */
export interface ApiDeps {
  pool: Pool;
  temporal: Client;
  config: ApiConfig;
  /** Starts accepted orders' sagas; built over `temporal` when absent (no background passes). */
  starter?: SagaStarter;
}

/** What the routes receive: the deps, with the starter always there. */
export type RouteDeps = ApiDeps & { starter: SagaStarter };
