import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, makeTelemetryFilterString, NativeConnection, Runtime } from '@temporalio/worker';
import type { PoolClient } from '../../store/pool';
import { withTransaction } from '../../store/tx';
import { insertOrderIfAbsent } from '../../store/orders';
import { createSagaWorkers } from '../../worker/create-worker';
import { WORKFLOW_TYPE, workflowIdFor, type OrderSagaResult } from '../../contracts/index';
import {
  CustomerIdKey,
  OrderIdKey,
  OrderStatusKey,
  OrderTotalCentsKey,
} from '../../workflows/search-attributes';
import { eventually } from '../../tools/fixtures/eventually';
import { sagaInput } from '../../tools/fixtures/order';
import { startWorkerProcess, type ServiceProcess } from '../support/service-process';
import { createTestDatabase, stackEnv, uniqueTaskQueue, type TestDatabase } from '../support/stack';
import { testDataConverter, testEncryptionKeys } from '../support/encryption';

/**
 * `npm run worker` as a child process gets SIGTERM while a saga step is running. The step
 * is an ordinary one (reserveInventory of a normal order), held in flight by a row lock
 * this test takes on the product, so the signal lands mid-step every time; the lock is let
 * go only once the worker logs that it drains, so the step finishes after the signal.
 */

/**
 * The grace period is far longer than the test may take: an exit before STOP_TIMEOUT_MS can
 * only be the worker's own, once the step it waited for finished, never the grace running out.
 */
const GRACE = '10m';
const STOP_TIMEOUT_MS = 60_000;
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
  const input = sagaInput({ customerId: 'c-shutdown', items: [{ sku, quantity: 3, unitPriceCents: 500 }] });
  const { orderId } = input;
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

it('when SIGTERM arrives while a step runs, then the worker drains: it waits for the step, which commits, exits 0, and another worker completes the saga', async () => {
  const env = stackEnv();
  logDir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-shutdown-'));
  worker = await startWorkerProcess(logDir, {
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: env.temporalAddress,
    TEMPORAL_TASK_QUEUE: taskQueue,
    WORKFLOW_BUNDLE_PATH: env.workflowBundle,
    WORKER_SHUTDOWN_GRACE: GRACE,
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

    // SIGTERM now; SIGKILL (a failing exit status) only if it has not exited within STOP_TIMEOUT_MS.
    const stopped = worker.stop(STOP_TIMEOUT_MS);
    // The worker has taken the signal and drains; the step still waits on our lock, so
    // whatever it does from here, it does after the signal.
    await eventually('the worker draining', async () =>
      (await worker.output()).includes('"state":"DRAINING"'),
    );
    await release();

    // Exit 0 long before the grace period could end it: the worker exited because the step finished.
    expect(await stopped).toEqual({ code: 0, signal: null });
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
    // Saga v4 reserves inside admitOrder (the order, its reservation, its screening).
    const reserveLines = lines
      .filter((line) => line.activityType === 'admitOrder')
      .map((line) => line.msg);
    expect(reserveLines).toEqual(expect.arrayContaining(['Activity completed']));
    expect(reserveLines).not.toContain('Activity completed as cancelled');
    // In that order: draining (the signal), the step completed (after our release), stopped.
    const draining = lines.findIndex(
      (line) => line.msg === 'Worker state changed' && line.state === 'DRAINING',
    );
    const completed = lines.findIndex(
      (line) => line.activityType === 'admitOrder' && line.msg === 'Activity completed',
    );
    expect(draining).toBeGreaterThan(-1);
    expect(completed).toBeGreaterThan(draining);
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
