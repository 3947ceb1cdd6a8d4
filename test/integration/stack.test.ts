/**
 * The test stack itself: what every other integration test relies on is reachable through
 * stackEnv(), and test databases are migrated clones that vanish on drop().
 */
import { stat } from 'node:fs/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Connection } from '@temporalio/client';
import pg from 'pg';
import type { NatsConnection } from '../../relay/stream';
import { SEARCH_ATTRIBUTES } from '../../contracts/index';
import { createTestDatabase, stackEnv, uniqueTaskQueue } from '../support/stack';

describe('the test stack', () => {
  test('when a test database is created, then it has the migrated schema and starts empty', async () => {
    const db = await createTestDatabase();
    try {
      const { rows } = await db.pool.query<{ orders: string | null; migrations: number }>(
        `SELECT to_regclass('public.orders')::text AS orders,
                (SELECT count(*)::int FROM schema_migrations) AS migrations`,
      );
      expect(rows[0]?.orders).toBe('orders');
      expect(rows[0]?.migrations).toBeGreaterThan(0);
      const products = await db.pool.query('SELECT 1 FROM products');
      expect(products.rowCount).toBe(0);
    } finally {
      await db.drop();
    }
  });

  test('when a test database is dropped, then it is gone even with a connection still open', async () => {
    const db = await createTestDatabase();
    const name = new URL(db.url).pathname.slice(1);
    const straggler = new pg.Client({ connectionString: db.url });
    straggler.on('error', () => undefined); // the forced drop terminates it
    await straggler.connect();
    await db.drop();
    await db.drop(); // twice is harmless
    const admin = new pg.Client({ connectionString: stackEnv().databaseAdminUrl });
    await admin.connect();
    try {
      const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      expect(rowCount).toBe(0);
    } finally {
      await admin.end();
      await straggler.end().catch(() => undefined);
    }
  });

  test('when asked, then Temporal answers with the saga search attributes registered', async () => {
    const connection = await Connection.connect({ address: stackEnv().temporalAddress });
    try {
      const { customAttributes } = await connection.operatorService.listSearchAttributes({
        namespace: 'default',
      });
      expect(Object.keys(customAttributes ?? {})).toEqual(
        expect.arrayContaining(Object.keys(SEARCH_ATTRIBUTES)),
      );
    } finally {
      await connection.close();
    }
  });

  test('when connected, then NATS has JetStream enabled', async () => {
    // Typed through relay/stream: nats.js' own declarations leave the connection `any` here.
    const nats = (await connect({ servers: stackEnv().natsUrl })) as NatsConnection;
    try {
      const jsm = await jetstreamManager(nats);
      const info = await jsm.getAccountInfo();
      expect(info.limits).toBeDefined();
    } finally {
      await nats.close();
    }
  });

  test('when the setup ran, then the workflow bundle exists and task queues are unique', async () => {
    expect((await stat(stackEnv().workflowBundle)).size).toBeGreaterThan(0);
    expect(uniqueTaskQueue('t')).not.toBe(uniqueTaskQueue('t'));
    expect(uniqueTaskQueue('saga')).toMatch(/^saga-/);
  });
});
