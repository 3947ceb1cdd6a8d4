/**
 * OpenTelemetry tracing, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set: nothing is
 * installed otherwise, so an untraced process pays nothing. The API and the worker each
 * start one provider at boot (server.ts, worker/main.ts) and shut it down last, which
 * flushes the spans still buffered.
 */
import { trace, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { optionalString, url, type Env } from './env';

export interface TracingSettings {
  /** OTLP/HTTP base URL, e.g. http://collector:4318; spans go to `<endpoint>/v1/traces`. */
  endpoint: string;
  serviceName: string;
}

/**
 * OTEL_EXPORTER_OTLP_ENDPOINT (http or https) and OTEL_SERVICE_NAME, as the OpenTelemetry
 * specification names them; undefined when no endpoint is set (tracing off).
 */
export function loadTracingSettings(env: Env, defaultServiceName: string): TracingSettings | undefined {
  const endpoint = url(env, 'OTEL_EXPORTER_OTLP_ENDPOINT', ['http', 'https'], true);
  const serviceName = optionalString(env, 'OTEL_SERVICE_NAME', defaultServiceName);
  return endpoint === undefined ? undefined : { endpoint, serviceName };
}

/** The OTLP/HTTP traces URL for a base endpoint (the specification's `/v1/traces` suffix). */
export function otlpTracesUrl(endpoint: string): string {
  return `${endpoint.replace(/\/+$/, '')}/v1/traces`;
}

export interface Tracing {
  tracer: Tracer;
  resource: Resource;
  /** What finished spans go through; the worker hands it to the workflow span sink. */
  spanProcessor: SpanProcessor;
  forceFlush(): Promise<void>;
  /** Flushes and stops; spans ended later are dropped. */
  shutdown(): Promise<void>;
}

export interface StartTracingOptions {
  serviceName: string;
  /** Where spans go: an OTLP exporter in production, an in-memory one in tests. */
  exporter: SpanExporter;
  /** Batch (production) or export each span as it ends (tests). Default: batch. */
  batch?: boolean;
}

/**
 * Registers a global tracer provider (AsyncLocalStorage context, W3C trace context
 * propagation), which the Temporal OpenTelemetry interceptors use.
 */
export function startTracing({ serviceName, exporter, batch = true }: StartTracingOptions): Tracing {
  const resource = new Resource({ [ATTR_SERVICE_NAME]: serviceName });
  const spanProcessor = batch ? new BatchSpanProcessor(exporter) : new SimpleSpanProcessor(exporter);
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  provider.register();
  return {
    tracer: trace.getTracer('order-saga'),
    resource,
    spanProcessor,
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}

/** Tracing to the OTLP/HTTP collector in `settings`. */
export function startOtlpTracing(settings: TracingSettings): Tracing {
  return startTracing({
    serviceName: settings.serviceName,
    exporter: new OTLPTraceExporter({ url: otlpTracesUrl(settings.endpoint) }),
  });
}
