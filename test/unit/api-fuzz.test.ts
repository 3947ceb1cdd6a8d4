import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../store/pool';
import { createSagaStarter } from '../../api/orders/saga-starter';
import { buildApp, type App } from '../../api/app';
import { loadApiConfig } from '../../api/config';
import { TEST_ENCRYPTION_KEYS } from '../support/encryption';

/**
 * Property-based abuse of the HTTP edge through inject(): random bodies and headers, NUL
 * bytes, lone surrogates, huge and fractional numbers, deep nesting, `__proto__`, overlong
 * strings. Postgres and Temporal are fakes that answer like an empty catalog of known
 * prices and record every write, transaction and saga start. Whatever comes in:
 *   - never a 5xx, and every error is application/problem+json;
 *   - a body the contract calls invalid starts no saga and writes nothing;
 *   - a valid body is accepted (202, exactly one saga) or refused for an unknown sku (422).
 * Seeded, so a failure replays; a few hundred runs per property, in about a second.
 */

const SEED = 20_251_122;
const PRICES: Record<string, number> = { 'SKU-1': 1_299, 'SKU-2': 2_499, 'SKU-BIG': 60_000 };

interface Effects {
  starts: string[];
  transactions: number;
  writes: string[];
}
const effects: Effects = { starts: [], transactions: 0, writes: [] };
/** Waits for the saga starts still in flight (they follow the answer), then forgets every effect. */
const resetEffects = async (): Promise<void> => {
  await starter.settle();
  effects.starts.length = 0;
  effects.transactions = 0;
  effects.writes.length = 0;
};

/** A jsonb parameter (an object or array serialized by the code). */
function isJsonDocument(value: string): boolean {
  if (!/^[[{]/.test(value)) return false;
  try {
    JSON.parse(value);
    return true;
  } catch {
    return false;
  }
}

/** What Postgres says to a text holding U+0000 (a JSON one: 22P05), as pg reports it. */
function refuseNul(params: readonly unknown[]): void {
  for (const value of params.flat()) {
    if (typeof value !== 'string') continue;
    if (value.includes('\u0000')) {
      throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' });
    }
    if (isJsonDocument(value) && /(^|[^\\])(\\\\)*\\u0000/.test(value)) {
      throw Object.assign(new Error('unsupported Unicode escape sequence'), { code: '22P05' });
    }
  }
}

/** Answers the queries the routes make, as an empty database with a small catalog would. */
function answer(sql: string, params: readonly unknown[] = []): { rows: unknown[]; rowCount: number } {
  refuseNul(params);
  // A write: the statement itself, or one of its WITH queries (`WITH … AS (INSERT …)`).
  const write = /^\s*(?:WITH\b[\s\S]*?\(\s*)?((INSERT|UPDATE|DELETE)\b[\s\S]*)/i.exec(sql);
  if (write) effects.writes.push(write[1]!.trim().split(/\s+/).slice(0, 3).join(' '));
  if (/INSERT INTO orders\b/i.test(sql)) return { rows: [{ created: true }], rowCount: 1 };
  if (/FROM products WHERE sku = ANY/i.test(sql)) {
    const skus = params[0] as string[];
    const rows = skus.filter((sku) => sku in PRICES).map((sku) => ({ sku, price_cents: PRICES[sku] }));
    return { rows, rowCount: rows.length };
  }
  if (/UPDATE orders SET event_seq/i.test(sql)) {
    return {
      rows: [{ sequence: 1, workflow_id: 'order-x', correlation_id: null, now: new Date() }],
      rowCount: 1,
    };
  }
  if (/INSERT INTO http_idempotency_keys/i.test(sql)) {
    return { rows: [{ order_id: params[3] ?? randomUUID(), inserted: true }], rowCount: 1 };
  }
  if (/INSERT INTO products/i.test(sql)) {
    const [sku, name, priceCents, available] = params;
    return { rows: [{ sku, name, priceCents, available, reserved: 0 }], rowCount: 1 };
  }
  return { rows: [], rowCount: /^\s*(INSERT|UPDATE)/i.test(sql) ? 1 : 0 };
}

const fakePool = {
  query: (sql: string, params?: unknown[]) => Promise.resolve(answer(sql, params)),
  connect: () => {
    effects.transactions++;
    return Promise.resolve({
      query: (sql: string, params?: unknown[]) => Promise.resolve(answer(sql, params)),
      release: () => undefined,
      on: () => undefined,
      off: () => undefined,
    });
  },
  on: () => undefined,
} as unknown as Pool;

const fakeTemporal = {
  connection: { withDeadline: <T>(_deadline: number, call: () => Promise<T>) => call() },
  workflow: {
    start: (_type: string, options: { workflowId: string }) => {
      effects.starts.push(options.workflowId);
      return Promise.resolve({ workflowId: options.workflowId });
    },
    getHandle: (workflowId: string) => ({
      cancel: () => Promise.resolve(void effects.starts.push(`cancel ${workflowId}`)),
      executeUpdate: () => Promise.resolve(void effects.starts.push(`update ${workflowId}`)),
    }),
  },
  workflowService: { getSystemInfo: () => Promise.resolve({}) },
  options: { namespace: 'default' },
} as unknown as Client;

// Sagas start right after the answer; the checks wait for those starts (resetEffects).
const starter = createSagaStarter({ pool: fakePool, temporal: fakeTemporal, taskQueue: 'orders' });

let app: App;
beforeAll(async () => {
  app = buildApp({
    pool: fakePool,
    temporal: fakeTemporal,
    starter,
    // One client sends everything here: no rate limit in the way.
    config: loadApiConfig({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
      TEMPORAL_ADDRESS: '127.0.0.1:1',
      PAYLOAD_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      RATE_LIMIT_MAX: '1000000',
    }),
  });
  await app.ready();
});
afterAll(() => app.close());
beforeEach(resetEffects);

// ---------------------------------------------------------------------------------------
// What the contract calls a valid order (CONTRACT §2), written independently of the schema.

/**
 * Text Postgres cannot store as sent is not a valid value anywhere: U+0000, and an unpaired
 * surrogate (no UTF-8 form; it would be stored as U+FFFD).
 */
const storable = (value: string): boolean => !value.includes('\u0000') && !/\p{Cs}/u.test(value);
const isString = (value: unknown, min: number, max: number): value is string =>
  typeof value === 'string' && value.length >= min && value.length <= max && storable(value);
const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const onlyKeys = (value: Record<string, unknown>, allowed: string[]): boolean =>
  Object.keys(value).every((key) => allowed.includes(key));

function isValidOrder(body: unknown): boolean {
  if (!isPlainObject(body) || !onlyKeys(body, ['customerId', 'items', 'paymentToken', 'shippingAddress']))
    return false;
  const { customerId, items, paymentToken, shippingAddress: address } = body;
  if (!isString(customerId, 1, 64) || !isString(paymentToken, 1, 255)) return false;
  if (!Array.isArray(items) || items.length < 1 || items.length > 50) return false;
  const skus = new Set<string>();
  for (const item of items as unknown[]) {
    if (!isPlainObject(item) || !onlyKeys(item, ['sku', 'quantity'])) return false;
    if (!isString(item.sku, 1, 64) || skus.has(item.sku)) return false;
    skus.add(item.sku);
    const { quantity } = item;
    if (typeof quantity !== 'number' || !Number.isInteger(quantity) || quantity < 1 || quantity > 1000)
      return false;
  }
  if (
    !isPlainObject(address) ||
    !onlyKeys(address, ['name', 'line1', 'line2', 'city', 'postalCode', 'country'])
  ) {
    return false;
  }
  return (
    isString(address.name, 1, 200) &&
    isString(address.line1, 1, 200) &&
    (address.line2 === undefined || isString(address.line2, 1, 200)) &&
    isString(address.city, 1, 100) &&
    isString(address.postalCode, 1, 32) &&
    typeof address.country === 'string' &&
    /^[A-Z]{2}$/.test(address.country)
  );
}

const isValidKey = (key: unknown): boolean =>
  key === undefined ||
  (typeof key === 'string' && key.length >= 1 && key.length <= 255 && /^[\x20-\x7E]+$/.test(key));

// ---------------------------------------------------------------------------------------
// Generators

/** Strings that hurt: NUL, lone surrogates, control and astral characters, overlong ones. */
const nastyString = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    '\ud800',
    'x\udfffy',
    '\u202e',
    '🛒'.repeat(40),
    '<script>',
    "'; DROP TABLE orders;--",
  ),
  fc.integer({ min: 60, max: 300 }).map((n) => 'x'.repeat(n)),
  fc.integer({ min: 10_000, max: 60_000 }).map((n) => 'y'.repeat(n)),
);

const nastyNumber = fc.oneof(
  fc.integer({ min: -5, max: 1_005 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 0.5, 1.5, 999.999, 1e21, 2 ** 53, 2 ** 53 + 2, -(2 ** 31), 1e308, Number.MIN_VALUE),
);

const leaf = fc.oneof(nastyString, nastyNumber, fc.boolean(), fc.constant(null));
const junk = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(
    fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('sku', 'quantity', 'items')),
    tie('value'),
    {
      maxKeys: 4,
    },
  ),
})).value;

const goodString = (max: number) =>
  fc.string({ minLength: 1, maxLength: Math.min(max, 20), unit: 'grapheme-ascii' });

/** Mostly a good value, sometimes a nasty one. */
const mostly = <T>(good: fc.Arbitrary<T>, ...bad: fc.Arbitrary<unknown>[]): fc.Arbitrary<unknown> =>
  fc.oneof({ arbitrary: good, weight: 6 }, ...bad.map((arbitrary) => ({ arbitrary, weight: 1 })));

/** Mostly-valid orders with some fields replaced by something else (about a third stay valid). */
const order = fc
  .record(
    {
      customerId: mostly(goodString(64), nastyString, nastyNumber),
      items: mostly(
        fc.uniqueArray(
          fc.record({
            sku: mostly(fc.constantFrom('SKU-1', 'SKU-2', 'SKU-BIG', 'NOPE'), nastyString),
            quantity: mostly(fc.integer({ min: 1, max: 1_000 }), nastyNumber, nastyString),
          }),
          { minLength: 1, maxLength: 4, selector: (item) => item.sku },
        ),
        fc.array(fc.record({ sku: fc.constantFrom('SKU-1', 'SKU-2'), quantity: fc.constant(1) }), {
          minLength: 0,
          maxLength: 55,
        }),
        junk,
      ),
      paymentToken: mostly(fc.constantFrom('tok_ok', 'tok_declined'), nastyString),
      shippingAddress: mostly(
        fc.record(
          {
            name: mostly(goodString(200), nastyString),
            line1: goodString(200),
            line2: mostly(goodString(200), nastyString),
            city: mostly(goodString(100), nastyString),
            postalCode: mostly(goodString(32), nastyString),
            country: mostly(fc.constantFrom('US', 'ZZ', 'DE'), nastyString),
          },
          { requiredKeys: ['name', 'line1', 'city', 'postalCode', 'country'] },
        ),
        junk,
      ),
      extra: junk,
    },
    { requiredKeys: ['customerId', 'items', 'paymentToken', 'shippingAddress'] },
  )
  .chain((body) =>
    // Now and then drop a required field or keep the extra one.
    fc
      .record({
        drop: fc.oneof(
          { arbitrary: fc.constant(undefined), weight: 8 },
          fc.constantFrom('customerId', 'items', 'paymentToken', 'shippingAddress'),
        ),
        keepExtra: fc.boolean(),
      })
      .map(({ drop, keepExtra }) => {
        const copy: Record<string, unknown> = { ...body };
        if (drop) delete copy[drop];
        if (!keepExtra) delete copy.extra;
        return copy;
      }),
  );

const idempotencyKey = fc.oneof(
  fc.constant(undefined),
  fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme-ascii' }),
  fc.string({ maxLength: 300 }).filter((key) => !/[\r\n\u0000]/.test(key) && /^[\x00-\xff]*$/.test(key)),
  fc.constantFrom('', 'k'.repeat(255), 'k'.repeat(256), 'tab\there', 'caf\u00e9'),
);

const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'Application/JSON',
  'application/problem+json',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json; charset=latin1',
);

// ---------------------------------------------------------------------------------------
// Checks

type Injected = Awaited<ReturnType<App['inject']>>;

function expectNoServerError(response: Injected): void {
  if (response.statusCode >= 500) {
    throw new Error(`${response.statusCode}: ${response.body.slice(0, 300)}`);
  }
  if (response.statusCode >= 400) {
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body).not.toMatch(/\bat .+\.ts:\d+|SELECT|INSERT|node_modules/);
  }
}

function expectNothingDone(response: Injected): void {
  expect({
    status: response.statusCode,
    starts: effects.starts,
    transactions: effects.transactions,
    writes: effects.writes,
  }).toEqual({
    status: response.statusCode,
    starts: [],
    transactions: 0,
    writes: [],
  });
}

/** No order: no saga, no transaction, no write but the Idempotency-Key's own record of the refusal. */
function expectNoOrder(response: Injected): void {
  const writes = effects.writes.filter((write) => !write.includes('http_idempotency_keys'));
  expect({
    status: response.statusCode,
    starts: effects.starts,
    transactions: effects.transactions,
    writes,
  }).toEqual({
    status: response.statusCode,
    starts: [],
    transactions: 0,
    writes: [],
  });
}

// Hundreds of requests per property: seconds on a loaded 2-core machine, not jest's default 5.
jest.setTimeout(60_000);

const params = (numRuns: number) => ({ seed: SEED, numRuns, endOnFailure: true });

describe('POST /orders under fuzzing', () => {
  it('when bodies are random, then there is never a 5xx, an invalid one changes nothing and a valid one starts exactly one saga', async () => {
    await fc.assert(
      fc.asyncProperty(order, idempotencyKey, async (body, key) => {
        await resetEffects();
        const response = await app.inject({
          method: 'POST',
          url: '/orders',
          payload: body,
          headers: key === undefined ? {} : { 'idempotency-key': key },
        });
        expectNoServerError(response);
        const valid = isValidOrder(body) && isValidKey(key);
        if (!valid) {
          expect(response.statusCode).toBeGreaterThanOrEqual(400);
          expectNothingDone(response);
          return;
        }
        const skus = (body.items as Array<{ sku: string }>).map((item) => item.sku);
        const known = skus.every((sku) => sku in PRICES);
        expect(response.statusCode).toBe(known ? 202 : 422);
        if (known) expect(effects.starts).toHaveLength(1);
        else expectNoOrder(response);
      }),
      params(400),
    );
  });

  it("when a valid order's text holds NUL, lone surrogates or other odd characters, then it is refused or accepted whole, never a 5xx", async () => {
    const odd = fc.constantFrom(
      '\u0000',
      'a\u0000b',
      '\ud800',
      'x\udfff',
      '\u202e',
      '🛒',
      '\uffff',
      '\u0085',
      '\t',
      ' ',
    );
    const field = fc.constantFrom('customerId', 'paymentToken', 'name', 'line1', 'city', 'postalCode', 'sku');
    await fc.assert(
      fc.asyncProperty(
        field,
        odd,
        fc.option(fc.constant('odd-key'), { nil: undefined }),
        async (name, text, key) => {
          await resetEffects();
          const address: Record<string, string> = {
            name: 'A',
            line1: 'L',
            city: 'C',
            postalCode: 'P',
            country: 'US',
          };
          const body: Record<string, unknown> = {
            customerId: 'c-1',
            items: [{ sku: name === 'sku' ? `SKU-1${text}` : 'SKU-1', quantity: 1 }],
            paymentToken: 'tok_ok',
            shippingAddress: address,
          };
          if (name === 'customerId' || name === 'paymentToken') body[name] = `v${text}`;
          else if (name !== 'sku') address[name] = `v${text}`;
          const response = await app.inject({
            method: 'POST',
            url: '/orders',
            payload: body,
            headers: key === undefined ? {} : { 'idempotency-key': `${key}-${name}-${text.codePointAt(0)}` },
          });
          expectNoServerError(response);
          if (!storable(text)) {
            // Refused with a 400 that names the field, never stored altered.
            expect(response.statusCode).toBe(400);
            const pointer =
              name === 'sku'
                ? '/items/0/sku'
                : name === 'customerId' || name === 'paymentToken'
                  ? `/${name}`
                  : `/shippingAddress/${name}`;
            expect(
              response.json<{ errors: Array<{ field: string }> }>().errors.map((e) => e.field),
            ).toContain(pointer);
          }
          if (response.statusCode === 202) {
            expect(effects.starts).toHaveLength(1);
            expect(effects.transactions).toBe(1);
          } else {
            expectNoOrder(response);
          }
        },
      ),
      params(150),
    );
  });

  it('when raw payloads are broken JSON, NUL, lone surrogates, huge numbers, deep nesting or __proto__, then they are refused without a 5xx', async () => {
    const valid = JSON.stringify({
      customerId: 'c-1',
      items: [{ sku: 'SKU-1', quantity: 1 }],
      paymentToken: 'tok_ok',
      shippingAddress: { name: 'A', line1: 'L', city: 'C', postalCode: 'P', country: 'US' },
    });
    const raw = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.integer({ min: 1, max: valid.length - 1 }).map((cut) => valid.slice(0, cut)),
      fc.constantFrom(
        valid.replace('"c-1"', '"c-\\u0000"'),
        valid.replace('"c-1"', '"\\ud800"'),
        valid.replace('"c-1"', '"\\udc00\\ud800"'),
        valid.replace('"quantity":1', '"quantity":1e400'),
        valid.replace('"quantity":1', '"quantity":-1e400'),
        valid.replace('"quantity":1', '"quantity":1.0000000000000002'),
        valid.replace('"quantity":1', '"quantity":123456789012345678901234567890'),
        valid.replace('"quantity":1', '"quantity":1e3'),
        valid.replace('"quantity":1', '"quantity":0.1e1'),
        valid.replace('{"customerId"', '{"__proto__":{"admin":true},"customerId"'),
        valid.replace('"items":[{', '"items":[{"__proto__":{"quantity":5},'),
        valid.replace('{"customerId"', '{"constructor":{"prototype":{"admin":true}},"customerId"'),
        valid.replace('"c-1"', '"c-1","customerId":"c-2"'),
        '\ufeff' + valid,
        valid + 'garbage',
        'null',
        '[]',
        '"string"',
        '1e999',
        '{}'.padStart(60_000, ' '),
      ),
      fc.integer({ min: 1, max: 30_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
      fc.integer({ min: 1, max: 9_000 }).map((depth) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)),
      fc.integer({ min: 1, max: 30_000 }).map((depth) => '['.repeat(depth)),
    );
    await fc.assert(
      fc.asyncProperty(raw, contentType, async (payload, type) => {
        await resetEffects();
        const response = await app.inject({
          method: 'POST',
          url: '/orders',
          payload,
          headers: { 'content-type': type },
        });
        expectNoServerError(response);
        let parsed: unknown;
        try {
          parsed = JSON.parse(payload.replace(/^\ufeff/, '')); // a leading BOM may be ignored (RFC 8259)
        } catch {
          parsed = Symbol('not JSON');
        }
        const jsonType = /^application\/json\b/i.test(type);
        const hasForbiddenKey = /"__proto__"|"constructor"/.test(payload);
        if (!(jsonType && isValidOrder(parsed) && !hasForbiddenKey)) expectNothingDone(response);
      }),
      params(300),
    );
  });

  it('when headers are random, then it never fails', async () => {
    const headerValue = fc
      .string({ maxLength: 80 })
      .filter((value) => /^[\x20-\x7e\t\x80-\xff]*$/.test(value));
    const headers = fc.dictionary(
      fc.oneof(
        fc.constantFrom(
          'authorization',
          'idempotency-key',
          'x-request-id',
          'content-length',
          'accept',
          'x-forwarded-for',
          'origin',
        ),
        fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
      ),
      headerValue,
      { maxKeys: 5 },
    );
    await fc.assert(
      fc.asyncProperty(
        headers,
        fc.constantFrom('GET /orders', 'POST /orders', 'GET /healthz', 'GET /inventory/SKU-1'),
        async (extra, route) => {
          await resetEffects();
          const [method, url] = route.split(' ') as ['GET' | 'POST', string];
          const response = await app.inject({
            method,
            url,
            headers: { ...extra, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
            ...(method === 'POST' ? { payload: '{"customerId":""}' } : {}),
          });
          expectNoServerError(response);
          if (method === 'POST') expectNothingDone(response);
        },
      ),
      params(200),
    );
  });
});

describe('other routes under fuzzing', () => {
  const segment = fc.oneof(
    fc.uuid(),
    fc.string({ maxLength: 40 }).map(encodeURIComponent),
    fc.constantFrom(
      '%00',
      '%ZZ',
      '%ud800',
      '..%2F..%2Fetc',
      'a'.repeat(5_000),
      '00000000-0000-0000-0000-00000000000G',
    ),
  );
  const query = fc
    .dictionary(
      fc.constantFrom('limit', 'cursor', 'status', 'customerId', 'sort', '__proto__', 'limit[]'),
      fc.oneof(
        fc.string({ maxLength: 30 }),
        fc.constantFrom('-1', '0', '1.5', '1e3', '101', 'NaN', 'COMPLETED'),
      ),
      { maxKeys: 4 },
    )
    .map((entries) => new URLSearchParams(entries).toString());

  it('when GET, cancel, approve and reject get random ids and queries, then they never answer 5xx or start anything', async () => {
    const request = fc.oneof(
      segment.map((id) => ({ method: 'GET' as const, url: `/orders/${id}` })),
      query.map((q) => ({ method: 'GET' as const, url: `/orders?${q}` })),
      fc
        .tuple(segment, fc.constantFrom('cancel', 'approve', 'reject'))
        .map(([id, action]) => ({ method: 'POST' as const, url: `/orders/${id}/${action}` })),
      segment.map((sku) => ({ method: 'GET' as const, url: `/inventory/${sku}` })),
    );
    await fc.assert(
      fc.asyncProperty(request, fc.option(junk), async ({ method, url }, body) => {
        await resetEffects();
        const response = await app.inject({
          method,
          url,
          ...(method === 'POST' && body !== null
            ? { payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } }
            : {}),
        });
        expectNoServerError(response);
        expectNothingDone(response); // nothing exists in the fake, so nothing is ever found to act on
      }),
      params(300),
    );
  });

  it('when PUT /inventory/:sku gets random input, then it writes only a valid product', async () => {
    const product = fc.record(
      {
        name: fc.oneof(goodString(200), nastyString, nastyNumber),
        priceCents: fc.oneof(fc.integer({ min: 0, max: 1_000_000 }), nastyNumber, nastyString),
        available: fc.oneof(fc.integer({ min: 0, max: 1_000 }), nastyNumber, nastyString),
        reserved: fc.integer(),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.constantFrom('SKU-1', 'NEW'), segment), product, async (sku, body) => {
        await resetEffects();
        const response = await app.inject({ method: 'PUT', url: `/inventory/${sku}`, payload: body });
        expectNoServerError(response);
        if (response.statusCode >= 400) expectNothingDone(response);
        else expect(response.statusCode).toBe(200);
      }),
      params(200),
    );
  });
});
