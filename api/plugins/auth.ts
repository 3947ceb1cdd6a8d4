import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify';
import { problems } from '../problems';
import {
  authEnabled,
  createAuthenticator,
  IdentityProviderUnavailable,
  SCOPES,
  TokenRejected,
  type Authenticate,
  type AuthSettings,
  type Principal,
  type Scope,
} from './auth-sources';

export { SCOPES, type Principal, type Scope } from './auth-sources';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Who is calling, for scoping Idempotency-Keys and rate limits: `<source>:<principal>`
     * (e.g. `api-key:storefront`, `jwt:user-7`, `static:static`) for an authenticated caller,
     * else ANONYMOUS. Never a token.
     */
    caller: string;
    /** The authenticated caller (or everyone, when no auth is configured); undefined otherwise. */
    principal: Principal | undefined;
    /** Why the bearer token was not accepted, for the 401 (or 503) in preParsing. */
    authProblem: { status: 401 | 503; reason: string } | undefined;
  }
}

export const ANONYMOUS = 'anonymous';
/** The caller when no token source is configured: every scope (CONTRACT §2). */
const EVERYONE: Principal = { id: ANONYMOUS, source: 'none', scopes: new Set(SCOPES) };
const PUBLIC_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json']);

/** The security schemes of the OpenAPI document (api/plugins/openapi.ts). */
export const SECURITY_SCHEMES = {
  apiKey: {
    type: 'http',
    scheme: 'bearer',
    description:
      'A key from API_KEYS_FILE (its scopes are listed there), or a development token from API_TOKENS (every scope).',
  },
  jwt: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      'A JWT from the identity provider at AUTH_JWKS_URL (RS256 or ES256), scopes in its space-separated `scope` claim.',
  },
} as const;

/**
 * A route's scope, declared once, in its schema: `schema: { security: needs('orders:read') }`.
 * The OpenAPI document shows it, and this plugin enforces it.
 */
export const needs = (scope: Scope): Array<Record<string, Scope[]>> => [
  { apiKey: [scope] },
  { jwt: [scope] },
];

/** The scope a route's schema declares; undefined for a public route. */
export function scopeOf(schema: FastifySchema | undefined): Scope | undefined {
  const security = (schema as { security?: Array<Record<string, string[]>> } | undefined)?.security;
  const scope = security?.[0]?.apiKey?.[0];
  return scope as Scope | undefined;
}

const declaresSecurity = (schema: FastifySchema | undefined): boolean =>
  Array.isArray((schema as { security?: unknown } | undefined)?.security);

/** Probes, metrics and the API docs stay open so orchestrators and browsers can reach them. */
const isPublic = (request: FastifyRequest): boolean => {
  const route = request.routeOptions.url;
  if (route === undefined) return false;
  if (PUBLIC_ROUTES.has(route) || route === '/docs' || route.startsWith('/docs/')) return true;
  return declaresSecurity(request.routeOptions.schema) && scopeOf(request.routeOptions.schema) === undefined;
};

const BEARER = /^Bearer +(\S+) *$/i;

/**
 * Authentication and scopes (CONTRACT §2), in two steps:
 * - onRequest identifies the caller from the bearer token (auth-sources.ts);
 * - preParsing refuses, before the body is read but after the rate limit (a route-level
 *   onRequest hook, so guessing tokens is rate limited too): 401 without a valid token,
 *   503 when the identity provider's keys cannot be fetched, 403 without the route's scope.
 * Every route must declare its scope (or `security: []`, public); one that does not stops the app at ready.
 * With no token source configured every caller has every scope.
 */
export function authorizeCallers(
  app: FastifyInstance,
  settings: AuthSettings,
  options: { authenticate?: Authenticate } = {},
): void {
  app.decorateRequest('caller', ANONYMOUS);
  app.decorateRequest('principal', undefined);
  app.decorateRequest('authProblem', undefined);
  app.addHook('onRoute', (route) => {
    const methods = [route.method].flat();
    if (methods.every((method) => method === 'OPTIONS' || method === 'HEAD')) return;
    if (route.schema?.hide === true || PUBLIC_ROUTES.has(route.url) || route.url.startsWith('/docs')) return;
    if (!declaresSecurity(route.schema)) {
      throw new Error(
        `route ${methods.join(',')} ${route.url} declares no scope (schema.security: needs(…), or [] for a public route)`,
      );
    }
  });

  if (!authEnabled(settings)) {
    app.addHook('onRequest', (request, _reply, done) => {
      request.principal = EVERYONE;
      done();
    });
  } else {
    const authenticate = options.authenticate ?? createAuthenticator(settings);
    app.addHook('onRequest', async (request) => {
      const match = BEARER.exec(request.headers.authorization ?? '');
      if (!match) return;
      try {
        const principal = await authenticate(match[1]!);
        if (principal) {
          request.principal = principal;
          request.caller = `${principal.source}:${principal.id}`;
          request.log = request.log.child({ principal: principal.id });
        } else {
          request.authProblem = { status: 401, reason: 'The bearer token is not valid.' };
        }
      } catch (error) {
        if (error instanceof TokenRejected) {
          request.authProblem = { status: 401, reason: `The bearer token is not accepted: ${error.reason}.` };
        } else if (error instanceof IdentityProviderUnavailable) {
          request.log.warn({ err: error.reason }, 'identity provider keys (AUTH_JWKS_URL) unavailable');
          request.authProblem = { status: 503, reason: 'The identity provider' };
        } else {
          throw error;
        }
      }
    });
  }

  app.addHook('preParsing', (request, _reply, payload, done) => {
    if (isPublic(request)) return done(null, payload);
    const principal = request.principal;
    if (!principal) {
      const problem = request.authProblem;
      if (problem?.status === 503) return done(problems.unavailable(problem.reason));
      return done(problems.unauthorized(problem?.reason ?? 'Send the header Authorization: Bearer <token>.'));
    }
    const scope = scopeOf(request.routeOptions.schema);
    if (scope !== undefined && !principal.scopes.has(scope)) {
      request.log.info({ principal: principal.id, scope }, 'scope missing');
      return done(problems.forbidden(scope));
    }
    done(null, payload);
  });
}
