import { WorkflowNotFoundError } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse as InjectResponse } from 'fastify';
import { buildApp, type App } from '../../api/app';
import { loadApiConfig, type ApiConfig } from '../../api/config';
import { fingerprintOf } from '../../api/orders/fingerprint';
import { buildSagaInput, startSaga } from '../../api/orders/saga-start';
import { createSagaStarter } from '../../api/orders/saga-starter';
import { claimKey, KeyLostError, purgeExpiredKeys, recordResponse } from '../../store/idempotency-keys';
import { insertOrderIfAbsent, orderCreatedData } from '../../store/orders';
import { appendEvent } from '../../store/outbox';
import { requestSagaStart } from '../../store/saga-starts';
import { withTransaction } from '../../store/tx';
import { workflowIdFor } from '../../contracts/index';
import { startSagaHarness, type SagaHarness } from '../support/saga-harness';
import { stackEnv } from '../support/stack';
import { eventually } from '../../tools/fixtures/eventually';
import { orderBody, type OrderBody, type OrderOverrides } from '../../tools/fixtures/order';
import { TEST_ENCRYPTION_KEYS } from '../support/encryption';
import { writeApiKeysFile } from '../support/api-keys';

/**
 * Idempotency-Key (CONTRACT §2) end to end: the API with a real saga worker, Postgres,
 * Temporal and the outbox relay to NATS. Stripe's behaviour is the yardstick: one key, one
 * effect, the first answer again on a replay, a refusal while the first is in flight.
 */
jest.setTimeout(90_000);

const TOKENS = ['token-alpha', 'token-beta'] as const;
const COMPLETED_EVENTS = [
  'OrderCreated',
  'InventoryReserved',
  'PaymentCaptured',
  'ShipmentCreated',
  'OrderCompleted',
];

let saga: SagaHarness;
let app: App;
let config: ApiConfig;
const SKU = `IDEM-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  saga = await startSagaHarness();
  config = apiConfig(stackEnv().temporalAddress, saga.taskQueue);
  app = buildApp({ pool: saga.pool, temporal: saga.client, config });
  await app.ready();
  await saga.putProduct(SKU, 1299, 100_000);
});

afterAll(async () => {
  await app?.close();
  await saga?.close();
});

// ----------------------------------------------------------------------------- helpers

function apiConfig(temporalAddress: string, taskQueue: string): ApiConfig {
  return loadApiConfig({
    DATABASE_URL: 'postgres://unused@127.0.0.1:1/unused', // the pool is handed in
    TEMPORAL_ADDRESS: temporalAddress,
    PAYLOAD_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
    TEMPORAL_TASK_QUEUE: taskQueue,
    // Two callers: Idempotency-Keys are scoped per principal (the key's id).
    API_KEYS_FILE: writeApiKeysFile(
      TOKENS.map((token) => ({ id: token.replace('token-', ''), token, scopes: ['orders:read', 'orders:write'] })),
    ),
  });
}

/** The shared order fixture, on this file's product. */
const anOrder = (overrides: OrderOverrides = {}): OrderBody => orderBody({ sku: SKU, ...overrides });

function post(target: App, body: OrderBody, key: string, token: string = TOKENS[0]): Promise<InjectResponse> {
  return target.inject({
    method: 'POST',
    url: '/orders',
    payload: body,
    headers: { 'idempotency-key': key, authorization: `Bearer ${token}` },
  });
}

const orderIdOf = (response: InjectResponse): string => response.json<{ orderId: string }>().orderId;

async function count(sql: string, params: unknown[]): Promise<number> {
  const { rows } = await saga.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, params);
  return rows[0]!.n;
}

/** The saga runs (every run, open or closed) of a workflow id, once visibility has `atLeast`. */
async function runsOf(workflowId: string, atLeast = 1): Promise<string[]> {
  return eventually(
    `${atLeast} run(s) of ${workflowId} in visibility`,
    async () => {
      const runs: string[] = [];
      for await (const execution of saga.client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) {
        runs.push(execution.runId);
      }
      return runs.length >= atLeast ? runs : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
}

/** Whether Temporal has a run with this workflow id (asked directly, not through visibility). */
async function hasRun(workflowId: string): Promise<boolean> {
  try {
    await saga.client.workflow.getHandle(workflowId).describe();
    return true;
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return false;
    throw error;
  }
}

/** Saga runs started for a customer, found through the CustomerId search attribute. */
async function runsForCustomer(customerId: string): Promise<string[]> {
  return eventually(
    `a run for customer ${customerId} in visibility`,
    async () => {
      const ids: string[] = [];
      for await (const execution of saga.client.workflow.list({ query: `CustomerId = "${customerId}"` })) {
        ids.push(execution.workflowId);
      }
      return ids.length > 0 ? ids : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
}

// ------------------------------------------------------------------------------- tests

test('when 50 identical requests with one key race, then one order, one saga and one OrderCreated exist, every answer is 202 or 409, and replays are byte-identical', async () => {
  const body = anOrder();
  const key = `race-${randomUUID()}`;

  const responses = await Promise.all(Array.from({ length: 50 }, () => post(app, body, key)));

  for (const response of responses) expect([202, 409]).toContain(response.statusCode);
  const refused = responses.filter((response) => response.statusCode === 409);
  for (const response of refused) {
    expect(response.headers['retry-after']).toMatch(/^\d+$/);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.json<{ type: string }>().type).toMatch(/\/idempotency-key-in-use$/);
  }
  const accepted = responses.filter((response) => response.statusCode === 202);
  const originals = accepted.filter((response) => response.headers['idempotent-replayed'] === undefined);
  expect(originals).toHaveLength(1);
  const first = originals[0]!;
  for (const replay of accepted) expect(replay.body).toBe(first.body);

  const orderId = orderIdOf(first);
  expect(await count('orders WHERE customer_id = $1', [body.customerId])).toBe(1);
  expect(await runsForCustomer(body.customerId)).toEqual([workflowIdFor(orderId)]);
  expect(await runsOf(workflowIdFor(orderId))).toHaveLength(1);

  await saga.waitForStatus(orderId, ['COMPLETED']);
  expect(await saga.eventTypes(orderId)).toEqual(COMPLETED_EVENTS); // the stream matches the outbox
  expect(await count(`outbox WHERE aggregate_id = $1 AND type = 'OrderCreated'`, [orderId])).toBe(1);

  for (let i = 0; i < 3; i++) {
    const replay = await post(app, body, key);
    expect(replay.statusCode).toBe(202);
    expect(replay.body).toBe(first.body);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.headers.location).toBe(first.headers.location);
    expect(replay.headers['content-type']).toBe(first.headers['content-type']);
  }
  expect(await count('orders WHERE customer_id = $1', [body.customerId])).toBe(1);
});

test('when a key comes again with another body, then 422 idempotency-key-reused and no second order', async () => {
  const key = `reuse-${randomUUID()}`;
  const body = anOrder();
  expect((await post(app, body, key)).statusCode).toBe(202);

  const other = await post(app, anOrder({ customerId: body.customerId, quantity: 3 }), key);

  expect(other.statusCode).toBe(422);
  expect(other.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(other.json<{ type: string }>().type).toMatch(/\/idempotency-key-reused$/);
  expect(await count('orders WHERE customer_id = $1', [body.customerId])).toBe(1);
});

test('when two callers use the same key, then each gets an order of its own', async () => {
  const key = `shared-${randomUUID()}`;
  const body = anOrder();

  const alpha = await post(app, body, key, TOKENS[0]);
  const beta = await post(app, body, key, TOKENS[1]);

  expect([alpha.statusCode, beta.statusCode]).toEqual([202, 202]);
  expect(beta.headers['idempotent-replayed']).toBeUndefined();
  expect(orderIdOf(beta)).not.toBe(orderIdOf(alpha));
  expect(await count('orders WHERE customer_id = $1', [body.customerId])).toBe(2);
  const again = await post(app, body, key, TOKENS[1]);
  expect(again.body).toBe(beta.body);
});

test('when the first attempt fails with a 5xx, then nothing is stored and a retry with the key creates the order fixed in the key row', async () => {
  // Postgres takes the key but refuses the order's transaction (its connection slots are
  // used up): the acceptance cannot commit.
  const refusing = {
    query: saga.pool.query.bind(saga.pool),
    connect: () =>
      Promise.reject(Object.assign(new Error('sorry, too many clients already'), { code: '53300' })),
  } as unknown as typeof saga.pool;
  const failing = buildApp({ pool: refusing, temporal: saga.client, config });
  try {
    const key = `5xx-${randomUUID()}`;
    const body = anOrder();

    const failed = await post(failing, body, key);

    expect(failed.statusCode).toBe(503);
    expect(failed.headers['idempotent-replayed']).toBeUndefined();
    const { rows } = await saga.pool.query<{
      order_id: string;
      state: string;
      response_status: number | null;
    }>('SELECT order_id, state, response_status FROM http_idempotency_keys WHERE key = $1', [key]);
    expect(rows).toEqual([{ order_id: expect.any(String), state: 'IN_FLIGHT', response_status: null }]);
    const fixedOrderId = rows[0]!.order_id;
    expect(await count('orders WHERE id = $1', [fixedOrderId])).toBe(0);
    expect(await hasRun(workflowIdFor(fixedOrderId))).toBe(false);

    const retried = await post(app, body, key);

    expect(retried.statusCode).toBe(202);
    expect(retried.headers['idempotent-replayed']).toBeUndefined();
    expect(orderIdOf(retried)).toBe(fixedOrderId);
    await saga.waitForStatus(fixedOrderId, ['COMPLETED']);
    const replay = await post(app, body, key);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body).toBe(retried.body);
  } finally {
    await failing.close();
  }
});

test('when a process died holding the key before it started the saga, then the retry completes that same order', async () => {
  const key = `crash-${randomUUID()}`;
  const body = anOrder();
  const orderId = randomUUID();
  // What a dead process leaves: the key, in flight, holding the order id, its lock lapsed.
  await saga.pool.query(
    `INSERT INTO http_idempotency_keys (scope, key, fingerprint, order_id, state, locked_until, created_at)
     VALUES ($1, $2, $3, $4, 'IN_FLIGHT', now() - interval '1 second', now() - interval '1 minute')`,
    [await scopeOf(TOKENS[0]), key, fingerprintOf(body), orderId],
  );

  const retried = await post(app, body, key);

  expect(retried.statusCode).toBe(202);
  expect(orderIdOf(retried)).toBe(orderId);
  await saga.waitForStatus(orderId, ['COMPLETED']);
  expect(await runsOf(workflowIdFor(orderId))).toHaveLength(1);
  expect(await saga.eventTypes(orderId)).toEqual(COMPLETED_EVENTS);
});

test('when a process died after committing an order and before starting its saga, then a starter pass starts it once', async () => {
  const key = `crash-committed-${randomUUID()}`;
  const body = anOrder();
  const orderId = randomUUID();
  // What a process killed right after the commit leaves: the order, its OrderCreated, the
  // key's 202 and the start request, and no saga.
  const held = { scope: await scopeOf(TOKENS[0]), key, lockToken: randomUUID() };
  await saga.pool.query(
    `INSERT INTO http_idempotency_keys (scope, key, fingerprint, order_id, state, locked_until, lock_token)
     VALUES ($1, $2, $3, $4, 'IN_FLIGHT', now() + interval '30 seconds', $5)`,
    [held.scope, key, fingerprintOf(body), orderId, held.lockToken],
  );
  const input = buildSagaInput(body, new Map([[SKU, 1299]]), {
    orderId,
    correlationId: 'dead-request',
    config,
  });
  await withTransaction(saga.pool, async (tx) => {
    await insertOrderIfAbsent(tx, input);
    await appendEvent(tx, { orderId, type: 'OrderCreated', data: { ...orderCreatedData(input) } });
    await requestSagaStart(tx, input, 0);
    await recordResponse(tx, held, 202, { orderId });
  });
  expect(await hasRun(workflowIdFor(orderId))).toBe(false);
  const starter = createSagaStarter({ pool: saga.pool, temporal: saga.client, taskQueue: saga.taskQueue });

  const started = await starter.pass();

  expect(started).toBe(1);
  await saga.waitForStatus(orderId, ['COMPLETED']);
  expect([await starter.pass(), await runsOf(workflowIdFor(orderId))]).toEqual([0, [expect.anything()]]);
  expect(await saga.eventTypes(orderId)).toEqual(COMPLETED_EVENTS);
});

test('when a request lost its key to another attempt, then it cannot record its response', async () => {
  const key = `lost-${randomUUID()}`;
  const body = anOrder();
  const scope = await scopeOf(TOKENS[0]);
  const first = await claimKey(saga.pool, { scope, key }, fingerprintOf(body), randomUUID());
  // The first attempt's lock lapses and a second attempt takes the key over.
  await saga.pool.query(`UPDATE http_idempotency_keys SET locked_until = now() WHERE key = $1`, [key]);
  const second = await claimKey(saga.pool, { scope, key }, fingerprintOf(body), randomUUID());
  if (first.kind !== 'owned' || second.kind !== 'owned')
    throw new Error('both attempts should have owned the key');

  await expect(recordResponse(saga.pool, first.held, 202, { from: 'first' })).rejects.toBeInstanceOf(
    KeyLostError,
  );
  await recordResponse(saga.pool, second.held, 202, { from: 'second' });
  const { rows } = await saga.pool.query('SELECT response_body FROM http_idempotency_keys WHERE key = $1', [
    key,
  ]);
  expect(rows).toEqual([{ response_body: { from: 'second' } }]);
});

test('when keys are older than the TTL, then they are purged and the key can be used afresh', async () => {
  const scope = await scopeOf(TOKENS[0]);
  const oldKey = `old-${randomUUID()}`;
  const freshKey = `fresh-${randomUUID()}`;
  const oldBody = anOrder();
  for (const [key, age] of [
    [oldKey, '25 hours'],
    [freshKey, '23 hours'],
  ] as const) {
    await saga.pool.query(
      `INSERT INTO http_idempotency_keys (scope, key, fingerprint, order_id, state, response_status, response_body, created_at)
       VALUES ($1, $2, $3, $4, 'DONE', 202, '{}', now() - $5::interval)`,
      [scope, key, fingerprintOf(oldBody), randomUUID(), age],
    );
  }

  expect(await purgeExpiredKeys(saga.pool, 24, 1)).toBeGreaterThanOrEqual(1);

  expect(await count('http_idempotency_keys WHERE key = $1', [oldKey])).toBe(0);
  expect(await count('http_idempotency_keys WHERE key = $1', [freshKey])).toBe(1);
  const reused = await post(app, anOrder(), oldKey); // another body: fine once purged
  expect(reused.statusCode).toBe(202);
  expect(reused.headers['idempotent-replayed']).toBeUndefined();
  const stillKept = await post(app, anOrder(), freshKey);
  expect(stillKept.statusCode).toBe(422);
});

test('when the saga of one order id is started twice without any key, concurrently or after it ended, then it runs once', async () => {
  const body = anOrder();
  const orderId = randomUUID();
  const input = buildSagaInput(body, new Map([[SKU, 1299]]), { orderId, correlationId: 'no-key', config });

  await Promise.all(Array.from({ length: 5 }, () => startSaga(saga.client, config, input)));
  await startSaga(saga.client, config, input);
  const handle = saga.client.workflow.getHandle(workflowIdFor(orderId));
  await expect(handle.result()).resolves.toMatchObject({ status: 'COMPLETED' });
  await startSaga(saga.client, config, input); // closed now: still no second run

  expect(await runsOf(workflowIdFor(orderId))).toHaveLength(1);
  expect(await runsForCustomer(body.customerId)).toEqual([workflowIdFor(orderId)]);
  expect(await count(`outbox WHERE aggregate_id = $1 AND type = 'OrderCreated'`, [orderId])).toBe(1);
});

/** The scope the API gives a bearer token (its principal), as the first request stored it. */
async function scopeOf(token: string): Promise<string> {
  const key = `scope-probe-${randomUUID()}`;
  const response = await app.inject({
    method: 'POST',
    url: '/orders',
    payload: anOrder({ sku: 'NO-SUCH-SKU', quantity: 1 }),
    headers: { 'idempotency-key': key, authorization: `Bearer ${token}` },
  });
  expect(response.statusCode).toBe(422); // unknown sku: stored, nothing started
  const { rows } = await saga.pool.query<{ scope: string }>(
    'SELECT scope FROM http_idempotency_keys WHERE key = $1',
    [key],
  );
  return rows[0]!.scope;
}
