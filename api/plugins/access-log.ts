import type { FastifyInstance } from 'fastify';

/**
 * One line per request, written when the response is done (Fastify's default writes two).
 * The URL is logged without its query string, which may carry customer ids.
 */
export function logRequests(app: FastifyInstance): void {
  app.addHook('onResponse', (request, reply, done) => {
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url,
        path: request.url.split('?', 1)[0],
        statusCode: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request',
    );
    done();
  });
}
