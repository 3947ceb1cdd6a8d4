import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { parseSamples, scrape, sum, type Sample } from '../support/prometheus';
import { eventually } from '../../tools/fixtures/eventually';
import { orderBody } from '../../tools/fixtures/order';
import {
  freePort,
  startApiProcess,
  startWorkerProcess,
  type ServiceProcess,
} from '../support/service-process';
import { createTestDatabase, stackEnv, uniqueTaskQueue, type TestDatabase } from '../support/stack';
import { testDataConverter } from '../support/encryption';

/**
 * Metrics and logs of the real processes: `npm run api` and `npm run worker` as child
 * processes on a fresh database and task queue, driven over HTTP with a bearer token.
 * Four sagas end four ways (completed, declined, carrier refused, cancelled while awaiting
 * approval); then both processes' /metrics and their log output are read.
 */

const TOKEN = `obs-${randomUUID()}`;
const auth = { authorization: `Bearer ${TOKEN}` };

let db: TestDatabase;
let api: ServiceProcess;
let worker: ServiceProcess;
let baseUrl: string;
let workerMetricsUrl: string;
let sdkMetricsUrl: string;
let connection: Connection;
const orders: Record<string, string> = {};
let logDir: string | undefined;

async function call(method: string, url: string, body?: unknown): Promise<Response> {
  return fetch(`${baseUrl}${url}`, {
    method,
    headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

async function placeOrder(sku: string, paymentToken: string, country = 'US'): Promise<string> {
  const response = await call('POST', '/orders', orderBody({ sku, quantity: 1, paymentToken, country }));
  expect(response.status).toBe(202);
  return ((await response.json()) as { orderId: string }).orderId;
}

const statusOf = async (orderId: string): Promise<string> =>
  ((await (await call('GET', `/orders/${orderId}`)).json()) as { status: string }).status;

const reaches = (orderId: string, status: string) =>
  eventually(`order ${orderId} ${status}`, async () => (await statusOf(orderId)) === status, 45_000);

beforeAll(async () => {
  const env = stackEnv();
  db = await createTestDatabase();
  logDir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-obs-'));
  const taskQueue = uniqueTaskQueue('obs');
  const [metricsPort, sdkPort] = [await freePort(), await freePort()];
  workerMetricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  sdkMetricsUrl = `http://127.0.0.1:${sdkPort}/metrics`;
  const shared = {
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: env.temporalAddress,
    TEMPORAL_TASK_QUEUE: taskQueue,
  };
  [worker, { api, baseUrl }] = await Promise.all([
    startWorkerProcess(logDir, {
      ...shared,
      WORKFLOW_BUNDLE_PATH: env.workflowBundle,
      LOG_LEVEL: 'debug',
      WORKER_METRICS_PORT: String(metricsPort),
      WORKER_SDK_METRICS_PORT: String(sdkPort),
    }),
    startApiProcess(logDir, { ...shared, API_TOKENS: TOKEN, LOG_LEVEL: 'debug' }),
  ]);
  connection = await Connection.connect({ address: env.temporalAddress });

  for (const [sku, priceCents] of [
    ['OBS-1', 1299],
    ['OBS-BIG', 150_000],
  ] as const) {
    expect((await call('PUT', `/inventory/${sku}`, { name: sku, priceCents, available: 100 })).status).toBe(
      200,
    );
  }
  [orders.completed, orders.declined, orders.refused, orders.cancelled] = await Promise.all([
    placeOrder('OBS-1', 'tok_ok'),
    placeOrder('OBS-1', 'tok_declined'),
    placeOrder('OBS-1', 'tok_ok', 'ZZ'),
    placeOrder('OBS-BIG', 'tok_ok'),
  ]);
  await reaches(orders.cancelled, 'AWAITING_APPROVAL');
  expect((await call('POST', `/orders/${orders.cancelled}/cancel`)).status).toBe(202);
  await Promise.all([
    reaches(orders.completed, 'COMPLETED'),
    reaches(orders.declined, 'FAILED'),
    reaches(orders.refused, 'FAILED'),
    reaches(orders.cancelled, 'CANCELLED'),
  ]);
  // A customer id that looks like a token, in a query string: never logged.
  expect((await call('GET', '/orders?customerId=tok_in_a_query')).status).toBe(200);
}, 180_000);

afterAll(async () => {
  await api?.stop();
  await worker?.stop();
  // Nothing should be left running; end whatever a failed test left.
  const client = connection && new Client({ connection, dataConverter: testDataConverter });
  for (const orderId of Object.values(orders)) {
    await client?.workflow
      .getHandle(`order-${orderId}`)
      .terminate('observability test done')
      .catch(() => undefined);
  }
  await connection?.close();
  await db?.drop();
  if (logDir) await rm(logDir, { recursive: true, force: true });
});

describe('worker metrics (WORKER_METRICS_PORT)', () => {
  let samples: Sample[];
  beforeAll(async () => {
    // Durations are recorded a moment after the last step (one query for the order's age).
    samples = await eventually('four saga durations', async () => {
      const scraped = (await scrape(workerMetricsUrl)).samples;
      return sum(scraped, 'order_saga_duration_seconds_count') === 4 ? scraped : undefined;
    });
  });

  it('when sagas end four ways, then each is counted once by status and failure reason', () => {
    const finished = samples.filter((s) => s.name === 'order_sagas_finished_total');
    expect(
      Object.fromEntries(finished.map((s) => [`${s.labels.status}/${s.labels.failure_reason}`, s.value])),
    ).toEqual({
      'COMPLETED/none': 1,
      'FAILED/payment_declined': 1,
      'FAILED/shipping_unavailable': 1,
      'CANCELLED/none': 1,
    });
  });

  it('when sagas end, then their durations are observed per status, each within the test run', () => {
    for (const status of ['COMPLETED', 'FAILED', 'CANCELLED']) {
      expect(sum(samples, 'order_saga_duration_seconds_count', { status })).toBe(status === 'FAILED' ? 2 : 1);
      const seconds = sum(samples, 'order_saga_duration_seconds_sum', { status });
      expect(seconds).toBeGreaterThan(0);
      expect(seconds).toBeLessThan(180 * (status === 'FAILED' ? 2 : 1));
    }
  });

  it('when sagas compensate, then each compensation run is counted, by name', () => {
    const ran = (compensation: string) =>
      sum(samples, 'order_saga_compensations_total', { compensation, outcome: 'succeeded' });
    // declined: refund (nothing to refund), release, cancelOrder · refused: cancelShipment,
    // refund, release, cancelOrder · cancelled awaiting approval: release, cancelOrder.
    expect({
      cancelShipment: ran('cancelShipment'),
      refundPayment: ran('refundPayment'),
      releaseInventory: ran('releaseInventory'),
      cancelOrder: ran('cancelOrder'),
    }).toEqual({ cancelShipment: 1, refundPayment: 2, releaseInventory: 3, cancelOrder: 3 });
    expect(sum(samples, 'order_saga_compensations_total', { outcome: 'failed' })).toBe(0);
  });

  it('when scraped, then the process metrics are there too', () => {
    expect(samples.some((s) => s.name === 'process_cpu_seconds_total')).toBe(true);
    expect(samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds')).toBe(true);
  });
});

describe('Temporal SDK metrics (WORKER_SDK_METRICS_PORT)', () => {
  it("when scraped, then the SDK's own worker metrics are served for the saga's task queues", async () => {
    // The last run's completion is reported a moment after its last step commits.
    const samples = await eventually('four workflows completed', async () => {
      const scraped = (await scrape(sdkMetricsUrl)).samples;
      return sum(scraped, 'temporal_workflow_completed') === 4 ? scraped : undefined;
    });
    const queues = new Set(samples.map((s) => s.labels.task_queue).filter(Boolean));
    expect([...queues].some((queue) => queue?.startsWith('obs-'))).toBe(true);
    expect(
      sum(samples, 'temporal_activity_execution_latency_count', { activity_type: 'chargeAndShip' }),
    ).toBe(3);
    expect(samples.some((s) => s.name === 'temporal_worker_task_slots_available')).toBe(true);
  });
});

describe('API metrics (/metrics)', () => {
  it('when orders were placed, then sagas started and request durations are counted by route', async () => {
    const response = await fetch(`${baseUrl}/metrics`); // public: no token
    expect(response.status).toBe(200);
    const samples = parseSamples(await response.text());
    expect(sum(samples, 'order_sagas_started_total', { requires_approval: 'false' })).toBe(3);
    expect(sum(samples, 'order_sagas_started_total', { requires_approval: 'true' })).toBe(1);
    expect(
      sum(samples, 'http_request_duration_seconds_count', {
        route: '/orders',
        method: 'POST',
        status_code: '202',
      }),
    ).toBe(4);
    expect(
      sum(samples, 'http_request_duration_seconds_count', { route: '/orders/:orderId', method: 'GET' }),
    ).toBeGreaterThanOrEqual(4);
  });
});

describe('logs', () => {
  it('when the processes ran, then every line they wrote is JSON and none holds a payment token, the bearer token or an address', async () => {
    for (const process of [api, worker]) {
      const lines = await process.jsonLines(); // throws on a line that is not JSON
      expect(lines.length).toBeGreaterThan(20);
      const text = await process.output();
      expect(text).not.toMatch(/tok_[a-z]/);
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain('1 Main St'); // the customer's address is personal data
    }
  });

  it('when the worker logs about an order, then the line has its orderId and workflowId, and step inputs are redacted', async () => {
    // The Runtime's logger sorts lines from the SDK and the Rust core in a 100 ms buffer.
    const lines = await eventually('four sagas logged as finished', async () => {
      const all = await worker.jsonLines();
      return all.filter((line) => line.msg === 'saga finished').length === 4 ? all : undefined;
    });
    const aboutOrders = lines.filter(
      (line) => typeof line.workflowId === 'string' && line.workflowId.startsWith('order-'),
    );
    expect(aboutOrders.length).toBeGreaterThan(20);
    for (const line of aboutOrders) expect(`order-${String(line.orderId)}`).toBe(line.workflowId);

    const finished = lines.filter((line) => line.msg === 'saga finished');
    expect(finished.map((line) => [line.orderId, line.status, line.failureReason ?? null]).sort()).toEqual(
      [
        [orders.completed, 'COMPLETED', null],
        [orders.declined, 'FAILED', 'payment_declined'],
        [orders.refused, 'FAILED', 'shipping_unavailable'],
        [orders.cancelled, 'CANCELLED', null],
      ].sort(),
    );
    // The charge-and-ship activity's input went through the logger, token and address masked.
    const charges = lines.filter(
      (line) => line.msg === 'saga step started' && line.activityType === 'chargeAndShip',
    );
    expect(charges).toHaveLength(3);
    for (const line of charges) {
      expect(line.input).toMatchObject({
        charge: { paymentToken: '[redacted]' },
        shipment: { address: '[redacted]' },
      });
    }
  });

  it('when the API logs a request, then it has its requestId, the orderId when it concerns one, and no Authorization value', async () => {
    const lines = await api.jsonLines();
    const requests = lines.filter((line) => line.msg === 'request');
    expect(requests.length).toBeGreaterThan(8);
    for (const line of requests) expect(line.requestId).toEqual(expect.any(String));

    const accepted = lines.filter((line) => line.msg === 'order accepted');
    expect(accepted.map((line) => line.orderId).sort()).toEqual(Object.values(orders).sort());
    for (const line of accepted) {
      expect(line).toMatchObject({
        workflowId: `order-${String(line.orderId)}`,
        requestId: expect.any(String),
      });
    }
    const posts = requests.filter((line) => line.route === '/orders' && line.method === 'POST');
    expect(posts.map((line) => line.orderId).sort()).toEqual(Object.values(orders).sort());
    const reads = requests.filter((line) => line.route === '/orders/:orderId');
    expect(reads.length).toBeGreaterThan(0);
    for (const line of reads) expect(Object.values(orders)).toContain(line.orderId);

    const received = lines.filter((line) => line.msg === 'request received');
    expect(received.length).toBe(requests.length);
    const withAuth = received.filter((line) => (line.headers as Record<string, unknown>).authorization);
    expect(withAuth.length).toBeGreaterThan(0);
    for (const line of withAuth) {
      expect((line.headers as Record<string, unknown>).authorization).toBe('[redacted]');
    }
  });
});
