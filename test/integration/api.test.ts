import { randomUUID } from 'node:crypto';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { buildApp, type App } from '../../api/app';
import { loadApiConfig } from '../../api/config';
import { fingerprintOf } from '../../api/orders/fingerprint';
import type { Pool } from '../../store/pool';
import { OrderIdKey, OrderStatusKey, OrderTotalCentsKey } from '../../workflows/search-attributes';
import { startSagaHarness, type SagaHarness } from '../support/saga-harness';
import { createTestDatabase, stackEnv } from '../support/stack';
import { orderBody, type OrderBody, type OrderOverrides } from '../../tools/fixtures/order';
import { decodedHistory, TEST_ENCRYPTION_KEYS, testDataConverter } from '../support/encryption';

/**
 * The API against a real Postgres and a real Temporal server, without a worker: accepted
 * sagas stay scheduled on a task queue nobody polls, which is all the HTTP side needs.
 */

let app: App;
let pool: Pool;
let dropDatabase: () => Promise<void>;
let connection: Connection;
let client: Client;
const temporalUiUrl = 'http://temporal-ui.test';

beforeAll(async () => {
  const env = stackEnv();
  const db = await createTestDatabase();
  pool = db.pool;
  dropDatabase = db.drop;
  connection = await Connection.connect({ address: env.temporalAddress });
  client = new Client({ connection, dataConverter: testDataConverter, namespace: 'default' });
  app = buildApp({
    pool,
    temporal: client,
    config: loadApiConfig({
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: env.temporalAddress,
      PAYLOAD_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      TEMPORAL_UI_URL: temporalUiUrl,
      TEMPORAL_TASK_QUEUE: `api-test-${randomUUID()}`,
      APPROVAL_THRESHOLD_CENTS: '100000',
    }),
  });
  await app.ready();
  for (const [sku, priceCents] of [
    ['SKU-1', 1299],
    ['SKU-2', 500],
  ] as const) {
    await putProduct(sku, { name: `Product ${sku}`, priceCents, available: 1_000 });
  }
});

afterAll(async () => {
  // Nobody will ever run these sagas: end them so the server does not keep them around.
  const { rows } = await pool.query<{ workflow_id: string }>('SELECT workflow_id FROM orders');
  await Promise.all(
    rows.map(({ workflow_id }) =>
      client.workflow
        .getHandle(workflow_id)
        .terminate('api integration test done')
        .catch((error: unknown) => {
          if (!(error instanceof WorkflowNotFoundError)) throw error;
        }),
    ),
  );
  await app?.close();
  await connection?.close();
  await dropDatabase?.();
});

const putProduct = (sku: string, payload: { name: string; priceCents: number; available: number }) =>
  app.inject({ method: 'PUT', url: `/inventory/${encodeURIComponent(sku)}`, payload });

/** The shared order fixture: two lines (SKU-1 × 2, SKU-2 × 1) unless overridden. */
function order(overrides: OrderOverrides = {}): OrderBody {
  return orderBody({
    items: [
      { sku: 'SKU-1', quantity: 2 },
      { sku: 'SKU-2', quantity: 1 },
    ],
    ...overrides,
  });
}

async function placeOrder(payload: Record<string, unknown>, headers: Record<string, string> = {}) {
  const response = await app.inject({ method: 'POST', url: '/orders', payload, headers });
  expect(response.statusCode).toBe(202);
  return response.json<{ orderId: string; workflowId: string; totalCents: number }>();
}

async function count(sql: string, params: unknown[]): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, params);
  return rows[0]!.n;
}

describe('inventory', () => {
  it('when a product is put, then it can be read back with nothing reserved', async () => {
    const sku = `INV-${randomUUID()}`;
    const put = await putProduct(sku, { name: 'Widget', priceCents: 250, available: 7 });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toEqual({ sku, name: 'Widget', priceCents: 250, available: 7, reserved: 0 });
    const get = await app.inject({ method: 'GET', url: `/inventory/${sku}` });
    expect(get.json()).toEqual({ sku, name: 'Widget', priceCents: 250, available: 7, reserved: 0 });
  });

  it('when a product is replaced, then what orders have reserved is kept', async () => {
    const sku = `INV-${randomUUID()}`;
    await putProduct(sku, { name: 'Widget', priceCents: 250, available: 7 });
    await pool.query('UPDATE products SET reserved = 3 WHERE sku = $1', [sku]);
    const put = await putProduct(sku, { name: 'Widget 2', priceCents: 300, available: 10 });
    expect(put.json()).toEqual({ sku, name: 'Widget 2', priceCents: 300, available: 10, reserved: 3 });
  });

  it('when the sku is unknown, then 404 problem', async () => {
    const response = await app.inject({ method: 'GET', url: '/inventory/NOPE-404' });
    expect(response.statusCode).toBe(404);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  });
});

describe('POST /orders', () => {
  it('when accepted, then 202 with Location, and the order is visible as PENDING at once', async () => {
    const payload = order();
    const response = await app.inject({
      method: 'POST',
      url: '/orders',
      payload,
      headers: { 'x-request-id': 'it-req-1' },
    });
    expect(response.statusCode).toBe(202);
    const body = response.json<{ orderId: string }>();
    const { orderId } = body;
    expect(response.headers.location).toBe(`/orders/${orderId}`);
    expect(body).toEqual({
      orderId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      status: 'PENDING',
      workflowId: `order-${orderId}`,
      totalCents: 2 * 1299 + 500,
      currency: 'USD',
      links: {
        self: `/orders/${orderId}`,
        temporalUi: `${temporalUiUrl}/namespaces/default/workflows/order-${orderId}`,
      },
    });

    const get = await app.inject({ method: 'GET', url: `/orders/${orderId}` });
    expect(get.statusCode).toBe(200);
    expect(get.json()).toEqual({
      orderId,
      status: 'PENDING',
      customerId: payload.customerId,
      items: [
        { sku: 'SKU-1', quantity: 2, unitPriceCents: 1299 },
        { sku: 'SKU-2', quantity: 1, unitPriceCents: 500 },
      ],
      totalCents: 3098,
      currency: 'USD',
      failureReason: null,
      payment: { status: 'NONE' },
      shipment: { status: 'NONE' },
      steps: [
        { name: 'createOrder', status: 'PENDING', attempts: 0 },
        { name: 'reserveInventory', status: 'PENDING', attempts: 0 },
        { name: 'approval', status: 'SKIPPED', attempts: 0 },
        { name: 'fraudScreening', status: 'PENDING', attempts: 0 },
        { name: 'chargePayment', status: 'PENDING', attempts: 0 },
        { name: 'createShipment', status: 'PENDING', attempts: 0 },
        { name: 'completeOrder', status: 'PENDING', attempts: 0 },
      ],
      decisions: [],
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      updatedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      links: {
        self: `/orders/${orderId}`,
        temporalUi: `${temporalUiUrl}/namespaces/default/workflows/order-${orderId}`,
        cancel: `/orders/${orderId}/cancel`,
      },
    });

    // The saga was started with the priced input, its search attributes and a summary.
    const description = await client.workflow.getHandle(`order-${orderId}`).describe();
    expect(description.type).toBe('orderSaga');
    expect(description.typedSearchAttributes.get(OrderIdKey)).toBe(orderId);
    expect(description.typedSearchAttributes.get(OrderStatusKey)).toBe('PENDING');
    expect(description.typedSearchAttributes.get(OrderTotalCentsKey)).toBe(3098);
    expect(await description.staticSummary()).toBe(`Order 3 items · $30.98 · customer ${payload.customerId}`);
    const { rows } = await pool.query<{ correlation_id: string }>(
      'SELECT correlation_id FROM orders WHERE id = $1',
      [orderId],
    );
    expect(rows[0]?.correlation_id).toBe('it-req-1');
  });

  it('when the total reaches the approval threshold, then the approval step is pending', async () => {
    const { orderId, totalCents } = await placeOrder(order({ items: [{ sku: 'SKU-1', quantity: 100 }] }));
    expect(totalCents).toBe(129_900);
    const get = await app.inject({ method: 'GET', url: `/orders/${orderId}` });
    expect(get.json<{ steps: { name: string; status: string }[] }>().steps).toContainEqual({
      name: 'approval',
      status: 'PENDING',
      attempts: 0,
    });
  });

  it('when a sku is unknown, then 422 names it and nothing is written', async () => {
    const payload = order({
      items: [
        { sku: 'SKU-1', quantity: 1 },
        { sku: 'NOPE-1', quantity: 1 },
      ],
    });
    const response = await app.inject({ method: 'POST', url: '/orders', payload });
    expect(response.statusCode).toBe(422);
    expect(response.json()).toMatchObject({
      type: 'https://order-saga.dev/problems/unknown-sku',
      unknownSkus: ['NOPE-1'],
    });
    expect(await count('orders WHERE customer_id = $1', [payload.customerId])).toBe(0);
  });
});

describe('Idempotency-Key', () => {
  it('when the same key and body come again, then the first response is replayed and one order exists', async () => {
    const payload = order();
    const key = `key-${randomUUID()}`;
    const first = await app.inject({
      method: 'POST',
      url: '/orders',
      payload,
      headers: { 'idempotency-key': key },
    });
    // Same document, keys in another order: still "the same body".
    const reordered = Object.fromEntries(Object.entries(payload).reverse());
    const second = await app.inject({
      method: 'POST',
      url: '/orders',
      payload: reordered,
      headers: { 'idempotency-key': key },
    });
    expect(first.statusCode).toBe(202);
    expect(second.statusCode).toBe(202);
    expect(second.json()).toEqual(first.json());
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.headers.location).toBe(first.headers.location);
    expect(await count('orders WHERE customer_id = $1', [payload.customerId])).toBe(1);
  });

  it('when the same key comes with another body, then 422 idempotency-key-reused', async () => {
    const key = `key-${randomUUID()}`;
    await placeOrder(order(), { 'idempotency-key': key });
    const response = await app.inject({
      method: 'POST',
      url: '/orders',
      payload: order(),
      headers: { 'idempotency-key': key },
    });
    expect(response.statusCode).toBe(422);
    expect(response.json<{ type: string }>().type).toMatch(/\/idempotency-key-reused$/);
  });

  it('when the first request is still in flight, then 409 idempotency-key-in-use with Retry-After', async () => {
    const key = `key-${randomUUID()}`;
    const payload = order();
    await pool.query(
      `INSERT INTO http_idempotency_keys (scope, key, fingerprint, order_id, state, locked_until)
       VALUES ('anonymous', $1, $2, $3, 'IN_FLIGHT', now() + interval '30 seconds')`,
      [key, fingerprintOf(payload), randomUUID()],
    );
    const response = await app.inject({
      method: 'POST',
      url: '/orders',
      payload,
      headers: { 'idempotency-key': key },
    });
    expect(response.statusCode).toBe(409);
    expect(response.headers['retry-after']).toBeDefined();
    expect(response.json<{ type: string }>().type).toMatch(/\/idempotency-key-in-use$/);
  });

  it('when the first attempt died after starting the saga, then the retry returns that same order', async () => {
    const key = `key-${randomUUID()}`;
    const payload = order();
    const orderId = randomUUID();
    // What a dead attempt leaves behind: a lapsed claim on an order id.
    await pool.query(
      `INSERT INTO http_idempotency_keys (scope, key, fingerprint, order_id, state, locked_until)
       VALUES ('anonymous', $1, $2, $3, 'IN_FLIGHT', now() - interval '1 second')`,
      [key, fingerprintOf(payload), orderId],
    );
    const retried = await placeOrder(payload, { 'idempotency-key': key });
    expect(retried.orderId).toBe(orderId);
    expect(await count('orders WHERE customer_id = $1', [payload.customerId])).toBe(1);
  });

  it('when the first answer was a 422, then the retry gets the same 422', async () => {
    const key = `key-${randomUUID()}`;
    const payload = order({ items: [{ sku: 'NOPE-2', quantity: 1 }] });
    const first = await app.inject({
      method: 'POST',
      url: '/orders',
      payload,
      headers: { 'idempotency-key': key },
    });
    const second = await app.inject({
      method: 'POST',
      url: '/orders',
      payload,
      headers: { 'idempotency-key': key },
    });
    expect(first.statusCode).toBe(422);
    expect(second.statusCode).toBe(422);
    expect(second.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(second.json()).toEqual(first.json());
    expect(second.headers['idempotent-replayed']).toBe('true');
  });

  it('when the key is not printable ASCII or too long, then 400', async () => {
    for (const key of ['k'.repeat(256), 'clé']) {
      const response = await app.inject({
        method: 'POST',
        url: '/orders',
        payload: order(),
        headers: { 'idempotency-key': key },
      });
      expect(response.statusCode).toBe(400);
    }
  });
});

describe('GET /orders/:orderId', () => {
  it('when the id is unknown, then 404', async () => {
    expect((await app.inject({ method: 'GET', url: `/orders/${randomUUID()}` })).statusCode).toBe(404);
  });

  it('when the id is malformed, then 400', async () => {
    expect((await app.inject({ method: 'GET', url: '/orders/42' })).statusCode).toBe(400);
  });

  it('when payment and shipment are recorded and the order awaits approval, then the view shows them and the approval links', async () => {
    const { orderId } = await placeOrder(order());
    await pool.query(`INSERT INTO payments (order_id, status, amount_cents) VALUES ($1, 'CAPTURED', 3098)`, [
      orderId,
    ]);
    await pool.query(
      `INSERT INTO shipments (order_id, status, carrier, tracking_number) VALUES ($1, 'CREATED', 'sim', 'TRK-1')`,
      [orderId],
    );
    await pool.query(`UPDATE orders SET status = 'AWAITING_APPROVAL' WHERE id = $1`, [orderId]);
    const view = (await app.inject({ method: 'GET', url: `/orders/${orderId}` })).json<
      Record<string, unknown>
    >();
    expect(view.payment).toEqual({ status: 'CAPTURED' });
    expect(view.shipment).toEqual({ status: 'CREATED', trackingNumber: 'TRK-1' });
    expect(view.links).toMatchObject({
      approve: `/orders/${orderId}/approve`,
      reject: `/orders/${orderId}/reject`,
    });
  });
});

describe('GET /orders', () => {
  it('when a customer has more orders than a page, then pages come newest first with an opaque cursor until nextCursor is null', async () => {
    const customerId = `c-${randomUUID()}`;
    const placed: string[] = [];
    for (let i = 0; i < 5; i++) placed.push((await placeOrder(order({ customerId }))).orderId);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `customerId=${customerId}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const response = await app.inject({ method: 'GET', url: `/orders?${query}` });
      expect(response.statusCode).toBe(200);
      const page = response.json<{
        items: { orderId: string; createdAt: string }[];
        nextCursor: string | null;
      }>();
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((item) => item.orderId));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null && pages < 10);

    expect(pages).toBe(3);
    expect(seen).toEqual([...placed].reverse());
  });

  it('when filtered by status, then only the orders in that status are listed', async () => {
    const customerId = `c-${randomUUID()}`;
    const { orderId } = await placeOrder(order({ customerId }));
    const pending = await app.inject({
      method: 'GET',
      url: `/orders?customerId=${customerId}&status=PENDING`,
    });
    expect(pending.json<{ items: { orderId: string }[] }>().items.map((item) => item.orderId)).toEqual([
      orderId,
    ]);
    const completed = await app.inject({
      method: 'GET',
      url: `/orders?customerId=${customerId}&status=COMPLETED`,
    });
    expect(completed.json()).toEqual({ items: [], nextCursor: null });
  });
});

describe('order actions', () => {
  it('when cancel is asked twice, then 202 both times and Temporal records the request', async () => {
    const { orderId, workflowId } = await placeOrder(order());
    for (let i = 0; i < 2; i++) {
      const response = await app.inject({ method: 'POST', url: `/orders/${orderId}/cancel` });
      expect(response.statusCode).toBe(202);
      expect(response.json()).toEqual({ orderId, status: 'PENDING', cancelRequested: true });
    }
    const history = await decodedHistory(client.workflow.getHandle(workflowId));
    expect(history.events?.some((event) => event.workflowExecutionCancelRequestedEventAttributes)).toBe(true);
  });

  it('when the order is already final, then cancel is 409 order-not-cancellable', async () => {
    const { orderId } = await placeOrder(order());
    await pool.query(`UPDATE orders SET status = 'COMPLETED' WHERE id = $1`, [orderId]);
    const response = await app.inject({ method: 'POST', url: `/orders/${orderId}/cancel` });
    expect(response.statusCode).toBe(409);
    expect(response.json<{ type: string }>().type).toMatch(/\/order-not-cancellable$/);
  });

  it('when the order is unknown, then cancel, approve and reject are 404', async () => {
    for (const action of ['cancel', 'approve', 'reject']) {
      const response = await app.inject({ method: 'POST', url: `/orders/${randomUUID()}/${action}` });
      expect(response.statusCode).toBe(404);
    }
  });

  it('when the order is not awaiting approval, then approve and reject are 409', async () => {
    const { orderId } = await placeOrder(order());
    for (const action of ['approve', 'reject']) {
      const response = await app.inject({ method: 'POST', url: `/orders/${orderId}/${action}` });
      expect(response.statusCode).toBe(409);
      expect(response.json<{ type: string }>().type).toMatch(/\/order-not-awaiting-approval$/);
    }
  });
});

describe('operations', () => {
  it('when Postgres and Temporal answer, then GET /readyz is 200 ready', async () => {
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ready', checks: { postgres: 'up', temporal: 'up' } });
  });

  it('when orders were posted, then GET /metrics counts those requests', async () => {
    const response = await app.inject({ method: 'GET', url: '/metrics' });
    expect(response.body).toMatch(
      /http_request_duration_seconds_count\{route="\/orders",method="POST",status_code="202"\}/,
    );
  });
});

describe('with a saga worker: approval and cancellation end to end', () => {
  let saga: SagaHarness;
  let e2e: App;

  beforeAll(async () => {
    saga = await startSagaHarness();
    e2e = buildApp({
      pool: saga.pool,
      temporal: saga.client,
      config: loadApiConfig({
        DATABASE_URL: saga.databaseUrl,
        TEMPORAL_ADDRESS: stackEnv().temporalAddress,
        PAYLOAD_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
        TEMPORAL_TASK_QUEUE: saga.taskQueue,
        APPROVAL_THRESHOLD_CENTS: '100000',
      }),
    });
    await saga.putProduct('BIG', 150_000, 10);
  });
  afterAll(async () => {
    await e2e?.close();
    await saga?.close();
  });

  async function bigOrderAwaitingApproval(): Promise<string> {
    const response = await e2e.inject({
      method: 'POST',
      url: '/orders',
      payload: order({ items: [{ sku: 'BIG', quantity: 1 }] }),
    });
    expect(response.statusCode).toBe(202);
    const { orderId } = response.json<{ orderId: string }>();
    await saga.waitForStatus(orderId, ['AWAITING_APPROVAL']);
    return orderId;
  }

  const view = async (orderId: string) =>
    (await e2e.inject({ method: 'GET', url: `/orders/${orderId}` })).json<{
      status: string;
      failureReason: string | null;
      payment: { status: string };
    }>();

  it('when approved, then the saga goes on to COMPLETED, and a second decision is 409', async () => {
    const orderId = await bigOrderAwaitingApproval();
    const approve = await e2e.inject({ method: 'POST', url: `/orders/${orderId}/approve` });
    expect(approve.statusCode).toBe(202);
    expect(approve.json()).toEqual({ orderId, decision: 'approved' });
    const again = await e2e.inject({ method: 'POST', url: `/orders/${orderId}/reject` });
    expect(again.statusCode).toBe(409);
    await saga.waitForStatus(orderId, ['COMPLETED']);
    expect(await view(orderId)).toMatchObject({ status: 'COMPLETED', payment: { status: 'CAPTURED' } });
  });

  it('when rejected, then the order ends FAILED with approval_rejected and nothing charged', async () => {
    const orderId = await bigOrderAwaitingApproval();
    const reject = await e2e.inject({ method: 'POST', url: `/orders/${orderId}/reject` });
    expect(reject.statusCode).toBe(202);
    await saga.waitForStatus(orderId, ['FAILED']);
    expect(await view(orderId)).toMatchObject({
      failureReason: 'approval_rejected',
      payment: { status: 'NONE' },
    });
  });

  it('when cancelled while awaiting approval, then it ends CANCELLED with its stock back, and cancel is then 409', async () => {
    const before = await saga.stock('BIG');
    const orderId = await bigOrderAwaitingApproval();
    const cancel = await e2e.inject({ method: 'POST', url: `/orders/${orderId}/cancel` });
    expect(cancel.statusCode).toBe(202);
    await saga.waitForStatus(orderId, ['CANCELLED']);
    expect(await saga.stock('BIG')).toEqual(before);
    expect(await saga.eventTypes(orderId)).toEqual([
      'OrderCreated',
      'InventoryReserved',
      'InventoryReleased',
      'OrderCancelled',
    ]);
    const again = await e2e.inject({ method: 'POST', url: `/orders/${orderId}/cancel` });
    expect(again.statusCode).toBe(409);
  });
});
