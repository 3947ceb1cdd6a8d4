import type { FastifyInstance } from 'fastify';
import { problems } from '../problems';

/**
 * Graceful shutdown, the HTTP side. Once close() begins, the server stops accepting
 * connections and Fastify waits for requests in flight; a request that still arrives on an
 * open keep-alive connection gets a 503 problem (Retry-After, Connection: close) instead
 * of being served, and every response from then on closes its connection, so the drain
 * ends when the last request in flight is answered. (Fastify's own return503OnClosing is
 * off: its 503 is not a problem.)
 */
export function refuseWhileClosing(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (_request, _reply, done) => {
    done(closing ? problems.shuttingDown() : undefined);
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });
}
