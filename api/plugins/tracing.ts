import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_URL_PATH,
} from '@opentelemetry/semantic-conventions';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's server span, when tracing is on. */
    span: Span | undefined;
  }
}

/** Probes, scrapes and the docs are not traced: they would drown the traces worth reading. */
const untraced = (route: string | undefined): boolean =>
  route === undefined ||
  route === '/healthz' ||
  route === '/readyz' ||
  route === '/metrics' ||
  route === '/openapi.json' ||
  route.startsWith('/docs');

/**
 * A SERVER span per request, named `<METHOD> <route template>` (e.g. `POST /orders`),
 * child of the caller's W3C traceparent when one is sent. The route handler runs inside
 * the span's context, so what it starts (the saga, through the Temporal client's
 * OpenTelemetry interceptor) joins the trace. Log lines of the request carry its traceId.
 * Only registered when tracing is on.
 */
export function traceRequests(app: FastifyInstance, tracer: Tracer): void {
  app.decorateRequest('span', undefined);

  app.addHook('onRoute', (route) => {
    if (untraced(route.url)) return;
    const handler = route.handler as (
      this: FastifyInstance,
      request: FastifyRequest,
      reply: FastifyReply,
    ) => unknown;
    const traced = function (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): unknown {
      const span = request.span;
      if (!span) return handler.call(this, request, reply);
      return context.with(trace.setSpan(context.active(), span), () => handler.call(this, request, reply));
    };
    route.handler = traced;
  });

  app.addHook('onRequest', (request, _reply, done) => {
    const route = request.routeOptions.url;
    if (untraced(route)) return done();
    const parent = propagation.extract(context.active(), request.headers);
    const span = tracer.startSpan(
      `${request.method} ${route}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: request.method,
          [ATTR_HTTP_ROUTE]: route,
          [ATTR_URL_PATH]: request.url.split('?', 1)[0],
          'request.id': request.id,
        },
      },
      parent,
    );
    request.span = span;
    request.log = request.log.child({ traceId: span.spanContext().traceId });
    done();
  });

  const end = (request: FastifyRequest, statusCode: number | undefined): void => {
    const span = request.span;
    if (!span?.isRecording()) return;
    if (statusCode === undefined) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'client went away' });
    } else {
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, statusCode);
      if (statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  };
  app.addHook('onResponse', (request, reply, done) => {
    end(request, reply.statusCode);
    done();
  });
  app.addHook('onRequestAbort', (request, done) => {
    end(request, undefined);
    done();
  });
}
