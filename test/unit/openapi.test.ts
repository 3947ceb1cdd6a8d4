import type { Client } from '@temporalio/client';
import type { RouteOptions } from 'fastify';
import { buildApp, type App } from '../../api/app';
import { loadApiConfig } from '../../api/config';
import type { Pool } from '../../store/pool';
import { TEST_ENCRYPTION_KEYS } from '../support/encryption';

/**
 * /openapi.json as a client generator would read it: a structurally valid OpenAPI 3 document
 * (every $ref resolves, every path parameter is declared, every response described), whose
 * responses cover every status each route can give. The statuses are checked twice: by the
 * rules that make them possible (auth, rate limit, bodies, params, shutdown), and by asking
 * each route for them through inject().
 */

interface Operation {
  operationId?: string;
  parameters?: Array<{ name: string; in: string; required?: boolean; schema?: unknown }>;
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses: Record<
    string,
    {
      description?: unknown;
      headers?: Record<string, { schema?: unknown }>;
      content?: Record<string, { schema?: unknown }>;
    }
  >;
  security?: Array<Record<string, string[]>>;
}
interface Spec {
  openapi: string;
  info: { title?: unknown; version?: unknown };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas?: Record<string, unknown>; securitySchemes?: Record<string, unknown> };
  security?: Array<Record<string, string[]>>;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'];
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const TOKEN = 'docs-test-token';
const PUBLIC = new Set(['/healthz', '/readyz']);

/** A dependency no request here may reach: routes must answer before any I/O. */
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

function appWith(env: Record<string, string> = {}): App {
  return buildApp({
    pool: unreachable<Pool>(),
    temporal: unreachable<Client>(),
    config: loadApiConfig({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
      TEMPORAL_ADDRESS: '127.0.0.1:1',
      PAYLOAD_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
      ...env,
    }),
  });
}

let app: App;
let spec: Spec;
const routes: RouteOptions[] = [];

beforeAll(async () => {
  app = appWith({ API_TOKENS: TOKEN });
  app.addHook('onRoute', (route) => void routes.push(route));
  await app.ready();
  spec = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<Spec>();
});
afterAll(() => app.close());

/** Documented routes as [METHOD, fastify url, operation]. */
function documented(): Array<[string, string, Operation]> {
  return Object.entries(spec.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, operation]): [string, string, Operation] => [
        method.toUpperCase(),
        path.replace(/\{(\w+)\}/g, ':$1'),
        operation,
      ]),
  );
}

/** Every `$ref` in a value. */
function* refs(value: unknown): Generator<string> {
  if (Array.isArray(value)) for (const item of value) yield* refs(item);
  else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === '$ref' && typeof item === 'string') yield item;
      else yield* refs(item);
    }
  }
}

function resolve(pointer: string): unknown {
  if (!pointer.startsWith('#/')) return undefined;
  return pointer
    .slice(2)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], spec);
}

describe('the OpenAPI document', () => {
  it('when read, then it is OpenAPI 3 with a title, a version and paths', () => {
    expect(spec.openapi).toMatch(/^3\.[01]\.\d+$/);
    expect(typeof spec.info.title).toBe('string');
    expect(typeof spec.info.version).toBe('string');
    expect(Object.keys(spec.paths).length).toBeGreaterThan(0);
    for (const path of Object.keys(spec.paths)) expect(path).toMatch(/^\//);
  });

  it('when every $ref is followed, then it lands on a component', () => {
    const all = [...refs(spec)];
    expect(all.length).toBeGreaterThan(0);
    const dangling = all.filter((ref) => !ref.startsWith('#/components/') || resolve(ref) === undefined);
    expect(dangling).toEqual([]);
  });

  it('when an operation is read, then its parameters, responses and security are well formed', () => {
    const problems: string[] = [];
    const operationIds = new Set<string>();
    const schemes = new Set(Object.keys(spec.components.securitySchemes ?? {}));
    const checkSecurity = (at: string, security: Operation['security']) => {
      for (const requirement of security ?? []) {
        for (const name of Object.keys(requirement)) {
          if (!schemes.has(name)) problems.push(`${at}: unknown security scheme ${name}`);
        }
      }
    };
    checkSecurity('root', spec.security);
    for (const [path, item] of Object.entries(spec.paths)) {
      const templated = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]!);
      for (const [method, operation] of Object.entries(item)) {
        const at = `${method.toUpperCase()} ${path}`;
        if (!METHODS.includes(method)) {
          problems.push(`${at}: not an HTTP method`);
          continue;
        }
        if (operation.operationId) {
          if (operationIds.has(operation.operationId)) problems.push(`${at}: duplicate operationId`);
          operationIds.add(operation.operationId);
        }
        const seen = new Set<string>();
        for (const parameter of operation.parameters ?? []) {
          const key = `${parameter.in}:${parameter.name}`;
          if (seen.has(key)) problems.push(`${at}: parameter ${key} twice`);
          seen.add(key);
          if (!['query', 'header', 'path', 'cookie'].includes(parameter.in))
            problems.push(`${at}: ${key} in?`);
          if (parameter.schema === undefined) problems.push(`${at}: ${key} has no schema`);
          if (parameter.in === 'path' && parameter.required !== true)
            problems.push(`${at}: ${key} not required`);
          if (parameter.in === 'path' && !templated.includes(parameter.name))
            problems.push(`${at}: ${key} not in path`);
        }
        for (const name of templated) {
          if (!seen.has(`path:${name}`)) problems.push(`${at}: path parameter ${name} undeclared`);
        }
        for (const [type, media] of Object.entries(operation.requestBody?.content ?? {})) {
          if (media.schema === undefined) problems.push(`${at}: request ${type} has no schema`);
        }
        const statuses = Object.keys(operation.responses);
        if (statuses.length === 0) problems.push(`${at}: no responses`);
        for (const [status, response] of Object.entries(operation.responses)) {
          if (!/^([1-5]\d\d|[1-5]XX|default)$/.test(status)) problems.push(`${at}: status ${status}`);
          if (typeof response.description !== 'string' || response.description === '') {
            problems.push(`${at} ${status}: no description`);
          }
          for (const [type, media] of Object.entries(response.content ?? {})) {
            if (media.schema === undefined) problems.push(`${at} ${status}: ${type} has no schema`);
          }
          for (const [name, header] of Object.entries(response.headers ?? {})) {
            if (header.schema === undefined) problems.push(`${at} ${status}: header ${name} has no schema`);
          }
        }
        checkSecurity(at, operation.security);
      }
    }
    expect(problems).toEqual([]);
  });

  it('when the routes are listed, then every route but the hidden ones is documented, and nothing else', () => {
    const served = routes
      .filter((route) => route.schema?.hide !== true)
      .flatMap((route) =>
        (Array.isArray(route.method) ? route.method : [route.method])
          .filter((method) => method !== 'HEAD')
          .map((method) => `${method} ${route.url}`),
      )
      .sort();
    expect(served.length).toBeGreaterThan(5);
    expect(
      documented()
        .map(([method, url]) => `${method} ${url}`)
        .sort(),
    ).toEqual(served);
  });

  it('when a route can refuse, then its refusals are documented as problems, with Retry-After where sent', () => {
    const missing: string[] = [];
    for (const [method, url, operation] of documented()) {
      const route = routes.find((r) => r.url === url && [r.method].flat().includes(method as never))!;
      const schema = (route.schema ?? {}) as Record<string, unknown>;
      const rateLimited = (route.config as { rateLimit?: unknown } | undefined)?.rateLimit !== false;
      const expected = new Set<number>([503]); // every route, while the instance shuts down
      if (!PUBLIC.has(url)) expected.add(401).add(500);
      if (rateLimited) expected.add(429);
      if (schema.params || schema.querystring || schema.body || schema.headers) expected.add(400);
      if (BODY_METHODS.has(method)) expected.add(413).add(415);
      // A resource named in the path may not exist (PUT creates it).
      if (url.includes(':') && method !== 'PUT') expected.add(404);
      for (const status of expected) {
        const response = operation.responses[String(status)];
        if (!response) {
          missing.push(`${method} ${url}: ${status}`);
          continue;
        }
        if (!response.content?.['application/problem+json'])
          missing.push(`${method} ${url}: ${status} problem`);
        if ([429, 503].includes(status) && !PUBLIC.has(url) && !response.headers?.['Retry-After']) {
          missing.push(`${method} ${url}: ${status} Retry-After`);
        }
      }
      const success = Object.keys(operation.responses).filter((status) => status.startsWith('2'));
      if (success.length === 0) missing.push(`${method} ${url}: no 2xx`);
      for (const status of success) {
        if (!operation.responses[status]?.content?.['application/json'])
          missing.push(`${method} ${url}: ${status} json`);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe('statuses the routes really give', () => {
  /** A concrete URL for a route template. */
  const concrete = (url: string, params: Record<string, string> = {}) =>
    url.replace(
      /:(\w+)/g,
      (_match, name: string) =>
        params[name] ?? (name === 'orderId' ? '3b9f8f0e-2f4b-4c1e-9d1a-0a6d8e5f7c21' : 'SKU-1'),
    );

  async function observed(target: App, method: string, url: string, init: Record<string, unknown> = {}) {
    const response = await target.inject({ method: method as 'GET', url, ...init });
    return response.statusCode;
  }

  function documentedStatuses(method: string, url: string): string[] {
    const found = documented().find(([m, u]) => m === method && u === url);
    return Object.keys(found?.[2].responses ?? {});
  }

  it('when each route is called without a token, over its rate limit, with bad bodies and bad params, then each status it gives is documented', async () => {
    const limited = appWith({ API_TOKENS: TOKEN, RATE_LIMIT_MAX: '1' });
    await limited.ready();
    const undocumented: string[] = [];
    const seen = new Set<number>();
    try {
      for (const [method, url] of documented()) {
        const statuses: number[] = [];
        const auth = { authorization: `Bearer ${TOKEN}` };
        statuses.push(await observed(app, method, concrete(url)));
        if (url.includes(':')) {
          statuses.push(
            await observed(app, method, concrete(url, { orderId: 'not-a-uuid', sku: 'x'.repeat(65) }), {
              headers: auth,
            }),
          );
        }
        if (BODY_METHODS.has(method)) {
          statuses.push(
            await observed(app, method, concrete(url), {
              headers: { ...auth, 'content-type': 'text/plain' },
              payload: 'hello',
            }),
            await observed(app, method, concrete(url), {
              headers: { ...auth, 'content-type': 'application/json' },
              payload: JSON.stringify({ pad: 'x'.repeat(70 * 1024) }),
            }),
            await observed(app, method, concrete(url), {
              headers: { ...auth, 'content-type': 'application/json' },
              payload: '{"not json',
            }),
          );
        }
        // Twice over a limit of one: the second is refused unless the route is exempt.
        for (let i = 0; i < 2; i++)
          statuses.push(await observed(limited, method, concrete(url), { headers: auth }));
        for (const status of statuses) {
          seen.add(status);
          if (!documentedStatuses(method, url).includes(String(status)))
            undocumented.push(`${method} ${url}: ${status}`);
        }
      }
    } finally {
      await limited.close();
    }
    expect(undocumented).toEqual([]);
    // The probes did reach the statuses they aim at.
    expect([...seen]).toEqual(expect.arrayContaining([400, 401, 413, 415, 429]));
  });
});
