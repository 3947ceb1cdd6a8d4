import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { problems } from '../problems';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling, for scoping Idempotency-Keys: a digest of the token, never the token. */
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

/**
 * Bearer auth when tokens are configured. Tokens are compared as sha256 digests with
 * timingSafeEqual (equal lengths, constant time) against every configured token, so the
 * time taken says nothing about which token or how much of it matched.
 */
export function requireBearerToken(app: FastifyInstance, tokens: readonly string[]): void {
  app.decorateRequest('caller', ANONYMOUS);
  if (tokens.length === 0) return;
  const known = tokens.map(sha256);
  app.addHook('onRequest', (request, _reply, done) => {
    if (isPublic(request)) return done();
    const match = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '');
    if (!match) return done(problems.unauthorized('Send the header Authorization: Bearer <token>.'));
    const presented = sha256(match[1]!);
    let valid = false;
    for (const digest of known) valid = timingSafeEqual(digest, presented) || valid;
    if (!valid) return done(problems.unauthorized('The bearer token is not valid.'));
    request.caller = `token:${presented.toString('hex')}`;
    done();
  });
}
