import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { REDACT_PATHS } from '../lib/logger';
import type { ApiDeps } from './deps';
import { logRequests } from './plugins/access-log';
import { requireBearerToken } from './plugins/auth';
import { answerWithProblems } from './plugins/errors';
import { acceptJsonBodiesOnly } from './plugins/json-body';
import { exposeMetrics } from './plugins/metrics';
import { documentApi } from './plugins/openapi';
import { echoRequestId, requestIdFor } from './plugins/request-id';
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
}

/**
 * The whole HTTP API as a Fastify instance. It never listens, connects or reads the
 * environment: server.ts does that, tests call inject(). Route plugins load on ready().
 */
export function buildApp({ logger = false, ...deps }: BuildAppOptions): App {
  const app = Fastify({
    ...(typeof logger === 'boolean'
      ? {
          logger: logger && {
            level: deps.config.logLevel,
            redact: { paths: REDACT_PATHS, censor: '[redacted]' },
          },
        }
      : { loggerInstance: logger }),
    bodyLimit: BODY_LIMIT_BYTES,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    genReqId: requestIdFor,
    // plugins/access-log.ts writes one line per request instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<TypeBoxTypeProvider>();
  // TypeBox's compiler rather than Fastify's Ajv defaults, which strip unknown properties
  // instead of rejecting them and coerce body types ("2" is not a quantity). It still
  // coerces query strings and path params, and reports every error.
  app.setValidatorCompiler(TypeBoxValidatorCompiler);

  echoRequestId(app);
  logRequests(app);
  answerWithProblems(app, BODY_LIMIT_BYTES);
  acceptJsonBodiesOnly(app);
  requireBearerToken(app, deps.config.apiTokens);
  exposeMetrics(app);
  documentApi(app);

  // Plugins load in this order when the app is readied (inject(), listen(), ready()).
  void app.register(healthRoutes, deps);
  void app.register(inventoryRoutes, deps);
  void app.register(orderRoutes, deps);
  void app.register(orderActionRoutes, deps);
  return app;
}
