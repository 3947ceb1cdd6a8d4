import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { migrate } from '../../store/migrate';
import { createPool, type Pool } from '../../store/pool';
import { adminQuery } from '../support/stack';
import {
  startPrivatePostgres,
  startPrivateTemporal,
  type PrivatePostgres,
  type RestartableServer,
} from '../support/private-servers';
import { eventually } from '../../tools/fixtures/eventually';
import { startApiProcess, type ServiceProcess } from '../support/service-process';
import { orderBody } from '../../tools/fixtures/order';
import { testDataConverter } from '../support/encryption';

/**
 * `npm run api` (one process, never restarted) over a Postgres and a Temporal server of
 * this test's own, each stopped and started again under it: /readyz names what is down and
 * recovers on its own, and order requests answer 503 problems meanwhile, never a 500.
 */

let postgres: PrivatePostgres;
let temporal: RestartableServer & { address: string };
let pool: Pool;
let api: ServiceProcess;
let baseUrl: string;
/** Data and logs of the private servers and the API. */
let dir: string | undefined;
const taskQueue = `readiness-${randomUUID()}`;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-readiness-'));
  await chmod(dir, 0o755); // as root, Postgres runs as user postgres and must enter it
  const [pgStarted, temporalStarted] = await Promise.allSettled([
    startPrivatePostgres(dir),
    startPrivateTemporal(dir),
  ]);
  if (pgStarted.status === 'fulfilled') postgres = pgStarted.value;
  if (temporalStarted.status === 'fulfilled') temporal = temporalStarted.value;
  if (pgStarted.status === 'rejected') throw pgStarted.reason;
  if (temporalStarted.status === 'rejected') throw temporalStarted.reason;
  await adminQuery(postgres.urlFor('postgres'), 'CREATE DATABASE orders');
  pool = createPool(postgres.urlFor('orders'), { max: 5 });
  await migrate(pool);
  ({ api, baseUrl } = await startApiProcess(dir, {
    DATABASE_URL: postgres.urlFor('orders'),
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_TASK_QUEUE: taskQueue,
    LOG_LEVEL: 'warn',
  }));
  const put = await request('PUT', '/inventory/READY-1', { name: 'Ready', priceCents: 100, available: 100 });
  expect(put.status).toBe(200);
}, 180_000);

afterAll(async () => {
  await api?.stop();
  if (pool && temporal) {
    // Sagas nobody polls for: ended, so the server keeps nothing running.
    const { rows } = await pool
      .query<{ workflow_id: string }>('SELECT workflow_id FROM orders')
      .catch(() => ({ rows: [] as { workflow_id: string }[] }));
    const connection = await Connection.connect({ address: temporal.address }).catch(() => undefined);
    if (connection) {
      const client = new Client({ connection, dataConverter: testDataConverter });
      await Promise.all(
        rows.map(({ workflow_id }) =>
          client.workflow
            .getHandle(workflow_id)
            .terminate('readiness test done')
            .catch(() => undefined),
        ),
      );
      await connection.close();
    }
  }
  await pool?.end();
  await Promise.all([postgres?.stop(), temporal?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json<T>(): T;
}

async function request(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await fetch(`${baseUrl}${url}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: <T>() => JSON.parse(text) as T };
}

const order = (customerId: string) => orderBody({ customerId, sku: 'READY-1', quantity: 1 });

const readiness = async () => {
  const response = await request('GET', '/readyz');
  return {
    status: response.status,
    body: response.json<{ status: string; checks: Record<string, string> }>(),
  };
};

const ready = () =>
  eventually('ready again', async () => (await readiness()).status === 200, 90_000).then(readiness);

/** A 503 problem that says which dependency, with Retry-After, and nothing internal. */
function expectUnavailable(response: Answer, dependency: RegExp, what: string): void {
  expect({ what, status: response.status }).toEqual({ what, status: 503 });
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(response.headers.get('retry-after')).toBe('5');
  const body = response.json<{ type: string; detail: string }>();
  expect(body.type).toMatch(/\/service-unavailable$/);
  expect(body.detail).toMatch(dependency);
  expect(response.text).not.toMatch(/ECONN|SELECT|stack|at \//);
}

it('when Postgres goes down, then /readyz is 503 naming it and every order route answers 503, never 500; once it is back, then all is well again without a restart', async () => {
  expect(await readiness()).toEqual({
    status: 200,
    body: { status: 'ready', checks: { postgres: 'up', temporal: 'up' } },
  });
  const { orderId } = (await request('POST', '/orders', order(`c-${randomUUID()}`))).json<{
    orderId: string;
  }>();

  await postgres.stop();
  try {
    expect(await readiness()).toEqual({
      status: 503,
      body: { status: 'not_ready', checks: { postgres: 'down', temporal: 'up' } },
    });
    const requests: Array<[string, string, string, unknown?, Record<string, string>?]> = [
      ['POST /orders', 'POST', '/orders', order(`c-${randomUUID()}`)],
      [
        'POST /orders with Idempotency-Key',
        'POST',
        '/orders',
        order(`c-${randomUUID()}`),
        { 'idempotency-key': `k-${randomUUID()}` },
      ],
      ['GET /orders/:id', 'GET', `/orders/${orderId}`],
      ['GET /orders', 'GET', '/orders?limit=5'],
      ['POST cancel', 'POST', `/orders/${orderId}/cancel`],
      ['GET /inventory/:sku', 'GET', '/inventory/READY-1'],
    ];
    for (const [what, method, url, body, headers] of requests) {
      expectUnavailable(await request(method, url, body, headers), /database/, what);
    }
  } finally {
    await postgres.start();
  }

  expect(await ready()).toEqual({
    status: 200,
    body: { status: 'ready', checks: { postgres: 'up', temporal: 'up' } },
  });
  expect((await request('POST', '/orders', order(`c-${randomUUID()}`))).status).toBe(202);
}, 180_000);

it('when Temporal goes down, then /readyz stays 200 showing it down, POST /orders is accepted (202) and cancel answers 503; once it is back, then the accepted saga starts without a restart', async () => {
  expect((await readiness()).status).toBe(200);

  await temporal.stop();
  let orderId: string;
  try {
    expect(await readiness()).toEqual({
      status: 200,
      body: { status: 'ready', checks: { postgres: 'up', temporal: 'down' } },
    });
    const accepted = await request('POST', '/orders', order(`c-${randomUUID()}`));
    expect(accepted.status).toBe(202);
    orderId = accepted.json<{ orderId: string }>().orderId;
    const { rows } = await pool.query('SELECT 1 FROM saga_starts WHERE order_id = $1', [orderId]);
    expect(rows).toHaveLength(1);
    expectUnavailable(
      await request('POST', `/orders/${orderId}/cancel`, {}),
      /workflow service/,
      'POST cancel',
    );
  } finally {
    await temporal.start();
  }

  // The api's starter starts the saga once Temporal answers; the start request then goes.
  await eventually(
    'the saga started by the starter',
    async () => (await pool.query('SELECT 1 FROM saga_starts WHERE order_id = $1', [orderId])).rowCount === 0,
    60_000,
  );
  const connection = await Connection.connect({ address: temporal.address });
  try {
    const run = await new Client({ connection }).workflow.getHandle(`order-${orderId}`).describe();
    expect(run.taskQueue).toBe(taskQueue);
  } finally {
    await connection.close();
  }
  // The process was never restarted.
  expect(api.hasExited()).toBe(false);
}, 180_000);
