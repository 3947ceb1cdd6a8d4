import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { startApiProcess, type ServiceProcess } from '../support/service-process';
import { createTestDatabase, stackEnv, uniqueTaskQueue, type TestDatabase } from '../support/stack';
import { testDataConverter } from '../support/encryption';

/**
 * `npm run api` as a child process, under a steady load of POST /orders from concurrent
 * clients, gets SIGTERM. Every request must end in a complete answer (202, or a 503
 * problem once the instance stopped taking requests), or fail to connect at all, in which
 * case the API never saw it: no order exists for it. The orders in the database are
 * exactly the 202s. No worker polls the task queue; the sagas are terminated afterwards.
 */

const CLIENTS = 12;
const LOAD_BEFORE_SIGNAL_MS = 1_500;

interface Outcome {
  customerId: string;
  startedAt: number;
  endedAt: number;
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
    `INSERT INTO products (sku, name, price_cents, available) VALUES ('LOAD-1', 'Load', 100, 1000000)`,
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

/** One client: orders until it gets something other than a 202, or no answer. */
async function client(index: number, outcomes: Outcome[]): Promise<void> {
  for (let n = 0; ; n++) {
    const outcome: Outcome = { customerId: `c-load-${index}-${n}`, startedAt: Date.now(), endedAt: 0 };
    outcomes.push(outcome);
    try {
      const response = await fetch(`${baseUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          customerId: outcome.customerId,
          items: [{ sku: 'LOAD-1', quantity: 1 }],
          paymentToken: 'tok_ok',
          shippingAddress: {
            name: 'Ada',
            line1: '1 Main St',
            city: 'Springfield',
            postalCode: '1',
            country: 'US',
          },
        }),
      });
      outcome.status = response.status;
      outcome.contentType = response.headers.get('content-type');
      outcome.retryAfter = response.headers.get('retry-after');
      outcome.body = (await response.json()) as Outcome['body']; // the whole body arrived
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      outcome.error = cause?.code ?? cause?.message ?? String(error);
    }
    outcome.endedAt = Date.now();
    if (outcome.status !== 202) return;
  }
}

it('when SIGTERM arrives under load, then requests in flight are answered, later ones get a 503 problem or no connection, nothing accepted is lost, and the process exits 0', async () => {
  const outcomes: Outcome[] = [];
  const load = Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i, outcomes)));
  await new Promise((resolve) => setTimeout(resolve, LOAD_BEFORE_SIGNAL_MS));
  const signalledAt = Date.now();
  const exit = await api.stop(30_000); // SIGTERM; SIGKILL only after 30 s
  await load;

  expect(exit).toEqual({ code: 0, signal: null });

  const accepted = outcomes.filter((o) => o.status === 202);
  const refused = outcomes.filter((o) => o.status === 503);
  const unconnected = outcomes.filter((o) => o.error !== undefined);
  const other = outcomes.filter((o) => o.status !== undefined && o.status !== 202 && o.status !== 503);
  expect(other).toEqual([]);
  expect(accepted.length).toBeGreaterThan(CLIENTS);
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
  // Draining, not dropping: requests in flight at the signal were answered 202 after it.
  const drained = accepted.filter((o) => o.startedAt < signalledAt && o.endedAt > signalledAt);
  expect(drained.length).toBeGreaterThan(0);
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
