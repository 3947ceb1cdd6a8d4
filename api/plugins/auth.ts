import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { problems } from '../problems';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Who is calling, for scoping Idempotency-Keys and rate limits: `token:<sha256 of the
     * token>` for a valid bearer token (never the token), else ANONYMOUS.
     */
    caller: string;
  }
}

export const ANONYMOUS = 'anonymous';
const PUBLIC_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json']);

/** Probes, metrics and the API docs stay open so orchestrators and browsers can reach them. */
const isPublic = (request: FastifyRequest): boolean => {
  const route = request.routeOptions.url;
  return route !== undefined && (PUBLIC_ROUTES.has(route) || route === '/docs' || route.startsWith('/docs/'));
};

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();
const BEARER = /^Bearer +(\S+) *$/i;

/**
 * Bearer auth when tokens are configured, in two steps:
 * - onRequest identifies the caller. Tokens are compared as sha256 digests with
 *   timingSafeEqual (equal lengths, constant time) against every configured token, so the
 *   time taken says nothing about which token or how much of it matched.
 * - preParsing refuses an unidentified caller (401), before the body is read but after the
 *   rate limit (a route-level onRequest hook), so guessing tokens is rate limited too.
 */
export function requireBearerToken(app: FastifyInstance, tokens: readonly string[]): void {
  app.decorateRequest('caller', ANONYMOUS);
  if (tokens.length === 0) return;
  const known = tokens.map(sha256);
  app.addHook('onRequest', (request, _reply, done) => {
    const match = BEARER.exec(request.headers.authorization ?? '');
    if (match) {
      const presented = sha256(match[1]!);
      let valid = false;
      for (const digest of known) valid = timingSafeEqual(digest, presented) || valid;
      if (valid) request.caller = `token:${presented.toString('hex')}`;
    }
    done();
  });
  app.addHook('preParsing', (request, _reply, payload, done) => {
    if (request.caller !== ANONYMOUS || isPublic(request)) return done(null, payload);
    done(
      BEARER.test(request.headers.authorization ?? '')
        ? problems.unauthorized('The bearer token is not valid.')
        : problems.unauthorized('Send the header Authorization: Bearer <token>.'),
    );
  });
}
