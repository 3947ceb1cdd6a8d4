/**
 * What integration tests use to reach the stack the global setup started (or was given):
 * its endpoints, a fresh database per test file cloned from the migrated template, and a
 * unique task queue per test.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createPool, type Pool } from '../../store/pool';

/** Where the global setup leaves its dev-stack process for the global teardown. */
export const RUNNING_STACK_KEY = '__orderSagaTestStack';

/** Migrated once by the global setup; every test database is a copy of it. */
export const TEMPLATE_DATABASE = 'orders_template';

export interface StackEnv {
  /** The server's `postgres` database: for CREATE/DROP DATABASE. */
  databaseAdminUrl: string;
  temporalAddress: string;
  temporalUiUrl: string;
  natsUrl: string;
  /** Prebuilt workflow bundle (built once per run), for Worker's `workflowBundle.codePath`. */
  workflowBundle: string;
}

export interface TestDatabase {
  url: string;
  pool: Pool;
  /** Ends the pool and drops the database, even with connections still open. */
  drop(): Promise<void>;
}

function required(name: string, hint: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: ${hint}`);
  return value;
}

const VIA_JEST =
  'run integration tests through jest (npx jest --selectProjects integration), whose global setup starts the stack';

export function stackEnv(): StackEnv {
  return {
    databaseAdminUrl: required('TEST_DATABASE_ADMIN_URL', VIA_JEST),
    temporalAddress: required('TEST_TEMPORAL_ADDRESS', VIA_JEST),
    temporalUiUrl: required('TEST_TEMPORAL_UI_URL', VIA_JEST),
    natsUrl: required('TEST_NATS_URL', VIA_JEST),
    // Read on use: tests that need no workflows still run when the bundle could not be built.
    get workflowBundle(): string {
      return required(
        'TEST_WORKFLOW_BUNDLE',
        `no workflow bundle was built (is there a workflows/index.ts?); ${VIA_JEST}`,
      );
    },
  };
}

/** The same server and credentials, another database. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** Runs statements on the admin database over a short-lived connection. */
export async function adminQuery(adminUrl: string, ...statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const { databaseAdminUrl } = stackEnv();
  const name = `test_${randomUUID().replaceAll('-', '')}`;
  await adminQuery(databaseAdminUrl, `CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DATABASE}`);
  const url = withDatabase(databaseAdminUrl, name);
  const pool = createPool(url, { applicationName: 'order-saga-test' });
  let dropped: Promise<void> | undefined;
  const drop = async (): Promise<void> => {
    await pool.end();
    await adminQuery(databaseAdminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  };
  return { url, pool, drop: () => (dropped ??= drop()) };
}

export const uniqueTaskQueue = (prefix: string): string => `${prefix}-${randomUUID()}`;
