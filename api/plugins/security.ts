import cors, { type FastifyCorsOptions } from '@fastify/cors';
import helmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';

/** Request headers a browser client may send, and response headers it may read. */
const ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-Request-Id'];
const EXPOSED_HEADERS = ['Location', 'Idempotent-Replayed', 'Retry-After', 'X-Request-Id'];

/**
 * Security headers on every response (@fastify/helmet's defaults: a strict CSP,
 * nosniff, HSTS, no referrer, …; the docs UI sets its own CSP), and CORS only when origins
 * are configured: without CORS_ORIGINS no Access-Control-* header is ever sent, so browsers
 * on other origins cannot read responses.
 */
export function secureResponses(
  app: FastifyInstance,
  corsOrigins: readonly string[],
  codecOrigins: readonly string[] = [],
): void {
  void app.register(helmet, { global: true });
  const api: FastifyCorsOptions =
    corsOrigins.length === 0
      ? { origin: false }
      : {
          origin: corsOrigins.includes('*') ? '*' : [...corsOrigins],
          methods: ['GET', 'POST', 'PUT'],
          allowedHeaders: ALLOWED_HEADERS,
          exposedHeaders: EXPOSED_HEADERS,
          maxAge: 600,
        };
  // The Temporal Web UI calls the codec from the browser with its namespace (X-Namespace),
  // and with credentials and an Authorization header when so configured.
  const codec: FastifyCorsOptions =
    codecOrigins.length === 0
      ? api
      : {
          origin: [...new Set([...codecOrigins, ...corsOrigins.filter((origin) => origin !== '*')])],
          methods: ['POST'],
          allowedHeaders: ['Authorization', 'Content-Type', 'X-Namespace', 'X-Request-Id'],
          credentials: true,
          maxAge: 600,
        };
  if (corsOrigins.length === 0 && codecOrigins.length === 0) return;
  void app.register(cors, {
    delegator: (request, callback) => callback(null, request.url.startsWith('/codec/') ? codec : api),
  });
}
