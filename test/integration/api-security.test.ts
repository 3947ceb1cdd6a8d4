import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import type { Browser } from 'playwright-core';
import { buildApp, type App } from '../../api/app';
import { loadApiConfig } from '../../api/config';
import { launchChromium } from '../support/chromium';
import { createTestDatabase, stackEnv, uniqueTaskQueue, type TestDatabase } from '../support/stack';
import { TEST_ENCRYPTION_KEYS, testDataConverter } from '../support/encryption';
import { writeApiKeysFile } from '../support/api-keys';

/**
 * Rate limits, security headers and CORS of the API over a real Postgres and Temporal,
 * through inject(); and the docs UI in a real headless Chromium under those headers.
 */

let db: TestDatabase;
let connection: Connection;
let client: Client;
const apps: App[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  connection = await Connection.connect({ address: stackEnv().temporalAddress });
  client = new Client({ connection, dataConverter: testDataConverter });
});

afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()));
  await connection?.close();
  await db?.drop();
});

async function appWith(env: Record<string, string>): Promise<App> {
  const app = buildApp({
    pool: db.pool,
    temporal: client,
    config: loadApiConfig({
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: stackEnv().temporalAddress,
      PAYLOAD_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      TEMPORAL_TASK_QUEUE: uniqueTaskQueue('security'),
      ...env,
    }),
  });
  apps.push(app);
  await app.ready();
  return app;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/**
 * The limiter's window is measured with Date.now(). The rate-limit tests freeze that clock
 * and move it by hand (jest fakes Date only; timers, hrtime and the event loop stay real): a
 * window can neither end between two requests on a slow machine nor need a sleep to end.
 */
const limitEnv = () => ({
  // Two principals: the budget is per principal (API_TOKENS all share the principal "static").
  API_KEYS_FILE: writeApiKeysFile([
    { id: 'a', token: 'token-a', scopes: ['orders:read', 'orders:write'] },
    { id: 'b', token: 'token-b', scopes: ['orders:read', 'orders:write'] },
  ]),
  RATE_LIMIT_MAX: '3',
  RATE_LIMIT_WINDOW: '1m',
});
const WINDOW_MS = 60_000;
const ONLY_DATE = [
  'hrtime',
  'nextTick',
  'performance',
  'queueMicrotask',
  'setImmediate',
  'clearImmediate',
  'setInterval',
  'clearInterval',
  'setTimeout',
  'clearTimeout',
] as const;

const ordersAs = (app: App, token: string, method: 'GET' | 'POST' = 'GET') =>
  app.inject({
    method,
    url: '/orders',
    headers: bearer(token),
    ...(method === 'POST' ? { payload: {} } : {}),
  });

/** A fresh app whose token-a has used up its 3 requests of the current window. */
async function tokenAOverItsLimit(): Promise<App> {
  const app = await appWith(limitEnv());
  for (let i = 0; i < 3; i++) expect((await ordersAs(app, 'token-a')).statusCode).toBe(200);
  return app;
}

describe('rate limits', () => {
  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: [...ONLY_DATE], now: new Date('2026-01-01T00:00:00Z') });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('when a token makes RATE_LIMIT_MAX requests, then each is served and the remaining budget counts down to 0', async () => {
    const app = await appWith(limitEnv());
    const remaining: Array<string | undefined> = [];
    for (let i = 0; i < 3; i++) {
      const ok = await ordersAs(app, 'token-a');
      expect(ok.statusCode).toBe(200);
      remaining.push(ok.headers['x-ratelimit-remaining'] as string | undefined);
    }
    expect(remaining).toEqual(['2', '1', '0']);
  });

  it('when a token is over its limit, then it gets a 429 problem with Retry-After the rest of the window', async () => {
    const app = await tokenAOverItsLimit();
    jest.setSystemTime(Date.now() + 15_000);
    const limited = await ordersAs(app, 'token-a');
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(limited.headers['retry-after']).toBe(String((WINDOW_MS - 15_000) / 1000));
    expect(limited.json()).toMatchObject({
      type: 'https://order-saga.dev/problems/too-many-requests',
      status: 429,
      title: 'Too many requests',
    });
  });

  it('when a token is over its limit, then a POST is refused like a GET', async () => {
    const app = await tokenAOverItsLimit();
    expect((await ordersAs(app, 'token-a', 'POST')).statusCode).toBe(429);
  });

  it('when a token is over its limit, then another token still has its own budget', async () => {
    const app = await tokenAOverItsLimit();
    expect((await ordersAs(app, 'token-b')).statusCode).toBe(200);
  });

  it('when a token is over its limit, then probes and scrapes are still answered', async () => {
    const app = await tokenAOverItsLimit();
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      for (const url of ['/healthz', '/readyz', '/metrics']) {
        statuses.push((await app.inject({ method: 'GET', url })).statusCode);
      }
    }
    expect(statuses).toEqual(Array.from({ length: 15 }, () => 200));
  });

  it('when the window has passed, then a token over its limit is served again', async () => {
    const app = await tokenAOverItsLimit();
    expect((await ordersAs(app, 'token-a')).statusCode).toBe(429);
    jest.setSystemTime(Date.now() + WINDOW_MS);
    expect((await ordersAs(app, 'token-a')).statusCode).toBe(200);
  });

  it('when the window has not quite passed, then a token over its limit is still refused', async () => {
    const app = await tokenAOverItsLimit();
    jest.setSystemTime(Date.now() + WINDOW_MS - 1);
    expect((await ordersAs(app, 'token-a')).statusCode).toBe(429);
  });

  it('when there is no token, then the budget is per client address', async () => {
    const app = await appWith({ RATE_LIMIT_MAX: '2' });
    const from = (remoteAddress: string) => app.inject({ method: 'GET', url: '/orders', remoteAddress });
    expect([(await from('10.0.0.1')).statusCode, (await from('10.0.0.1')).statusCode]).toEqual([200, 200]);
    expect((await from('10.0.0.1')).statusCode).toBe(429);
    expect((await from('10.0.0.2')).statusCode).toBe(200);
  });

  it('when wrong tokens are tried, then the attempts are limited by address as well (401, 401, then 429)', async () => {
    const app = await appWith({ API_TOKENS: 'token-a', RATE_LIMIT_MAX: '2' });
    const guess = (token: string) =>
      app.inject({ method: 'GET', url: '/orders', headers: bearer(token), remoteAddress: '10.0.0.9' });
    expect((await guess('guess-1')).statusCode).toBe(401);
    expect((await guess('guess-2')).statusCode).toBe(401);
    expect((await guess('guess-3')).statusCode).toBe(429);
  });

  it('when TRUST_PROXY is set, then clients behind the proxy are told apart by X-Forwarded-For; when it is not, then the header is ignored', async () => {
    const behind = (app: App, client: string) =>
      app.inject({
        method: 'GET',
        url: '/orders',
        remoteAddress: '10.1.1.1',
        headers: { 'x-forwarded-for': client },
      });
    const trusting = await appWith({ RATE_LIMIT_MAX: '1', TRUST_PROXY: '10.1.1.1' });
    expect((await behind(trusting, '203.0.113.1')).statusCode).toBe(200);
    expect((await behind(trusting, '203.0.113.2')).statusCode).toBe(200);
    expect((await behind(trusting, '203.0.113.1')).statusCode).toBe(429);
    const plain = await appWith({ RATE_LIMIT_MAX: '1' });
    expect((await behind(plain, '203.0.113.1')).statusCode).toBe(200);
    expect((await behind(plain, '203.0.113.2')).statusCode).toBe(429); // a spoofable header buys nothing
  });
});

describe('security headers', () => {
  it('when any response is sent (success, 401, 404), then it carries helmet headers and no X-Powered-By', async () => {
    const app = await appWith({ API_TOKENS: 'token-a' });
    const responses = [
      await app.inject({ method: 'GET', url: '/orders', headers: bearer('token-a') }),
      await app.inject({ method: 'GET', url: '/orders' }),
      await app.inject({ method: 'GET', url: '/nowhere', headers: bearer('token-a') }),
      await app.inject({ method: 'GET', url: '/healthz' }),
    ];
    expect(responses.map((r) => r.statusCode)).toEqual([200, 401, 404, 200]);
    for (const response of responses) {
      expect(response.headers).toMatchObject({
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'SAMEORIGIN',
        'referrer-policy': 'no-referrer',
        'strict-transport-security': expect.stringMatching(/max-age=\d+/),
        'content-security-policy': expect.stringContaining("default-src 'self'"),
        'cross-origin-opener-policy': 'same-origin',
      });
      expect(response.headers).not.toHaveProperty('x-powered-by');
    }
  });
});

describe('CORS', () => {
  const preflight = (app: App, origin: string) =>
    app.inject({
      method: 'OPTIONS',
      url: '/orders',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type,idempotency-key',
      },
    });

  it('when CORS_ORIGINS is unset, then no response allows another origin', async () => {
    const app = await appWith({});
    const get = await app.inject({
      method: 'GET',
      url: '/orders',
      headers: { origin: 'https://shop.example.com' },
    });
    expect(get.statusCode).toBe(200);
    expect(get.headers).not.toHaveProperty('access-control-allow-origin');
    const options = await preflight(app, 'https://shop.example.com');
    expect(options.statusCode).toBe(404);
    expect(options.headers).not.toHaveProperty('access-control-allow-origin');
  });

  it('when CORS_ORIGINS lists an origin, then its preflight passes without a token and its responses expose the API headers; other origins get nothing', async () => {
    const app = await appWith({ CORS_ORIGINS: 'https://shop.example.com', API_TOKENS: 'token-a' });
    const allowed = await preflight(app, 'https://shop.example.com');
    expect(allowed.statusCode).toBe(204);
    expect(allowed.headers['access-control-allow-origin']).toBe('https://shop.example.com');
    expect(String(allowed.headers['access-control-allow-headers']).toLowerCase()).toContain(
      'idempotency-key',
    );
    expect(String(allowed.headers['access-control-allow-methods'])).toContain('POST');

    const get = await app.inject({
      method: 'GET',
      url: '/orders',
      headers: { origin: 'https://shop.example.com', ...bearer('token-a') },
    });
    expect(get.statusCode).toBe(200);
    expect(get.headers['access-control-allow-origin']).toBe('https://shop.example.com');
    expect(String(get.headers['access-control-expose-headers'])).toContain('Location');

    const other = await preflight(app, 'https://evil.example.com');
    expect(other.headers).not.toHaveProperty('access-control-allow-origin');
    const otherGet = await app.inject({
      method: 'GET',
      url: '/orders',
      headers: { origin: 'https://evil.example.com', ...bearer('token-a') },
    });
    expect(otherGet.headers).not.toHaveProperty('access-control-allow-origin');
  });
});

describe('the docs UI under the security headers', () => {
  let browser: Browser | undefined;
  afterAll(async () => {
    await browser?.close();
  });

  it('when /docs is opened in a browser, then the UI renders the API with no Content-Security-Policy violation', async () => {
    const app = await appWith({ API_TOKENS: 'token-a' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    browser = await launchChromium();
    const page = await browser.newPage();
    const violations: string[] = [];
    page.on('console', (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) violations.push(message.text());
    });
    await page.goto(`http://127.0.0.1:${port}/docs`);
    await page.getByText('Order saga API').first().waitFor({ timeout: 30_000 });
    await page.getByText('/orders/{orderId}/cancel').first().waitFor({ timeout: 30_000 });
    expect(violations).toEqual([]);
  }, 120_000);
});
