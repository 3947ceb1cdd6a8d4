import type { Client } from '@temporalio/client';
import type { Pool } from '../store/pool';
import type { ApiConfig } from './config';

/** Everything the routes need, handed in by whoever builds the app (server or test). */
export interface ApiDeps {
  pool: Pool;
  temporal: Client;
  config: ApiConfig;
}
