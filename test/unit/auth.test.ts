import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { Client } from '@temporalio/client';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import pino from 'pino';
import { buildApp, type App } from '../../api/app';
import { loadApiConfig } from '../../api/config';
import { SCOPES, type Scope } from '../../api/plugins/auth';
import { createAuthenticator, readApiKeys } from '../../api/plugins/auth-sources';
import { ConfigError } from '../../lib/env';
import type { Pool } from '../../store/pool';
import { writeApiKeysFile } from '../support/api-keys';
import { orderBody } from '../../tools/fixtures/order';

/**
 * CONTRACT §2 authorization through inject(): the three token sources, 401/403/503, and the
 * scope of every route. Postgres and Temporal are unreachable fakes: a request that passes
 * authorization fails later (503/500/400), never with 401 or 403.
 */

const unreachable = <T>(): T =>
  new Proxy(
    {},
    {
      get(_target, property) {
        if (typeof property === 'symbol' || property === 'then' || property === 'toJSON') return undefined;
        throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      },
    },
  ) as T;

const ORDER_ID = '3b9f8f0e-2f4b-4c1e-9d1a-0a6d8e5f7c21';
const order = orderBody({ customerId: 'c-1', quantity: 1 });
const codecBody = { payloads: [] };

/** Every route that needs a token, with the scope it needs (CONTRACT §2). */
const ROUTES: Array<{ method: 'GET' | 'POST' | 'PUT'; url: string; scope: Scope; payload?: unknown }> = [
  { method: 'GET', url: `/orders/${ORDER_ID}`, scope: 'orders:read' },
  { method: 'GET', url: '/orders', scope: 'orders:read' },
  { method: 'GET', url: '/inventory/SKU-1', scope: 'orders:read' },
  { method: 'POST', url: '/orders', scope: 'orders:write', payload: order },
  { method: 'POST', url: `/orders/${ORDER_ID}/cancel`, scope: 'orders:write' },
  { method: 'POST', url: `/orders/${ORDER_ID}/approve`, scope: 'orders:approve' },
  { method: 'POST', url: `/orders/${ORDER_ID}/reject`, scope: 'orders:approve' },
  {
    method: 'PUT',
    url: '/inventory/SKU-1',
    scope: 'catalog:write',
    payload: { name: 'x', priceCents: 1, available: 1 },
  },
  { method: 'POST', url: '/codec/encode', scope: 'orders:read', payload: codecBody },
  { method: 'POST', url: '/codec/decode', scope: 'orders:read', payload: codecBody },
];

const KEYS = [
  { id: 'reader', token: 'key-reader-0123456789', scopes: ['orders:read'] as Scope[] },
  {
    id: 'storefront',
    token: 'key-storefront-0123456789',
    scopes: ['orders:read', 'orders:write'] as Scope[],
  },
  { id: 'approver', token: 'key-approver-0123456789', scopes: ['orders:read', 'orders:approve'] as Scope[] },
  { id: 'catalog', token: 'key-catalog-0123456789', scopes: ['catalog:write'] as Scope[] },
];
const STATIC_TOKEN = 'static-dev-token-0123456789';
const ISSUER = 'https://id.test/';
const AUDIENCE = 'order-saga-api';

// A JWKS served from a tiny local HTTP server; `jwks.keys` can be swapped (key rotation).
const jwks: { keys: JWK[] } = { keys: [] };
let server: Server;
let jwksUrl: string;
let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
let ec: Awaited<ReturnType<typeof generateKeyPair>>;
let outsider: Awaited<ReturnType<typeof generateKeyPair>>;
let rsaPublicJwk: JWK;
let app: App;
let logs = '';
let keysFile: string;

function appWith(env: Record<string, string>, options: { jwksCooldownMs?: number; log?: boolean } = {}): App {
  const config = loadApiConfig({
    DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
    TEMPORAL_ADDRESS: '127.0.0.1:1',
    PAYLOAD_ENCRYPTION: 'off',
    RATE_LIMIT_MAX: '1000000',
    ...env,
  });
  return buildApp({
    pool: unreachable<Pool>(),
    temporal: unreachable<Client>(),
    config,
    authenticate: createAuthenticator(config.auth, { jwksCooldownMs: options.jwksCooldownMs ?? 0 }),
    ...(options.log
      ? {
          logger: pino(
            { level: 'info' },
            new Writable({
              write(chunk: Buffer, _encoding, callback) {
                logs += chunk.toString();
                callback();
              },
            }),
          ),
        }
      : {}),
  });
}

beforeAll(async () => {
  rsa = await generateKeyPair('RS256', { extractable: true });
  ec = await generateKeyPair('ES256', { extractable: true });
  outsider = await generateKeyPair('RS256', { extractable: true });
  rsaPublicJwk = { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' };
  jwks.keys = [rsaPublicJwk, { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' }];
  server = createServer((_request, response) => {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(jwks));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  keysFile = writeApiKeysFile(KEYS);
  app = appWith(
    {
      API_TOKENS: STATIC_TOKEN,
      API_KEYS_FILE: keysFile,
      AUTH_JWKS_URL: jwksUrl,
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
    },
    { log: true },
  );
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await new Promise((resolve) => server?.close(resolve));
});

interface Claims {
  scope?: string;
  sub?: string | undefined;
  iss?: string;
  aud?: string;
  exp?: number;
  nbf?: number;
}
const now = () => Math.floor(Date.now() / 1000);

async function jwt(
  claims: Claims = {},
  key: 'rsa' | 'ec' | 'outsider' = 'rsa',
  kid?: string,
): Promise<string> {
  const pair = key === 'rsa' ? rsa : key === 'ec' ? ec : outsider;
  const alg = key === 'ec' ? 'ES256' : 'RS256';
  const token = new SignJWT({ scope: claims.scope ?? 'orders:read' })
    .setProtectedHeader({ alg, kid: kid ?? (key === 'ec' ? 'ec-1' : key === 'rsa' ? 'rsa-1' : 'outsider-1') })
    .setIssuer(claims.iss ?? ISSUER)
    .setAudience(claims.aud ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(claims.exp ?? now() + 300);
  if (!('sub' in claims) || claims.sub !== undefined) token.setSubject(claims.sub ?? 'user-7');
  if (claims.nbf !== undefined) token.setNotBefore(claims.nbf);
  return token.sign(pair.privateKey);
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

async function call(target: App, route: (typeof ROUTES)[number], token?: string) {
  return target.inject({
    method: route.method,
    url: route.url,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    ...(route.payload !== undefined ? { payload: route.payload as object } : {}),
  });
}
const getOrder = ROUTES[0]!;

function expectProblem(response: { statusCode: number; json: () => unknown }, status: number, slug: string) {
  expect(response.statusCode).toBe(status);
  expect((response.json() as { type: string }).type).toMatch(new RegExp(`/${slug}$`));
}

describe('the scope matrix: every route × each key', () => {
  const cases = ROUTES.flatMap((route) =>
    KEYS.map((key) => [route.method, route.url, key.id, route, key] as const),
  );
  it.each(cases)('%s %s with the %s key', async (_method, _url, _id, route, key) => {
    const response = await call(app, route, key.token);
    if (key.scopes.includes(route.scope)) {
      expect([401, 403]).not.toContain(response.statusCode);
    } else {
      expectProblem(response, 403, 'forbidden');
      expect(response.json<{ detail: string }>().detail).toContain(route.scope);
    }
  });

  it.each(ROUTES.map((route) => [route.method, route.url, route] as const))(
    '%s %s without a token is 401, with API_TOKENS passes (every scope)',
    async (_method, _url, route) => {
      const missing = await call(app, route);
      expectProblem(missing, 401, 'unauthorized');
      expect(missing.headers['www-authenticate']).toBe('Bearer');
      const staticCall = await call(app, route, STATIC_TOKEN);
      expect([401, 403]).not.toContain(staticCall.statusCode);
    },
  );

  it.each(ROUTES.map((route) => [route.method, route.url, route] as const))(
    '%s %s with a JWT: its scope claim decides',
    async (_method, _url, route) => {
      const granted = await call(app, route, await jwt({ scope: `profile ${route.scope}` }));
      expect([401, 403]).not.toContain(granted.statusCode);
      const other = SCOPES.filter((scope) => scope !== route.scope).join(' ');
      expectProblem(await call(app, route, await jwt({ scope: other })), 403, 'forbidden');
    },
  );

  it('when a route declares no scope, then the app refuses to start', async () => {
    const unscoped = appWith({ API_TOKENS: STATIC_TOKEN });
    // eslint-disable-next-line @typescript-eslint/require-await
    void unscoped.register(async (instance) => {
      instance.get('/unscoped', () => ({ ok: true }));
    });
    await expect(unscoped.ready()).rejects.toThrow(/GET \/unscoped declares no scope/);
  });

  it('when no token source is configured, then every caller has every scope', async () => {
    const open = appWith({});
    for (const route of ROUTES) expect([401, 403]).not.toContain((await call(open, route)).statusCode);
    await open.close();
  });
});

describe('JWTs', () => {
  it('when an ES256 token is valid, then the request goes on', async () => {
    expect([401, 403]).not.toContain((await call(app, getOrder, await jwt({}, 'ec'))).statusCode);
  });

  it.each<[string, () => Promise<string>, RegExp]>([
    ['expired (beyond the 30 s clock tolerance)', () => jwt({ exp: now() - 120 }), /expired/],
    ['not yet valid', () => jwt({ nbf: now() + 600 }), /not valid yet/],
    ['from another issuer', () => jwt({ iss: 'https://evil.test/' }), /iss claim/],
    ['for another audience', () => jwt({ aud: 'another-api' }), /aud claim/],
    ['without a subject', () => jwt({ sub: undefined }), /sub claim/],
    ['signed by a key not in the JWKS (unknown kid)', () => jwt({}, 'outsider'), /signing key/],
    [
      'alg none',
      () =>
        Promise.resolve(
          `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'x', iss: ISSUER, aud: AUDIENCE, exp: now() + 60, scope: 'orders:read' })}.`,
        ),
      /not a valid JWT|RS256 or ES256/,
    ],
    [
      'HS256 signed with the public key',
      () => {
        const header = b64url({ alg: 'HS256', typ: 'JWT', kid: 'rsa-1' });
        const payload = b64url({
          sub: 'x',
          iss: ISSUER,
          aud: AUDIENCE,
          exp: now() + 60,
          scope: 'orders:read',
        });
        const secret = JSON.stringify(rsaPublicJwk);
        const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
        return Promise.resolve(`${header}.${payload}.${signature}`);
      },
      /RS256 or ES256|not a valid JWT/,
    ],
    [
      'with a tampered payload',
      async () => {
        const [header, , signature] = (await jwt({ scope: 'orders:read' })).split('.');
        const payload = b64url({
          sub: 'user-7',
          iss: ISSUER,
          aud: AUDIENCE,
          exp: now() + 300,
          scope: 'orders:read orders:approve',
        });
        return `${header}.${payload}.${signature}`;
      },
      /signature does not verify/,
    ],
  ])('when the token is %s, then 401 saying why', async (_case, token, reason) => {
    const response = await call(app, getOrder, await token());
    expectProblem(response, 401, 'unauthorized');
    expect(response.json<{ detail: string }>().detail).toMatch(reason);
  });

  it('when the issuer rotates to a new key, then tokens with the new kid are accepted (the JWKS is fetched again)', async () => {
    expect([401, 403]).not.toContain((await call(app, getOrder, await jwt())).statusCode); // JWKS cached
    const rotated = await generateKeyPair('RS256', { extractable: true });
    const saved = jwks.keys;
    jwks.keys = [
      ...saved,
      { ...(await exportJWK(rotated.publicKey)), kid: 'rsa-2', alg: 'RS256', use: 'sig' },
    ];
    try {
      const token = await new SignJWT({ scope: 'orders:read' })
        .setProtectedHeader({ alg: 'RS256', kid: 'rsa-2' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject('user-8')
        .setExpirationTime(now() + 300)
        .sign(rotated.privateKey);
      expect([401, 403]).not.toContain((await call(app, getOrder, token)).statusCode);
    } finally {
      jwks.keys = saved;
    }
  });

  it('when the JWKS cannot be fetched, then 503 with Retry-After (the token may be fine; retry), not 401', async () => {
    const down = appWith({
      AUTH_JWKS_URL: 'http://127.0.0.1:1/jwks.json',
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
    });
    const response = await call(down, getOrder, await jwt());
    expectProblem(response, 503, 'service-unavailable');
    expect(response.headers['retry-after']).toBeDefined();
    await down.close();
  });
});

describe('principals', () => {
  it('when callers act, then logs name their principal and never their token', async () => {
    const token = await jwt({ sub: 'user-logged' });
    logs = '';
    await call(app, getOrder, token);
    await call(app, getOrder, KEYS[1]!.token);
    await call(app, getOrder, STATIC_TOKEN);
    await call(app, getOrder, 'an-unknown-token-0123456789');
    expect(logs).toContain('"principal":"user-logged"');
    expect(logs).toContain('"principal":"storefront"');
    expect(logs).toContain('"principal":"static"');
    for (const secret of [token, KEYS[1]!.token, STATIC_TOKEN, 'an-unknown-token-0123456789']) {
      expect(logs).not.toContain(secret);
    }
  });
});

describe('API_KEYS_FILE and AUTH_* configuration', () => {
  it('when the file holds hashes and scopes, then each key is read', () => {
    expect(readApiKeys(keysFile).map((key) => [key.id, key.scopes])).toEqual(
      KEYS.map((key) => [key.id, key.scopes]),
    );
  });

  it.each([
    [
      'an unknown scope',
      [{ id: 'a', sha256: 'a'.repeat(64), scopes: ['orders:delete'] }],
      /unknown scope "orders:delete"/,
    ],
    ['a short hash', [{ id: 'a', sha256: 'abc', scopes: ['orders:read'] }], /sha256 must be 64 hex digits/],
    ['no scopes', [{ id: 'a', sha256: 'a'.repeat(64), scopes: [] }], /at least one scope/],
    [
      'an id twice',
      [
        { id: 'a', sha256: 'a'.repeat(64), scopes: ['orders:read'] },
        { id: 'a', sha256: 'b'.repeat(64), scopes: ['orders:read'] },
      ],
      /listed twice/,
    ],
  ])('when the file has %s, then the process stops naming API_KEYS_FILE', (_case, keys, message) => {
    const file = writeApiKeysFile([]);
    writeFileSync(file, JSON.stringify({ keys }));
    expect(() => readApiKeys(file)).toThrow(ConfigError);
    expect(() => readApiKeys(file)).toThrow(/^API_KEYS_FILE: /);
    expect(() => readApiKeys(file)).toThrow(message);
  });

  it('when only some of AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE are set, then the missing one is named', () => {
    expect(() => appWith({ AUTH_JWKS_URL: jwksUrl, AUTH_ISSUER: ISSUER })).toThrow(/^AUTH_AUDIENCE: /);
  });
});
