import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PendingStarts } from '../../store/saga-starts';

declare module 'fastify' {
  interface FastifyInstance {
    metricsRegistry: Registry;
    /** What the order routes record; the rest of the saga's metrics come from the worker. */
    orderMetrics: OrderMetrics;
  }
}

export interface OrderMetrics {
  /** A POST /orders answered 202 (not a replay): its saga was started. */
  sagaStarted(requiresApproval: boolean): void;
}

/**
 * Prometheus metrics on GET /metrics: process defaults, request durations by route
 * template (never the raw URL, which would explode cardinality), method and status, and
 * sagas started. One registry per app, so several apps (tests) can live in one process.
 * Sagas finished, their duration and compensations are the worker's (worker/saga-metrics.ts).
 */
export function exposeMetrics(app: FastifyInstance): void {
  const registry = new Registry();
  app.decorate('metricsRegistry', registry);
  collectDefaultMetrics({ register: registry });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration in seconds, by route template, method and status code',
    labelNames: ['route', 'method', 'status_code'] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const sagasStarted = new Counter({
    name: 'order_sagas_started_total',
    help: 'Order sagas started by POST /orders (202 answers, replays excluded), by whether the order needs approval',
    labelNames: ['requires_approval'] as const,
    registers: [registry],
  });
  app.decorate('orderMetrics', {
    sagaStarted: (requiresApproval: boolean) =>
      sagasStarted.inc({ requires_approval: String(requiresApproval) }),
  } satisfies OrderMetrics);

  app.addHook('onResponse', (request, reply, done) => {
    duration.observe(
      {
        route: request.routeOptions.url ?? 'unmatched',
        method: request.method,
        status_code: reply.statusCode,
      },
      reply.elapsedTime / 1000,
    );
    done();
  });

  app.get('/metrics', { schema: { hide: true }, config: { rateLimit: false } }, async (_request, reply) => {
    const text = await registry.metrics();
    return reply.type(registry.contentType).send(text);
  });
}

/**
 * Accepted orders whose saga is not yet known to have started: how many, and how long the
 * oldest has waited, as the starter last read them (no I/O at scrape time).
 */
export function exposeStarterMetrics(app: FastifyInstance, backlog: () => PendingStarts): void {
  new Gauge({
    name: 'order_saga_starts_pending',
    help: 'Accepted orders whose saga start Temporal has not confirmed yet',
    registers: [app.metricsRegistry],
    collect() {
      this.set(backlog().pending);
    },
  });
  new Gauge({
    name: 'order_saga_starts_oldest_age_seconds',
    help: 'How long the oldest pending saga start had waited since its order was accepted, at the last read',
    registers: [app.metricsRegistry],
    collect() {
      this.set(backlog().oldestAgeSeconds);
    },
  });
}
