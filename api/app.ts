import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Tracer } from '@opentelemetry/api';
import { loggerOptions } from '../lib/logger';
import type { ApiDeps } from './deps';
import { logRequests } from './plugins/access-log';
import { authorizeCallers } from './plugins/auth';
import type { Authenticate } from './plugins/auth-sources';
import { refuseWhileClosing } from './plugins/draining';
import { answerFrameworkErrors, answerWithProblems } from './plugins/errors';
import { acceptJsonBodiesOnly } from './plugins/json-body';
import { refuseUnstorableText } from './plugins/storable-text';
import { exposeMetrics, exposeStarterMetrics } from './plugins/metrics';
import { createSagaStarter } from './orders/saga-starter';
import { documentApi } from './plugins/openapi';
import { limitRequestRates } from './plugins/rate-limit';
import { echoRequestId, requestIdFor } from './plugins/request-id';
import { secureResponses } from './plugins/security';
import { traceRequests } from './plugins/tracing';
import { codecRoutes } from './routes/codec';
import { healthRoutes } from './routes/health';
import { inventoryRoutes } from './routes/inventory';
import { orderActionRoutes } from './routes/order-actions';
import { orderRoutes } from './routes/orders';

export type { ApiDeps } from './deps';

export type App = FastifyInstance<
  Server,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export const BODY_LIMIT_BYTES = 64 * 1024;

export interface BuildAppOptions extends ApiDeps {
  /** A logger to use, `true` for one at config.logLevel, or false/absent for none (tests). */
  logger?: FastifyBaseLogger | boolean;
  /**
   * Tracing is on: a span per request. The Temporal client in `temporal` must carry the
   * OpenTelemetry client interceptor (api/temporal.ts) for the saga to join the trace.
   */
  tracer?: Tracer;
  /** Replaces the token verifier built from config.auth (tests). */
  authenticate?: Authenticate;
}

/** Trusts the nearest `hops` proxies (what a number means to proxy-addr), typed for Fastify. */
const trustHops =
  (hops: number) =>
  (_address: string, hop: number): boolean =>
    hop < hops;

/**
 * The whole HTTP API as a Fastify instance. It never listens, connects or reads the
 * environment: server.ts does that, tests call inject(). Route plugins load on ready().
 */
export function buildApp({ logger = false, tracer, authenticate, ...deps }: BuildAppOptions): App {
  const app = Fastify({
    ...(typeof logger === 'boolean'
      ? { logger: logger && loggerOptions('api', deps.config.logLevel) }
      : { loggerInstance: logger }),
    trustProxy:
      typeof deps.config.trustProxy === 'number' ? trustHops(deps.config.trustProxy) : deps.config.trustProxy,
    // plugins/draining.ts answers requests that arrive while closing, with a problem.
    return503OnClosing: false,
    bodyLimit: BODY_LIMIT_BYTES,
    // Router errors (a malformed %-escape, a path parameter over 100 characters) answer with
    // a problem like every other error, not with Fastify's default JSON.
    frameworkErrors: answerFrameworkErrors(BODY_LIMIT_BYTES),
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    genReqId: requestIdFor,
    // plugins/access-log.ts writes one line per request instead of Fastify's two.
    // Every line of a request carries its id as `requestId`.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
  }).withTypeProvider<TypeBoxTypeProvider>();
  // TypeBox's compiler rather than Fastify's Ajv defaults, which strip unknown properties
  // instead of rejecting them and coerce body types ("2" is not a quantity). It still
  // coerces query strings and path params, and reports every error.
  app.setValidatorCompiler(TypeBoxValidatorCompiler);

  // Hooks run in the order they are added here; plugins' hooks (helmet, CORS) after these,
  // route-level ones (the rate limit) last. Auth refuses in preParsing, after all of them.
  if (tracer) traceRequests(app, tracer);
  echoRequestId(app);
  logRequests(app);
  answerWithProblems(app, BODY_LIMIT_BYTES);
  refuseWhileClosing(app);
  acceptJsonBodiesOnly(app);
  authorizeCallers(app, deps.config.auth, authenticate ? { authenticate } : {});
  refuseUnstorableText(app);
  secureResponses(app, deps.config.corsOrigins, deps.config.codecOrigins);
  limitRequestRates(app, deps.config.rateLimit);
  exposeMetrics(app);
  documentApi(app);

  // Without a starter of its own (tests), the app starts sagas right after acceptance and
  // waits for those starts when it closes; server.ts hands in one that also runs passes.
  const starter =
    deps.starter ??
    createSagaStarter({ pool: deps.pool, temporal: deps.temporal, taskQueue: deps.config.taskQueue });
  if (!deps.starter) app.addHook('onClose', () => starter.stop());
  exposeStarterMetrics(app, () => starter.backlog());

  // Plugins load in this order when the app is readied (inject(), listen(), ready()).
  const routeDeps = { ...deps, starter };
  void app.register(healthRoutes, routeDeps);
  void app.register(inventoryRoutes, routeDeps);
  void app.register(orderRoutes, routeDeps);
  void app.register(orderActionRoutes, routeDeps);
  void app.register(codecRoutes, routeDeps);
  return app;
}
