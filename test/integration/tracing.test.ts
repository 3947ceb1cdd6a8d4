import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { DefaultLogger, makeTelemetryFilterString, NativeConnection, Runtime } from '@temporalio/worker';
import { buildApp, type App } from '../../api/app';
import { loadApiConfig } from '../../api/config';
import { createTemporalClient, type TemporalClient } from '../../api/temporal';
import { createLogger } from '../../lib/logger';
import { startTracing, type Tracing } from '../../lib/tracing';
import { createSagaWorkers, type SagaWorkers } from '../../worker/create-worker';
import type { OrderSagaResult } from '../../contracts/index';
import { eventually } from '../../tools/fixtures/eventually';
import { orderBody } from '../../tools/fixtures/order';
import { startApiProcess, startWorkerProcess, type ServiceProcess } from '../support/service-process';
import { createTestDatabase, stackEnv, uniqueTaskQueue, type TestDatabase } from '../support/stack';
import { TEST_ENCRYPTION_KEYS, testEncryptionKeys } from '../support/encryption';

/**
 * One trace from POST /orders through the saga: the API's span, the Temporal client's
 * StartWorkflow, the workflow's RunWorkflow and each activity's StartActivity/RunActivity.
 * First in one process (API through inject, a worker in the test, an in-memory exporter),
 * then across the real processes, exporting over OTLP/HTTP to a collector stub.
 */

/** The happy saga's activities and local activities (saga v4). */
const SAGA_STEPS = ['admitOrder', 'chargeAndShip', 'completeOrder'];

const order = (sku: string) => orderBody({ sku, quantity: 1 });

interface SpanView {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  service: string;
}

/** Checks one saga's trace, rooted at `root`, and returns it as "name ← parent" lines. */
function expectOneSagaTrace(spans: SpanView[], root: SpanView): string[] {
  const trace = spans.filter((span) => span.traceId === root.traceId);
  const byId = new Map(trace.map((span) => [span.spanId, span]));
  const only = (name: string): SpanView => {
    const found = trace.filter((span) => span.name === name);
    expect({ name, count: found.length }).toEqual({ name, count: 1 });
    return found[0]!;
  };
  const parentOf = (span: SpanView) => (span.parentSpanId ? byId.get(span.parentSpanId)?.name : undefined);

  const start = only('StartWorkflow:orderSaga');
  const run = only('RunWorkflow:orderSaga');
  expect(parentOf(start)).toBe(root.name);
  expect(parentOf(run)).toBe('StartWorkflow:orderSaga');
  for (const step of SAGA_STEPS) {
    const runActivity = trace.filter((span) => span.name === `RunActivity:${step}`);
    expect({ step, ran: runActivity.length > 0 }).toEqual({ step, ran: true });
    for (const span of runActivity) expect(parentOf(span)).toBe(`StartActivity:${step}`);
    for (const span of trace.filter((s) => s.name === `StartActivity:${step}`)) {
      expect(parentOf(span)).toBe('RunWorkflow:orderSaga');
    }
  }
  // No orphan: every span of the trace hangs off the root.
  for (const span of trace) {
    if (span !== root)
      expect({ span: span.name, parent: parentOf(span) !== undefined }).toEqual({
        span: span.name,
        parent: true,
      });
  }
  return trace.map((span) => `${span.service}: ${span.name} ← ${parentOf(span) ?? '(root)'}`);
}

describe('in one process, with an in-memory exporter', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  let db: TestDatabase;
  let temporal: TemporalClient;
  let app: App;
  let native: NativeConnection;
  let workers: SagaWorkers;
  let running: Promise<void>;

  beforeAll(async () => {
    const env = stackEnv();
    // Quiet: the bundler reports its modules at INFO.
    Runtime.install({
      logger: new DefaultLogger('WARN'),
      telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } },
    });
    tracing = startTracing({ serviceName: 'order-saga-test', exporter, batch: false });
    db = await createTestDatabase();
    const taskQueue = uniqueTaskQueue('tracing');
    temporal = createTemporalClient(
      { address: env.temporalAddress, namespace: 'default' },
      { traced: true, encryptionKeys: testEncryptionKeys },
    );
    app = buildApp({
      pool: db.pool,
      temporal: temporal.client,
      tracer: tracing.tracer,
      config: loadApiConfig({
        DATABASE_URL: db.url,
        TEMPORAL_ADDRESS: env.temporalAddress,
        PAYLOAD_ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
        TEMPORAL_TASK_QUEUE: taskQueue,
      }),
    });
    native = await NativeConnection.connect({ address: env.temporalAddress });
    // Bundles the workflows with the OpenTelemetry workflow interceptors (the prebuilt
    // bundle has none): this takes a while.
    workers = await createSagaWorkers({
      encryptionKeys: testEncryptionKeys,
      connection: native,
      namespace: 'default',
      taskQueue,
      pool: db.pool,
      slowPaymentMs: 4_000,
      observability: { logger: createLogger('worker', 'silent'), tracing },
    });
    running = workers.run();
  }, 240_000);

  afterAll(async () => {
    workers?.shutdown();
    await running;
    await native?.close();
    await app?.close();
    await temporal?.connection.close();
    await tracing?.shutdown();
    await db?.drop();
  });

  it('when an order is placed, then one trace runs from POST /orders through StartWorkflow, RunWorkflow and every step', async () => {
    const put = await app.inject({
      method: 'PUT',
      url: '/inventory/TRACE-1',
      payload: { name: 'Traced', priceCents: 999, available: 10 },
    });
    expect(put.statusCode).toBe(200);
    const response = await app.inject({ method: 'POST', url: '/orders', payload: order('TRACE-1') });
    expect(response.statusCode).toBe(202);
    const { workflowId } = response.json<{ workflowId: string }>();
    expect(await temporal.client.workflow.getHandle(workflowId).result()).toMatchObject<
      Partial<OrderSagaResult>
    >({
      status: 'COMPLETED',
    });
    // The workflow's spans reach the exporter through a sink, after its last activation.
    const spans = await eventually('the workflow span exported', async () => {
      await tracing.forceFlush();
      const finished = exporter.getFinishedSpans();
      return finished.some((span) => span.name === 'RunWorkflow:orderSaga') ? finished : undefined;
    });
    const views = spans.map((span: ReadableSpan): SpanView => ({
      name: span.name,
      traceId: span.spanContext().traceId,
      spanId: span.spanContext().spanId,
      parentSpanId: span.parentSpanId,
      service: String(span.resource.attributes['service.name']),
    }));
    const http = spans.filter((span) => span.name === 'POST /orders');
    expect(http).toHaveLength(1);
    expect(http[0]!.kind).toBe(SpanKind.SERVER);
    expect(http[0]!.parentSpanId).toBeUndefined();
    expect(http[0]!.attributes).toMatchObject({ 'http.route': '/orders', 'http.response.status_code': 202 });
    const root = views.find((span) => span.name === 'POST /orders')!;
    expectOneSagaTrace(views, root);
    // The catalog call is a trace of its own.
    const putSpan = views.find((span) => span.name === 'PUT /inventory/:sku');
    expect(putSpan?.traceId).not.toBe(root.traceId);
  });
});

/** An OTLP/HTTP collector stand-in: keeps every span POSTed to /v1/traces. */
async function startCollector(): Promise<{ url: string; spans: SpanView[]; close(): Promise<void> }> {
  const spans: SpanView[] = [];
  const hex = (id: string | undefined) =>
    id === undefined || id === ''
      ? undefined
      : /^[0-9a-f]+$/.test(id)
        ? id
        : Buffer.from(id, 'base64').toString('hex');
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans: Array<{
            resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
            scopeSpans: Array<{
              spans: Array<{ name: string; traceId: string; spanId: string; parentSpanId?: string }>;
            }>;
          }>;
        };
        for (const resourceSpans of body.resourceSpans) {
          const service =
            resourceSpans.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
          for (const scope of resourceSpans.scopeSpans) {
            for (const span of scope.spans) {
              spans.push({
                name: span.name,
                traceId: hex(span.traceId)!,
                spanId: hex(span.spanId)!,
                parentSpanId: hex(span.parentSpanId),
                service,
              });
            }
          }
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('across the real processes, over OTLP/HTTP', () => {
  let db: TestDatabase;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let api: ServiceProcess;
  let worker: ServiceProcess;
  let baseUrl: string;
  let logDir: string | undefined;

  beforeAll(async () => {
    const env = stackEnv();
    db = await createTestDatabase();
    collector = await startCollector();
    logDir = await mkdtemp(path.join(os.tmpdir(), 'order-saga-otlp-'));
    const shared = {
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: env.temporalAddress,
      TEMPORAL_TASK_QUEUE: uniqueTaskQueue('otlp'),
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      LOG_LEVEL: 'info', // the worker says it started at info
    };
    ({ api, baseUrl } = await startApiProcess(logDir, shared));
    // Given the prebuilt bundle, a traced worker bundles with the tracing interceptors instead.
    await startWorkerProcess(
      logDir,
      { ...shared, WORKFLOW_BUNDLE_PATH: env.workflowBundle },
      {
        timeoutMs: 180_000,
        onStart: (started) => {
          worker = started;
        },
      },
    );
  }, 240_000);

  afterAll(async () => {
    await api?.stop();
    await worker?.stop();
    await collector?.close();
    await db?.drop();
    if (logDir) await rm(logDir, { recursive: true, force: true });
  });

  it("when a caller sends a traceparent, then the API's and the worker's spans join its trace, and reach the collector by the time each process has stopped", async () => {
    const traceId = randomUUID().replaceAll('-', '');
    const callerSpanId = randomUUID().replaceAll('-', '').slice(0, 16);
    const put = await fetch(`${baseUrl}/inventory/OTLP-1`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Traced', priceCents: 999, available: 10 }),
    });
    expect(put.status).toBe(200);
    const response = await fetch(`${baseUrl}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${callerSpanId}-01` },
      body: JSON.stringify(order('OTLP-1')),
    });
    expect(response.status).toBe(202);
    const { orderId } = (await response.json()) as { orderId: string };
    await eventually(
      'the order COMPLETED',
      async () =>
        ((await (await fetch(`${baseUrl}/orders/${orderId}`)).json()) as { status: string }).status ===
        'COMPLETED',
      60_000,
    );
    // The workflow's span ends with its last activation, a moment after the order row says
    // COMPLETED; the worker's batch processor exports it within its schedule (5 s).
    await eventually(
      'the RunWorkflow span of this trace at the collector',
      () => collector.spans.some((span) => span.traceId === traceId && span.name === 'RunWorkflow:orderSaga'),
      30_000,
    );
    // Stopping flushes what the batch processors still hold.
    expect(await api.stop()).toEqual({ code: 0, signal: null });
    expect(await worker.stop()).toEqual({ code: 0, signal: null });

    const root = collector.spans.find((span) => span.name === 'POST /orders');
    expect(root).toMatchObject({ traceId, parentSpanId: callerSpanId, service: 'order-saga-api' });
    expectOneSagaTrace(collector.spans, root!);
    const services = new Set(
      collector.spans.filter((s) => s.traceId === traceId).map((s) => `${s.service} ${s.name}`),
    );
    expect([...services]).toEqual(
      expect.arrayContaining([
        'order-saga-api POST /orders',
        'order-saga-api StartWorkflow:orderSaga',
        'order-saga-worker RunWorkflow:orderSaga',
        'order-saga-worker RunActivity:chargeAndShip',
      ]),
    );
  });
});
