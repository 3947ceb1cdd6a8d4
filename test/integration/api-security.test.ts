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

describe('rate limits', () => {
  it('when a caller uses up RATE_LIMIT_MAX within the window, then it gets a 429 problem with Retry-After, another caller does not, and the window frees it again', async () => {
    const app = await appWith({
      // Two principals (the budget is per principal: API_TOKENS are all "static").
      API_KEYS_FILE: writeApiKeysFile([
        { id: 'a', token: 'token-a', scopes: ['orders:read', 'orders:write'] },
        { id: 'b', token: 'token-b', scopes: ['orders:read', 'orders:write'] },
      ]),
      RATE_LIMIT_MAX: '3',
      RATE_LIMIT_WINDOW: '2s',
    });
    for (let i = 0; i < 3; i++) {
      const ok = await app.inject({ method: 'GET', url: '/orders', headers: bearer('token-a') });
      expect(ok.statusCode).toBe(200);
      expect(ok.headers['x-ratelimit-remaining']).toBe(String(2 - i));
    }
    const limited = await app.inject({ method: 'GET', url: '/orders', headers: bearer('token-a') });
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(2);
    expect(limited.json()).toMatchObject({
      type: 'https://order-saga.dev/problems/too-many-requests',
      status: 429,
      title: 'Too many requests',
    });
    // Another caller has its own budget; a POST is limited like a GET.
    expect((await app.inject({ method: 'GET', url: '/orders', headers: bearer('token-b') })).statusCode).toBe(
      200,
    );
    expect(
      (await app.inject({ method: 'POST', url: '/orders', headers: bearer('token-a'), payload: {} }))
        .statusCode,
    ).toBe(429);
    // Probes and scrapes are never limited.
    for (let i = 0; i < 5; i++) {
      for (const url of ['/healthz', '/readyz', '/metrics']) {
        expect((await app.inject({ method: 'GET', url })).statusCode).toBe(200);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    expect((await app.inject({ method: 'GET', url: '/orders', headers: bearer('token-a') })).statusCode).toBe(
      200,
    );
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
