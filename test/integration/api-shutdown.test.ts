import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { eventually } from '../../tools/fixtures/eventually';
import { orderBody } from '../../tools/fixtures/order';
import { startApiProcess, type ServiceProcess } from '../support/service-process';
import { createTestDatabase, stackEnv, uniqueTaskQueue, type TestDatabase } from '../support/stack';
import { testDataConverter } from '../support/encryption';

/**
 * `npm run api` as a child process, under a steady load of POST /orders from concurrent
 * clients, gets SIGTERM. Every request must end in a complete answer (202, or a 503
 * problem once the instance stopped taking requests), or fail to connect at all, in which
 * case the API never saw it: no order exists for it. The orders in the database are
 * exactly the 202s. No worker polls the task queue; the sagas are terminated afterwards.
 *
 * One request is held in flight across the signal on purpose: its order lines wait for a
 * product row this test locks, and the lock goes only once the API logged that it stops.
 */

const CLIENTS = 12;
const LOAD_SKU = 'LOAD-1';
/** Ordered by the held request; the test locks its row. */
const HOLD_SKU = 'HOLD-1';

interface Outcome {
  customerId: string;
  status?: number;
  contentType?: string | null;
  retryAfter?: string | null;
  body?: { orderId?: string; type?: string; status?: number };
  error?: string;
}

let db: TestDatabase;
let api: ServiceProcess;
let baseUrl: string;
let connection: Connection;
let logDir: string | undefined;

beforeAll(async () => {
  const env = stackEnv();
  db = await createTestDatabase();
  logDir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-api-shutdown-'));
  ({ api, baseUrl } = await startApiProcess(logDir, {
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: env.temporalAddress,
    TEMPORAL_TASK_QUEUE: uniqueTaskQueue('api-shutdown'),
    LOG_LEVEL: 'info',
  }));
  await db.pool.query(
    `INSERT INTO products (sku, name, price_cents, available) VALUES ($1, 'Load', 100, 1000000), ($2, 'Hold', 100, 10)`,
    [LOAD_SKU, HOLD_SKU],
  );
  connection = await Connection.connect({ address: env.temporalAddress });
});

afterAll(async () => {
  await api?.stop();
  if (connection && db) {
    const client = new Client({ connection, dataConverter: testDataConverter });
    const { rows } = await db.pool.query<{ workflow_id: string }>('SELECT workflow_id FROM orders');
    await Promise.all(
      rows.map(({ workflow_id }) =>
        client.workflow
          .getHandle(workflow_id)
          .terminate('api shutdown test done')
          .catch(() => undefined),
      ),
    );
  }
  await connection?.close();
  await db?.drop();
  if (logDir) await rm(logDir, { recursive: true, force: true });
});

/** POSTs one order and records how it ended. */
async function order(customerId: string, sku: string): Promise<Outcome> {
  const outcome: Outcome = { customerId };
  try {
    const response = await fetch(`${baseUrl}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(orderBody({ customerId, sku, quantity: 1 })),
    });
    outcome.status = response.status;
    outcome.contentType = response.headers.get('content-type');
    outcome.retryAfter = response.headers.get('retry-after');
    outcome.body = (await response.json()) as Outcome['body']; // the whole body arrived
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    outcome.error = cause?.code ?? cause?.message ?? String(error);
  }
  return outcome;
}

/** One client: orders until it gets something other than a 202, or no answer. */
async function client(index: number, outcomes: Outcome[]): Promise<void> {
  for (let n = 0; ; n++) {
    const outcome = await order(`c-load-${index}-${n}`, LOAD_SKU);
    outcomes.push(outcome);
    if (outcome.status !== 202) return;
  }
}

it('when SIGTERM arrives under load, then requests in flight are answered, later ones get a 503 problem or no connection, nothing accepted is lost, and the process exits 0', async () => {
  const outcomes: Outcome[] = [];
  const load = Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i, outcomes)));
  await eventually(
    'more orders accepted than there are clients',
    () => outcomes.filter((o) => o.status === 202).length > CLIENTS,
    60_000,
  );

  // A request in flight at the signal, for certain: its order lines wait for HOLD-1's row.
  const holder = await db.pool.connect();
  let exit: Awaited<ReturnType<ServiceProcess['stop']>>;
  let held: Outcome;
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM products WHERE sku = $1 FOR UPDATE', [HOLD_SKU]);
    const holding = order('c-held', HOLD_SKU);
    await eventually('the held request waiting for the product row', async () => {
      const { rows } = await db.pool.query<{ waiting: number }>(
        `SELECT count(*)::int AS waiting FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO order_items%'`,
      );
      return rows[0]!.waiting > 0;
    });
    const stopping = api.stop(30_000); // SIGTERM; SIGKILL only after 30 s
    await eventually('the API logging that it stops', async () =>
      (await api.output()).includes('"msg":"api stopping"'),
    );
    await holder.query('COMMIT');
    held = await holding;
    exit = await stopping;
  } finally {
    holder.release(true); // closed: a transaction still open (the test failed) ends with it
  }
  await load;
  outcomes.push(held);

  // Draining, not dropping: the request in flight at the signal was answered in full.
  expect(held).toMatchObject({ status: 202, body: { orderId: expect.stringMatching(/^[0-9a-f-]{36}$/) } });
  expect(exit).toEqual({ code: 0, signal: null });

  const accepted = outcomes.filter((o) => o.status === 202);
  const refused = outcomes.filter((o) => o.status === 503);
  const unconnected = outcomes.filter((o) => o.error !== undefined);
  const other = outcomes.filter((o) => o.status !== undefined && o.status !== 202 && o.status !== 503);
  expect(other).toEqual([]);
  expect(accepted.length).toBeGreaterThan(CLIENTS + 1);
  for (const outcome of accepted) expect(outcome.body?.orderId).toMatch(/^[0-9a-f-]{36}$/);
  for (const outcome of refused) {
    expect(outcome.contentType).toMatch(/^application\/problem\+json/);
    expect(outcome.retryAfter).toBe('1');
    expect(outcome.body).toMatchObject({
      status: 503,
      type: expect.stringMatching(/\/service-unavailable$/),
    });
  }
  // A request that got no answer never reached the API: refused connection, or a
  // keep-alive connection the server closed as idle before the request arrived.
  for (const outcome of unconnected) {
    expect(outcome.error).toMatch(/ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET|other side closed/);
  }
  // Every client stopped for a reason: each one's last request was not a 202.
  expect(refused.length + unconnected.length).toBe(CLIENTS);

  // The database holds exactly the accepted orders: none for a request without an answer.
  const { rows } = await db.pool.query<{ id: string; customer_id: string }>(
    'SELECT id, customer_id FROM orders',
  );
  expect(rows.map((row) => row.id).sort()).toEqual(accepted.map((o) => o.body!.orderId!).sort());

  const lines = await api.jsonLines();
  expect(lines.map((line) => line.msg)).toEqual(expect.arrayContaining(['api stopping', 'api stopped']));
}, 120_000);
