import type { FastifyInstance, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** The order a request concerns, once known (set by POST /orders); logged with it. */
    orderId: string | undefined;
  }
}

/** The order id of the request: set by the handler, or the :orderId of the path. */
function orderIdOf(request: FastifyRequest): string | undefined {
  if (request.orderId) return request.orderId;
  const param = (request.params as { orderId?: unknown } | undefined)?.orderId;
  return typeof param === 'string' ? param.toLowerCase() : undefined;
}

/**
 * One line per request, written when the response is done (Fastify's default writes two),
 * with the request id (every line of a request has it as `requestId`) and the order id
 * when the request concerns an order. URLs are logged without their query string, which
 * may carry customer ids. At debug level, a line per request received, headers included
 * (the Authorization header redacted, see lib/logger.ts).
 */
export function logRequests(app: FastifyInstance): void {
  app.decorateRequest('orderId', undefined);
  app.addHook('onRequest', (request, _reply, done) => {
    request.log.debug(
      { method: request.method, path: request.url.split('?', 1)[0], headers: request.headers },
      'request received',
    );
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const orderId = orderIdOf(request);
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url,
        path: request.url.split('?', 1)[0],
        statusCode: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        ...(orderId ? { orderId } : {}),
      },
      'request',
    );
    done();
  });
}
