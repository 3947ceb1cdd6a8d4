import type { Client } from '@temporalio/client';
import { ServiceError } from '@temporalio/client';
import type { Pool } from '../../store/pool';
import { buildApp, type App } from '../../api/app';
import { loadApiConfig } from '../../api/config';
import { decodeCursor, encodeCursor } from '../../api/orders/cursor';
import { canonicalJson, fingerprintOf } from '../../api/orders/fingerprint';
import { buildSagaInput, sagaDetails, sagaSummary } from '../../api/orders/saga-start';
import { orderBody, shippingAddress } from '../../tools/fixtures/order';

/**
 * The HTTP edge through inject(): a real Fastify app whose Postgres and Temporal are
 * fakes that fail the test if touched, so every rejection here happens before any I/O.
 */

const BASE = 'https://order-saga.dev/problems/';
const TOKEN = 'secret-token-1';

const touched: string[] = [];

/** A dependency that records and refuses any use. */
function untouchable<T>(name: string): T {
  return new Proxy(
    {},
    {
      get(_target, property) {
        // Promise resolution and inspection probe these; they are not uses.
        if (typeof property === 'symbol' || property === 'then' || property === 'toJSON') return undefined;
        touched.push(`${name}.${property}`);
        throw new Error(`${name}.${property} must not be touched`);
      },
    },
  ) as T;
}

const baseEnv = {
  DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
  TEMPORAL_ADDRESS: '127.0.0.1:1',
  PAYLOAD_ENCRYPTION: 'off',
};

function appWith(overrides: { env?: Record<string, string>; pool?: Pool; temporal?: Client } = {}): App {
  return buildApp({
    pool: overrides.pool ?? untouchable<Pool>('pool'),
    temporal: overrides.temporal ?? untouchable<Client>('temporal'),
    config: loadApiConfig({ ...baseEnv, ...overrides.env }),
  });
}

/** Loosely typed, so tests can break it in every way. */
interface LooseOrder {
  customerId?: unknown;
  items?: unknown;
  paymentToken?: unknown;
  shippingAddress: Record<string, unknown>;
  [extra: string]: unknown;
}

const validOrder = (): LooseOrder => {
  const { shippingAddress, ...rest } = orderBody({ customerId: 'c-42' });
  return { ...rest, shippingAddress: { ...shippingAddress } };
};

type Body = Record<string, unknown>;
const with_ = (patch: (order: LooseOrder) => void) => {
  const order = validOrder();
  patch(order);
  return order;
};

let app: App;
beforeAll(async () => {
  app = appWith();
  await app.ready();
});
afterAll(() => app.close());
afterEach(() => {
  expect(touched).toEqual([]);
  touched.length = 0;
});

const postOrder = (payload: unknown, target: App = app) =>
  target.inject({ method: 'POST', url: '/orders', payload: payload as Body });

function expectProblem(
  response: { statusCode: number; headers: Record<string, unknown>; json: () => unknown },
  status: number,
  slug: string,
) {
  expect(response.statusCode).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = response.json() as Body;
  expect(body).toMatchObject({
    type: BASE + slug,
    status,
    title: expect.any(String),
    detail: expect.any(String),
  });
  return body as Body & { errors?: { field: string; message: string }[] };
}

async function expectInvalidField(payload: unknown, field: string) {
  const body = expectProblem(await postOrder(payload), 400, 'validation-error');
  expect(body.errors?.map((error) => error.field)).toContain(field);
  for (const error of body.errors ?? []) expect(error.message).toEqual(expect.any(String));
}

describe('POST /orders validation', () => {
  it.each([
    ['customerId is missing', with_((o) => delete o.customerId), '/customerId'],
    ['customerId is empty', with_((o) => (o.customerId = '')), '/customerId'],
    ['customerId is 65 chars', with_((o) => (o.customerId = 'c'.repeat(65))), '/customerId'],
    ['customerId is a number', with_((o) => (o.customerId = 42)), '/customerId'],
    ['items is empty', with_((o) => (o.items = [])), '/items'],
    ['items is missing', with_((o) => delete o.items), '/items'],
    [
      'there are 51 items',
      with_((o) => (o.items = Array.from({ length: 51 }, (_, i) => ({ sku: `S-${i}`, quantity: 1 })))),
      '/items',
    ],
    ['a sku is empty', with_((o) => (o.items = [{ sku: '', quantity: 1 }])), '/items/0/sku'],
    ['a sku is 65 chars', with_((o) => (o.items = [{ sku: 'S'.repeat(65), quantity: 1 }])), '/items/0/sku'],
    ['a quantity is 0', with_((o) => (o.items = [{ sku: 'A', quantity: 0 }])), '/items/0/quantity'],
    ['a quantity is 1001', with_((o) => (o.items = [{ sku: 'A', quantity: 1001 }])), '/items/0/quantity'],
    ['a quantity is 1.5', with_((o) => (o.items = [{ sku: 'A', quantity: 1.5 }])), '/items/0/quantity'],
    [
      'a quantity is the string "2"',
      with_((o) => (o.items = [{ sku: 'A', quantity: '2' }])),
      '/items/0/quantity',
    ],
    ['an item has no quantity', with_((o) => (o.items = [{ sku: 'A' }])), '/items/0/quantity'],
    [
      'an item has an extra price',
      with_((o) => (o.items = [{ sku: 'A', quantity: 1, priceCents: 1 }])),
      '/items/0/priceCents',
    ],
    ['paymentToken is missing', with_((o) => delete o.paymentToken), '/paymentToken'],
    ['paymentToken is empty', with_((o) => (o.paymentToken = '')), '/paymentToken'],
    ['paymentToken is 256 chars', with_((o) => (o.paymentToken = 't'.repeat(256))), '/paymentToken'],
    ['shippingAddress is missing', with_((o) => delete (o as Body).shippingAddress), '/shippingAddress'],
    ['the city is missing', with_((o) => delete o.shippingAddress.city), '/shippingAddress/city'],
    [
      'the country is lower case',
      with_((o) => (o.shippingAddress.country = 'us')),
      '/shippingAddress/country',
    ],
    [
      'the country has three letters',
      with_((o) => (o.shippingAddress.country = 'USA')),
      '/shippingAddress/country',
    ],
    [
      'the address has an extra field',
      with_((o) => (o.shippingAddress.phone = '1')),
      '/shippingAddress/phone',
    ],
    ['the body has an extra field', with_((o) => (o.totalCents = 1)), '/totalCents'],
  ])('when %s, then 400 names the field', async (_case, payload, field) => {
    await expectInvalidField(payload, field);
  });

  it('when the body is an array, then 400', async () => {
    expectProblem(await postOrder([validOrder()]), 400, 'validation-error');
  });

  it('when the body is empty, then 400', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: { 'content-type': 'application/json' },
    });
    expectProblem(response, 400, 'validation-error');
  });

  it('when a sku appears twice, then 400 names the duplicate', async () => {
    const order = with_(
      (o) =>
        (o.items = [
          { sku: 'A', quantity: 1 },
          { sku: 'B', quantity: 1 },
          { sku: 'A', quantity: 2 },
        ]),
    );
    const body = expectProblem(await postOrder(order), 400, 'validation-error');
    expect(body.errors).toEqual([{ field: '/items/2/sku', message: expect.stringContaining('"A"') }]);
  });

  it.each([
    ['a NUL', '"c\\u0000x"', /U\+0000/],
    ['an unpaired surrogate', '"c\\ud800x"', /unpaired surrogate/],
  ])(
    'when a field holds %s (as JSON sends it), then 400 names the field and nothing is stored',
    async (_what, json, message) => {
      const payload = JSON.stringify(with_((o) => (o.shippingAddress.name = 'PLACE'))).replace(
        '"PLACE"',
        json,
      );
      const response = await app.inject({
        method: 'POST',
        url: '/orders',
        headers: { 'content-type': 'application/json' },
        payload,
      });
      const body = expectProblem(response, 400, 'validation-error');
      expect(body.errors).toEqual([
        { field: '/shippingAddress/name', message: expect.stringMatching(message) },
      ]);
      expect(touched).toEqual([]);
    },
  );

  it('when several fields are bad, then each is named once', async () => {
    const order = with_((o) => {
      o.customerId = '';
      o.items = [{ sku: 'A', quantity: 0 }];
    });
    const body = expectProblem(await postOrder(order), 400, 'validation-error');
    const fields = body.errors?.map((error) => error.field) ?? [];
    expect(fields).toEqual(expect.arrayContaining(['/customerId', '/items/0/quantity']));
    expect(new Set(fields).size).toBe(fields.length);
  });

  it('when the order is valid, including country "ZZ" and 50 items, then it passes validation', async () => {
    // Passing validation means reaching Postgres, which is unreachable here: 503.
    const unreachable = appWith({ pool: unreachablePool() });
    const order = with_((o) => {
      o.shippingAddress.country = 'ZZ';
      o.shippingAddress.line2 = 'Flat 2';
      o.items = Array.from({ length: 50 }, (_, i) => ({ sku: `S-${i}`, quantity: 1000 }));
    });
    const response = await postOrder(order, unreachable);
    expectProblem(response, 503, 'service-unavailable');
    await unreachable.close();
  });

  it('when the payment token is invalid, then the problem never echoes it', async () => {
    const response = await postOrder(with_((o) => (o.paymentToken = 't'.repeat(256))));
    expect(response.body).not.toContain('tttttttt');
  });
});

describe('request bodies', () => {
  it('when the body is over 64 KiB, then 413', async () => {
    const order = with_((o) => (o.customerId = 'x'.repeat(70 * 1024)));
    expectProblem(await postOrder(order), 413, 'payload-too-large');
  });

  it('when the body is not JSON by content type, then 415', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: { 'content-type': 'text/plain' },
      payload: JSON.stringify(validOrder()),
    });
    expectProblem(response, 415, 'unsupported-media-type');
  });

  it('when a body comes without a content type, then 415', async () => {
    const response = await app.inject({ method: 'POST', url: '/orders', payload: Buffer.from('{}') });
    expectProblem(response, 415, 'unsupported-media-type');
  });

  it('when the JSON is malformed, then 400', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: { 'content-type': 'application/json' },
      payload: '{"customerId": "c-42",',
    });
    expectProblem(response, 400, 'malformed-json');
  });

  it.each([
    ['__proto__', '{"customerId":"c","__proto__":{"isAdmin":true}}', '/__proto__'],
    [
      'constructor.prototype',
      '{"customerId":"c","constructor":{"prototype":{"isAdmin":true}}}',
      '/constructor/prototype',
    ],
    ['nested __proto__', '{"items":[{"sku":"S","__proto__":{"x":1}}]}', '/items/0/__proto__'],
  ])('when the body has a %s key, then 400 and errors[] names it', async (_key, payload, field) => {
    const response = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      payload,
    });
    const body = expectProblem(response, 400, 'forbidden-property');
    expect(body.errors).toEqual([{ field, message: expect.any(String) }]);
  });
});

describe('other routes reject bad input before any I/O', () => {
  it.each([
    ['GET', '/orders/not-a-uuid', '/orderId'],
    ['POST', '/orders/1234/cancel', '/orderId'],
    ['POST', '/orders/1234/approve', '/orderId'],
    ['POST', '/orders/1234/reject', '/orderId'],
    ['GET', '/orders?limit=0', '/limit'],
    ['GET', '/orders?limit=101', '/limit'],
    ['GET', '/orders?limit=ten', '/limit'],
    ['GET', '/orders?status=DONE', '/status'],
    ['GET', '/orders?cursor=not-ours', '/cursor'],
    ['GET', '/orders?sort=asc', '/sort'],
  ] as const)('%s %s → 400 naming %s', async (method, url, field) => {
    const body = expectProblem(await app.inject({ method, url }), 400, 'validation-error');
    expect(body.errors?.map((error) => error.field)).toContain(field);
  });

  it.each([
    ['priceCents is negative', { name: 'Widget', priceCents: -1, available: 1 }, '/priceCents'],
    ['priceCents is fractional', { name: 'Widget', priceCents: 1.5, available: 1 }, '/priceCents'],
    ['available is negative', { name: 'Widget', priceCents: 1, available: -1 }, '/available'],
    ['name is empty', { name: '', priceCents: 1, available: 1 }, '/name'],
    ['reserved is sent', { name: 'W', priceCents: 1, available: 1, reserved: 5 }, '/reserved'],
  ])('PUT /inventory/:sku when %s → 400', async (_case, payload, field) => {
    const response = await app.inject({ method: 'PUT', url: '/inventory/SKU-1', payload });
    const body = expectProblem(response, 400, 'validation-error');
    expect(body.errors?.map((error) => error.field)).toContain(field);
  });

  it('when a POST has a JSON content type and no body, then it is not a JSON error', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/orders/nope/cancel',
      headers: { 'content-type': 'application/json' },
    });
    expectProblem(response, 400, 'validation-error');
  });
});

describe('problem responses', () => {
  it('when the route is unknown, then the answer is a problem+json 404', async () => {
    const response = await app.inject({ method: 'GET', url: '/nowhere' });
    expectProblem(response, 404, 'not-found');
  });

  it('when validation fails, then the problem has type, title, status, detail and errors', async () => {
    const body = expectProblem(await postOrder({}), 400, 'validation-error');
    expect(Object.keys(body).sort()).toEqual(['detail', 'errors', 'status', 'title', 'type']);
  });

  it('when Postgres is unreachable, then 503 with Retry-After and nothing internal', async () => {
    const unreachable = appWith({ pool: unreachablePool() });
    const response = await unreachable.inject({ method: 'GET', url: '/inventory/SKU-1' });
    const body = expectProblem(response, 503, 'service-unavailable');
    expect(response.headers['retry-after']).toBe('5');
    expect(JSON.stringify(body)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|stack|SELECT/);
    await unreachable.close();
  });

  it('when the order cannot be committed, then POST /orders is 503 and no saga is started', async () => {
    const pool = pricingPool({ 'SKU-1': 1299 }, { connect: () => Promise.reject(connectionRefused()) });
    const starts: string[] = [];
    const unreachable = appWith({ pool: pool.fake, temporal: recordingTemporal(starts) });
    const response = await postOrder(validOrder(), unreachable);
    expectProblem(response, 503, 'service-unavailable');
    expect([response.headers['retry-after'], starts]).toEqual(['5', []]);
    await unreachable.close();
  });

  it('when a sku is not in the catalog, then 422 names it and nothing is started', async () => {
    const pool = pricingPool({ 'SKU-1': 1299 });
    const app422 = appWith({ pool: pool.fake });
    const order = with_(
      (o) =>
        (o.items = [
          { sku: 'SKU-1', quantity: 1 },
          { sku: 'NOPE', quantity: 1 },
        ]),
    );
    const body = expectProblem(await postOrder(order, app422), 422, 'unknown-sku');
    expect(body.unknownSkus).toEqual(['NOPE']);
    expect(pool.connections).toBe(0);
    await app422.close();
  });

  it('when something unexpected fails, then the answer is a bare 500', async () => {
    const broken = appWith({
      pool: { query: () => Promise.reject(new Error('relation "x" at /srv/app.ts')) } as unknown as Pool,
    });
    const response = await broken.inject({ method: 'GET', url: '/inventory/SKU-1' });
    const body = expectProblem(response, 500, 'internal-error');
    expect(JSON.stringify(body)).not.toMatch(/relation|srv|stack/);
    await broken.close();
  });
});

describe('bearer auth', () => {
  let secured: App;
  beforeAll(async () => {
    secured = appWith({ env: { API_TOKENS: `other-token, ${TOKEN}` } });
    await secured.ready();
  });
  afterAll(() => secured.close());

  it('when no tokens are configured, then no header is needed', async () => {
    expectProblem(await postOrder({}), 400, 'validation-error');
  });

  it('when the header is missing, then 401 with WWW-Authenticate: Bearer', async () => {
    const response = await postOrder(validOrder(), secured);
    expectProblem(response, 401, 'unauthorized');
    expect(response.headers['www-authenticate']).toBe('Bearer');
  });

  it.each([
    ['a wrong token', 'Bearer nope'],
    ['a prefix of the token', `Bearer ${TOKEN.slice(0, -1)}`],
    ['another scheme', `Basic ${TOKEN}`],
    ['an empty bearer', 'Bearer '],
  ])('when it carries %s, then 401', async (_case, authorization) => {
    const response = await secured.inject({
      method: 'GET',
      url: '/orders/not-a-uuid',
      headers: { authorization },
    });
    expectProblem(response, 401, 'unauthorized');
    expect(response.headers['www-authenticate']).toBe('Bearer');
  });

  it('when it carries any configured token, then the request goes on', async () => {
    for (const token of ['other-token', TOKEN]) {
      const response = await secured.inject({
        method: 'GET',
        url: '/orders/not-a-uuid',
        headers: { authorization: `Bearer ${token}` },
      });
      expectProblem(response, 400, 'validation-error');
    }
  });

  it('when the route is unknown, then the token is needed too (no route discovery)', async () => {
    expectProblem(await secured.inject({ method: 'GET', url: '/admin' }), 401, 'unauthorized');
  });

  it.each(['/healthz', '/openapi.json', '/docs', '/docs/static/index.html'])('%s is public', async (url) => {
    const response = await secured.inject({ method: 'GET', url });
    expect(response.statusCode).toBeLessThan(400);
  });

  it('when /metrics is scraped without a token, then it answers', async () => {
    const response = await secured.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('http_request_duration_seconds');
  });
});

describe('operations', () => {
  it('when the process runs, then GET /healthz is 200 {status: ok}', async () => {
    const response = await app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
  });

  it('when dependencies are down, then GET /readyz is 503 naming each', async () => {
    const down = appWith({ pool: unreachablePool(), temporal: unreachableTemporal() });
    const response = await down.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ status: 'not_ready', checks: { postgres: 'down', temporal: 'down' } });
    await down.close();
  });

  it('when only Temporal is down, then GET /readyz is 200 and its body shows Temporal down', async () => {
    const pool = { query: () => Promise.resolve({ rows: [{}], rowCount: 1 }) } as unknown as Pool;
    const app200 = appWith({ pool, temporal: unreachableTemporal() });
    const response = await app200.inject({ method: 'GET', url: '/readyz' });
    expect([response.statusCode, response.json()]).toEqual([
      200,
      { status: 'ready', checks: { postgres: 'up', temporal: 'down' } },
    ]);
    await app200.close();
  });

  it('when GET /openapi.json is asked, then it describes every route with its statuses', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{
      openapi: string;
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    }>();
    expect(spec.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.paths)).toEqual(
      expect.arrayContaining([
        '/orders',
        '/orders/{orderId}',
        '/orders/{orderId}/cancel',
        '/orders/{orderId}/approve',
        '/orders/{orderId}/reject',
        '/inventory/{sku}',
        '/healthz',
        '/readyz',
      ]),
    );
    expect(Object.keys(spec.paths['/orders']!.post!.responses)).toEqual(
      expect.arrayContaining(['202', '400', '401', '413', '415', '422', '503']),
    );
    expect(Object.keys(spec.paths['/orders/{orderId}/cancel']!.post!.responses)).toEqual(
      expect.arrayContaining(['202', '404', '409']),
    );
  });
});

describe('request ids', () => {
  it('when x-request-id is sane, then it is echoed', async () => {
    const response = await app.inject({
      method: 'GET',
      url: '/healthz',
      headers: { 'x-request-id': 'req-123' },
    });
    expect(response.headers['x-request-id']).toBe('req-123');
  });

  it('when x-request-id is insane, then it is replaced by a uuid', async () => {
    const response = await app.inject({
      method: 'GET',
      url: '/healthz',
      headers: { 'x-request-id': 'a b<script>'.repeat(20) },
    });
    expect(response.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('when the answer is an error, then it carries the id too', async () => {
    const response = await app.inject({
      method: 'GET',
      url: '/nowhere',
      headers: { 'x-request-id': 'req-404' },
    });
    expect(response.headers['x-request-id']).toBe('req-404');
  });
});

describe('Idempotency-Key header', () => {
  it.each([
    ['256 characters long', 'k'.repeat(256)],
    ['not printable ASCII', 'cl\u00e9'],
  ])('when it is %s, then 400 before any I/O', async (_case, key) => {
    const response = await app.inject({
      method: 'POST',
      url: '/orders',
      payload: validOrder(),
      headers: { 'idempotency-key': key },
    });
    const body = expectProblem(response, 400, 'validation-error');
    expect(body.errors?.map((error) => error.field)).toEqual(['/idempotency-key']);
  });

  it('when two bodies differ only in key order and whitespace, then they are "the same body"', () => {
    expect(canonicalJson({ b: [1, { d: 1, c: 2 }], a: 'x' })).toBe('{"a":"x","b":[1,{"c":2,"d":1}]}');
    expect(fingerprintOf(JSON.parse('{ "a": 1, "b": 2 }'))).toBe(fingerprintOf({ b: 2, a: 1 }));
    expect(fingerprintOf({ a: 1 })).not.toBe(fingerprintOf({ a: 2 }));
  });
});

describe('helpers', () => {
  it('when a cursor is decoded, then an encoded one round-trips and anything else is refused', () => {
    const key = { createdUs: 1_795_306_237_010_708, id: '32c4dac8-e69c-4f34-92ef-b9860896c4cf' };
    expect(decodeCursor(encodeCursor(key))).toEqual(key);
    for (const bad of [
      '',
      'not-ours',
      Buffer.from('[1]').toString('base64url'),
      Buffer.from('[1.5,"x"]').toString('base64url'),
    ]) {
      expect(decodeCursor(bad)).toBeUndefined();
    }
  });

  it('when a saga input is built, then prices come from the catalog, approval from the threshold, and the summary reads well', () => {
    const config = loadApiConfig({ ...baseEnv, APPROVAL_THRESHOLD_CENTS: '2598' });
    const body = {
      customerId: 'c-42',
      items: [
        { sku: 'SKU-1', quantity: 2 },
        { sku: 'A|B', quantity: 1 },
      ],
      paymentToken: 'tok_secret',
      shippingAddress: shippingAddress(),
    };
    const prices = new Map([
      ['SKU-1', 1299],
      ['A|B', 0],
    ]);
    const input = buildSagaInput(body, prices, { orderId: 'o-1', correlationId: 'req-1', config });
    expect(input).toMatchObject({
      totalCents: 2598,
      currency: 'USD',
      requiresApproval: true,
      approvalTimeout: '24h',
      correlationId: 'req-1',
      items: [
        { sku: 'SKU-1', quantity: 2, unitPriceCents: 1299 },
        { sku: 'A|B', quantity: 1, unitPriceCents: 0 },
      ],
    });
    expect(sagaSummary(input)).toBe('Order 3 items · $25.98 · customer c-42');
    const details = sagaDetails(input);
    expect(details).toContain('| A\\|B | 1 | $0.00 | $0.00 |');
    expect(details).not.toContain('tok_secret');
  });
});

// ---- fakes that answer ----

function connectionRefused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
}

function unreachablePool(): Pool {
  return {
    query: () => Promise.reject(connectionRefused()),
    connect: () => Promise.reject(connectionRefused()),
  } as unknown as Pool;
}

/** A pool that knows some prices and counts transactions (there must be none, unless `connect` says). */
function pricingPool(prices: Record<string, number>, { connect }: { connect?: () => Promise<never> } = {}) {
  const state = { connections: 0 };
  const fake = {
    query: (_sql: string, [skus]: [string[]]) =>
      Promise.resolve({
        rows: skus.filter((sku) => sku in prices).map((sku) => ({ sku, price_cents: prices[sku] })),
      }),
    connect: () => {
      state.connections++;
      return connect ? connect() : Promise.reject(new Error('no transactions expected'));
    },
  } as unknown as Pool;
  return {
    fake,
    get connections(): number {
      return state.connections;
    },
  };
}

/** A Temporal client that records the workflow ids it is asked to start. */
function recordingTemporal(starts: string[]): Client {
  return {
    connection: { withDeadline: (_deadline: number, call: () => Promise<unknown>) => call() },
    workflow: {
      start: (_type: string, options: { workflowId: string }) => {
        starts.push(options.workflowId);
        return Promise.resolve({});
      },
    },
  } as unknown as Client;
}

function unreachableTemporal(): Client {
  const unavailable = () =>
    new ServiceError('Failed to start Workflow', {
      cause: Object.assign(new Error('14 UNAVAILABLE: No connection established'), {
        code: 14,
        details: 'No connection established',
        metadata: {},
      }),
    });
  return {
    connection: { withDeadline: (_deadline: number, call: () => Promise<unknown>) => call() },
    workflow: { start: () => Promise.reject(unavailable()) },
    workflowService: { getSystemInfo: () => Promise.reject(unavailable()) },
  } as unknown as Client;
}
