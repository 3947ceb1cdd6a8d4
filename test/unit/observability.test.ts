import { Writable } from 'node:stream';
import { loadApiConfig } from '../../api/config';
import { createLogger, REDACTED, scrubSecrets } from '../../lib/logger';
import { loadTracingSettings, otlpTracesUrl } from '../../lib/tracing';
import { loadWorkerConfig } from '../../worker/config';
import { sagaEnding } from '../../worker/saga-observer';
import { writeTemporalEntry } from '../../worker/temporal-logger';

/** A pino logger whose JSON lines land in `lines`. */
function capturing(level = 'trace') {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger('test', level, sink);
  return { logger, lines, parsed: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe('log redaction', () => {
  it('when secrets sit where the API and the worker put them, then none is written', () => {
    const { logger, lines } = capturing();
    logger.info({ req: { headers: { authorization: 'Bearer s3cret-token', cookie: 'sid=abc' } } }, 'api');
    logger.debug({ headers: { authorization: 'Bearer s3cret-token' } }, 'request received');
    logger.debug({ input: { orderId: 'o-1', paymentToken: 'tok_visa_4242' } }, 'saga step started');
    logger.debug({ input: { orderId: 'o-1', input: { paymentToken: 'tok_visa_4242' } } }, 'createOrder');
    logger.debug({ args: [{ paymentToken: 'tok_visa_4242' }] }, 'args');
    logger.info({ body: { paymentToken: 'tok_visa_4242' }, password: 'hunter2' }, 'body');
    logger.debug({ input: { input: { shippingAddress: { line1: '1 Secret Lane' } } } }, 'createOrder');
    logger.debug({ input: { address: { line1: '1 Secret Lane' } } }, 'createShipment');
    const text = lines.join('\n');
    expect(lines).toHaveLength(8);
    expect(text).not.toMatch(/s3cret-token|sid=abc|tok_visa|hunter2|Secret Lane/);
    expect(text.split(REDACTED).length - 1).toBeGreaterThanOrEqual(8);
  });

  it('when a secret slips into free text, then the line is scrubbed', () => {
    const { logger, lines } = capturing();
    logger.warn(
      { err: new Error('gateway refused tok_visa_4242 for Authorization: Bearer abc.def') },
      'charge failed',
    );
    logger.info('retrying with bearer xyz');
    expect(lines.join('\n')).not.toMatch(/tok_visa|abc\.def|xyz/);
    expect(scrubSecrets('"paymentToken is tok_ok; Bearer 123"')).toBe(
      `"paymentToken is ${REDACTED}; Bearer ${REDACTED}"`,
    );
  });

  it('when nothing secret is logged, then the line is untouched', () => {
    const { logger, parsed } = capturing();
    logger.info({ orderId: 'o-1', auth: 'bearer', status: 'COMPLETED' }, 'saga finished');
    expect(parsed()[0]).toMatchObject({
      orderId: 'o-1',
      auth: 'bearer',
      status: 'COMPLETED',
      msg: 'saga finished',
    });
  });
});

describe('Temporal log entries through pino', () => {
  const orderId = '5b0c1e2a-3f4d-4a5b-8c6d-7e8f9a0b1c2d';

  it('when an entry concerns an order saga, then the line carries orderId and workflowId', () => {
    const { logger, parsed } = capturing();
    writeTemporalEntry(logger, {
      level: 'INFO',
      message: 'Activity completed',
      timestampNanos: 0n,
      meta: { workflowId: `order-${orderId}`, activityType: 'chargePayment', sdkComponent: 'activity' },
    });
    expect(parsed()[0]).toMatchObject({
      level: 30,
      msg: 'Activity completed',
      workflowId: `order-${orderId}`,
      orderId,
      activityType: 'chargePayment',
    });
  });

  it('when an entry carries an error, then it is written as err, at its level', () => {
    const { logger, parsed } = capturing();
    writeTemporalEntry(logger, {
      level: 'WARN',
      message: 'Activity failed',
      timestampNanos: 0n,
      meta: { error: new Error('boom'), workflowId: 'not-an-order' },
    });
    const [line] = parsed();
    expect(line).toMatchObject({ level: 40, err: { message: 'boom', type: 'Error' } });
    expect(line).not.toHaveProperty('orderId');
  });

  it('when the logger level is higher, then lower entries are dropped', () => {
    const { logger, lines } = capturing('warn');
    writeTemporalEntry(logger, { level: 'DEBUG', message: 'noise', timestampNanos: 0n });
    expect(lines).toEqual([]);
  });
});

describe('how a saga ends, seen from its activities', () => {
  it('when completeOrder succeeds, then the saga is COMPLETED', () => {
    expect(sagaEnding('completeOrder', { orderId: 'o' }, { ok: true })).toEqual({
      status: 'COMPLETED',
      failureReason: null,
    });
  });

  it('when cancelOrder succeeds, then the saga ends as the workflow told it', () => {
    expect(
      sagaEnding('cancelOrder', { orderId: 'o', outcome: 'FAILED', failureReason: 'payment_declined' }, null),
    ).toEqual({ status: 'FAILED', failureReason: 'payment_declined' });
    expect(
      sagaEnding('cancelOrder', { orderId: 'o', outcome: 'CANCELLED', failureReason: null }, null),
    ).toEqual({
      status: 'CANCELLED',
      failureReason: null,
    });
  });

  it('when any other step succeeds, then the saga goes on', () => {
    for (const step of [
      'createOrder',
      'reserveInventory',
      'chargePayment',
      'releaseInventory',
      'markOrderStatus',
    ]) {
      expect(sagaEnding(step, { orderId: 'o' }, { ok: true })).toBeUndefined();
    }
  });
});

describe('configuration of the production features', () => {
  const base = {
    DATABASE_URL: 'postgres://postgres@db:5432/orders',
    TEMPORAL_ADDRESS: 'temporal:7233',
    PAYLOAD_ENCRYPTION: 'off',
  };

  it('when nothing is set, then the rate limit is generous, CORS off, no proxy trusted, tracing and metrics off', () => {
    const api = loadApiConfig(base);
    expect(api.rateLimit).toEqual({ max: 1_000, windowMs: 60_000 });
    expect(api.corsOrigins).toEqual([]);
    expect(api.trustProxy).toBe(false);
    expect(api.tracing).toBeUndefined();
    const worker = loadWorkerConfig(base);
    expect(worker.metrics).toEqual({ host: '127.0.0.1' });
    expect(worker.shutdownGraceMs).toBe(10_000);
    expect(worker.tracing).toBeUndefined();
  });

  it('when set, then they are read as given', () => {
    const api = loadApiConfig({
      ...base,
      RATE_LIMIT_MAX: '50',
      RATE_LIMIT_WINDOW: '10s',
      CORS_ORIGINS: 'https://shop.example.com, http://localhost:5173',
      TRUST_PROXY: '10.0.0.0/8,loopback',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
    });
    expect(api.rateLimit).toEqual({ max: 50, windowMs: 10_000 });
    expect(api.corsOrigins).toEqual(['https://shop.example.com', 'http://localhost:5173']);
    expect(api.trustProxy).toEqual(['10.0.0.0/8', 'loopback']);
    expect(api.tracing).toEqual({ endpoint: 'http://collector:4318/', serviceName: 'order-saga-api' });
    expect(loadApiConfig({ ...base, TRUST_PROXY: '2' }).trustProxy).toBe(2);
    const worker = loadWorkerConfig({
      ...base,
      WORKER_METRICS_PORT: '9464',
      WORKER_SDK_METRICS_PORT: '9465',
      WORKER_METRICS_HOST: '0.0.0.0',
      WORKER_SHUTDOWN_GRACE: '30s',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example.com',
      OTEL_SERVICE_NAME: 'saga-worker-eu',
    });
    expect(worker.metrics).toEqual({ host: '0.0.0.0', port: 9464, sdkPort: 9465 });
    expect(worker.shutdownGraceMs).toBe(30_000);
    expect(worker.tracing).toEqual({ endpoint: 'https://otlp.example.com', serviceName: 'saga-worker-eu' });
    expect(otlpTracesUrl('http://collector:4318/')).toBe('http://collector:4318/v1/traces');
  });

  it.each([
    ['RATE_LIMIT_MAX', '0', loadApiConfig],
    ['RATE_LIMIT_MAX', 'lots', loadApiConfig],
    ['RATE_LIMIT_WINDOW', '60', loadApiConfig],
    ['CORS_ORIGINS', 'https://shop.example.com/path', loadApiConfig],
    ['CORS_ORIGINS', 'shop.example.com', loadApiConfig],
    ['CORS_ORIGINS', '*,https://shop.example.com', loadApiConfig],
    ['TRUST_PROXY', 'true', loadApiConfig],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'collector:4318', loadApiConfig],
    ['WORKER_METRICS_PORT', '70000', loadWorkerConfig],
    ['WORKER_SDK_METRICS_PORT', 'nine', loadWorkerConfig],
    ['WORKER_SHUTDOWN_GRACE', 'forever', loadWorkerConfig],
  ] as const)('when %s is %p, then the process stops naming it', (variable, value, load) => {
    expect(() => load({ ...base, [variable]: value })).toThrow(new RegExp(`^${variable}: `));
  });

  it('when both worker metrics ports are the same, then the SDK one is refused', () => {
    expect(() =>
      loadWorkerConfig({ ...base, WORKER_METRICS_PORT: '9464', WORKER_SDK_METRICS_PORT: '9464' }),
    ).toThrow(/^WORKER_SDK_METRICS_PORT: /);
  });

  it('when OTEL_SERVICE_NAME is unset, then each process names itself', () => {
    expect(
      loadTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }, 'order-saga-worker'),
    ).toEqual({
      endpoint: 'http://c:4318',
      serviceName: 'order-saga-worker',
    });
    expect(loadTracingSettings({}, 'order-saga-worker')).toBeUndefined();
  });
});
