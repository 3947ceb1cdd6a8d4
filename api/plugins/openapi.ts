import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { Problem } from '../schemas/common';
import { SECURITY_SCHEMES } from './auth';

/**
 * OpenAPI 3.1 built from the routes' TypeBox schemas: the spec at /openapi.json and the
 * UI at /docs. Must be registered before the routes, whose schemas it collects.
 */
export function documentApi(app: FastifyInstance): void {
  app.addSchema(Problem);
  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Order saga API',
        version: '0.1.0',
        description:
          'Accepts orders and runs each as a Temporal saga (reserve stock, approval above a threshold, ' +
          'charge, ship, complete; compensated on failure). Errors are application/problem+json (RFC 9457). ' +
          'Every operation but the probes needs a bearer token granting its scope (orders:read, orders:write, ' +
          'orders:approve, catalog:write): 401 without a valid token, 403 without the scope.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      // Relative: the API that serves this document (clients generated from it take a base URL).
      servers: [{ url: '/', description: 'This API' }],
      // Each operation lists the scope it needs (api/plugins/auth.ts, needs(…)); the probes none.
      components: { securitySchemes: SECURITY_SCHEMES },
    },
    // Shared schemas keep their $id as their component name (Problem, not def-0).
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, index) =>
        typeof json.$id === 'string' ? json.$id : `def-${index}`,
    },
  });
  // The UI's own Content-Security-Policy replaces helmet's stricter default on its routes:
  // scripts only from here (plus the hashes of its inline ones); inline styles allowed,
  // which the UI sets from script (a hash cannot cover those, and a hash in style-src would
  // switch 'unsafe-inline' off); no upgrade-insecure-requests, so the UI also works when
  // served over plain HTTP by a host other than localhost (docker compose).
  void app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    transformStaticCSP: (header) =>
      header
        .replace(/style-src [^;]*/, "style-src 'self' 'unsafe-inline' https:")
        .replace(/\s*upgrade-insecure-requests;?/, ''),
  });
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
}
