import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, makeTelemetryFilterString, NativeConnection, Runtime } from '@temporalio/worker';
import type { PoolClient } from '../../db/pool';
import { withTransaction } from '../../db/tx';
import { insertOrderIfAbsent } from '../../db/orders';
import { createSagaWorkers } from '../../worker/create-worker';
import {
  CURRENCY,
  WORKFLOW_TYPE,
  workflowIdFor,
  type OrderSagaInput,
  type OrderSagaResult,
} from '../../workflows/contracts';
import {
  CustomerIdKey,
  OrderIdKey,
  OrderStatusKey,
  OrderTotalCentsKey,
} from '../../workflows/search-attributes';
import { eventually, startWorkerProcess, type ServiceProcess } from '../support/service-process';
import { createTestDatabase, stackEnv, uniqueTaskQueue, type TestDatabase } from '../support/stack';
import { testDataConverter, testEncryptionKeys } from '../support/encryption';

/**
 * `npm run worker` as a child process gets SIGTERM while a saga step is running. The step
 * is an ordinary one (reserveInventory of a normal order), held in flight by a row lock
 * this test takes on the product, so the signal lands mid-step every time.
 */

const GRACE_S = 15;
let db: TestDatabase;
let connection: Connection;
let client: Client;
let worker: ServiceProcess;
let taskQueue: string;
let logDir: string | undefined;

beforeAll(async () => {
  // The in-test worker that finishes the saga: quiet.
  Runtime.install({
    logger: new DefaultLogger('WARN'),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } },
  });
  db = await createTestDatabase();
  connection = await Connection.connect({ address: stackEnv().temporalAddress });
  client = new Client({ connection, dataConverter: testDataConverter });
  taskQueue = uniqueTaskQueue('shutdown');
});

afterAll(async () => {
  await worker?.stop();
  await connection?.close();
  await db?.drop();
  if (logDir) await rm(logDir, { recursive: true, force: true });
});

/** Starts an order's saga the way the API does, and writes its row. */
async function startOrder(sku: string) {
  const orderId = randomUUID();
  const input: OrderSagaInput = {
    orderId,
    customerId: 'c-shutdown',
    items: [{ sku, quantity: 3, unitPriceCents: 500 }],
    totalCents: 1_500,
    currency: CURRENCY,
    paymentToken: 'tok_ok',
    shippingAddress: {
      name: 'Ada',
      line1: '1 Main St',
      city: 'Springfield',
      postalCode: '12345',
      country: 'US',
    },
    correlationId: randomUUID(),
    requiresApproval: false,
    approvalTimeout: '24h',
  };
  const handle = await client.workflow.start(WORKFLOW_TYPE, {
    taskQueue,
    workflowId: workflowIdFor(orderId),
    args: [input],
    typedSearchAttributes: [
      { key: OrderIdKey, value: orderId },
      { key: CustomerIdKey, value: input.customerId },
      { key: OrderStatusKey, value: 'PENDING' },
      { key: OrderTotalCentsKey, value: input.totalCents },
    ],
  });
  await withTransaction(db.pool, (tx) => insertOrderIfAbsent(tx, input));
  return { orderId, handle };
}

it('when SIGTERM arrives while a step runs, then the step finishes and commits, the worker exits 0 within the grace period, and the saga completes on another worker', async () => {
  const env = stackEnv();
  logDir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-shutdown-'));
  worker = await startWorkerProcess(logDir, {
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: env.temporalAddress,
    TEMPORAL_TASK_QUEUE: taskQueue,
    WORKFLOW_BUNDLE_PATH: env.workflowBundle,
    WORKER_SHUTDOWN_GRACE: `${GRACE_S}s`,
    LOG_LEVEL: 'debug',
  });
  const sku = `SKU-${randomUUID().slice(0, 8)}`;
  await db.pool.query(`INSERT INTO products (sku, name, price_cents, available) VALUES ($1, $1, 500, 10)`, [
    sku,
  ]);

  // Hold the product row: reserveInventory will wait on it, in flight.
  const holder: PoolClient = await db.pool.connect();
  holder.on('error', () => undefined); // dropped with the database if the test fails
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await holder.query('COMMIT');
    holder.release();
  };
  try {
    await holder.query('BEGIN');
    // NO KEY: writing the order's lines (which reference the product) is not blocked, only
    // reserveInventory's SELECT … FOR UPDATE is.
    await holder.query('SELECT 1 FROM products WHERE sku = $1 FOR NO KEY UPDATE', [sku]);
    const { orderId, handle } = await startOrder(sku);
    await eventually('reserveInventory waiting on the row lock', async () => {
      const { rows } = await db.pool.query<{ waiting: number }>(
        `SELECT count(*)::int AS waiting FROM pg_stat_activity
          WHERE datname = current_database() AND state = 'active' AND wait_event_type = 'Lock'
            AND query LIKE '%FROM products%FOR UPDATE%'`,
      );
      return rows[0]!.waiting > 0;
    });

    const signalledAt = Date.now();
    // SIGTERM now; SIGKILL only if it has not exited well after the grace period.
    const stopped = worker.stop((GRACE_S + 5) * 1_000);
    // The step is still in flight: the worker waits for it rather than exiting or cancelling it.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(worker.hasExited()).toBe(false);
    await release();

    const exit = await stopped;
    const exitedAfterMs = Date.now() - signalledAt;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(exitedAfterMs).toBeLessThan(GRACE_S * 1_000);

    // The step ran to its end: stock reserved, its result in the ledger, no cancellation.
    const reserved = await db.pool.query<{ quantity: number; status: string }>(
      'SELECT quantity, status FROM inventory_reservations WHERE order_id = $1',
      [orderId],
    );
    expect(reserved.rows).toEqual([{ quantity: 3, status: 'RESERVED' }]);
    const ledger = await db.pool.query<{ result: unknown }>(
      `SELECT result FROM activity_ledger WHERE idempotency_key = $1`,
      [`${workflowIdFor(orderId)}:reserveInventory`],
    );
    expect(ledger.rows).toEqual([{ result: { ok: true } }]);
    const lines = await worker.jsonLines();
    const reserveLines = lines
      .filter((line) => line.activityType === 'reserveInventory')
      .map((line) => line.msg);
    expect(reserveLines).toContain('Activity completed');
    expect(reserveLines).not.toContain('Activity completed as cancelled');
    expect(lines.at(-1)?.msg).toBe('worker stopped');

    // Nothing was lost: another worker takes the saga to its end, reserving nothing twice.
    const native = await NativeConnection.connect({ address: env.temporalAddress });
    const next = await createSagaWorkers({
      encryptionKeys: testEncryptionKeys,
      connection: native,
      namespace: 'default',
      taskQueue,
      pool: db.pool,
      workflowBundlePath: env.workflowBundle,
      slowPaymentMs: 4_000,
    });
    const running = next.run();
    try {
      expect(await handle.result()).toEqual<OrderSagaResult>({
        orderId,
        status: 'COMPLETED',
        failureReason: null,
      });
    } finally {
      next.shutdown();
      await running;
      await native.close();
    }
    const { rows } = await db.pool.query<{ available: number; reserved: number }>(
      'SELECT available, reserved FROM products WHERE sku = $1',
      [sku],
    );
    expect(rows[0]).toEqual({ available: 7, reserved: 0 });
  } finally {
    await release();
  }
}, 120_000);
