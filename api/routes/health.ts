import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { ping } from '../../store/pool';
import type { RouteDeps } from '../deps';
import { problemContent, problemResponse } from '../schemas/common';
import { Health, Readiness } from '../schemas/health';

/** Probes are never rate limited: an orchestrator must always get an answer. */
const PROBE = { rateLimit: false } as const;

/** A readiness probe must answer quickly even when a dependency hangs. */
const PROBE_TIMEOUT_MS = 2_000;

async function answers(probe: () => Promise<unknown>): Promise<'up' | 'down'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('probe timed out')), PROBE_TIMEOUT_MS);
  });
  try {
    await Promise.race([probe(), timeout]);
    return 'up';
  } catch {
    return 'down';
  } finally {
    clearTimeout(timer);
  }
}

export const healthRoutes: FastifyPluginCallbackTypebox<RouteDeps> = (app, { pool, temporal }, done) => {
  app.get(
    '/healthz',
    {
      schema: {
        operationId: 'getLiveness',
        summary: 'Liveness: 200 while the process runs',
        description: 'A process that is shutting down answers 503 (problem), like every route.',
        tags: ['operations'],
        security: [],
        response: { 200: Health, 400: problemResponse(400), 503: problemResponse(503) },
      },
      config: PROBE,
    },
    () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'getReadiness',
        summary: 'Readiness: 200 when Postgres answers, else 503',
        description:
          'Orders are accepted in Postgres, so Postgres alone decides readiness; checks also show ' +
          "Temporal's state (sagas of orders accepted while it is down start once it answers). " +
          'A problem when this instance is shutting down.',
        tags: ['operations'],
        security: [],
        response: {
          200: Readiness,
          400: problemResponse(400),
          503: {
            description: 'Not ready: Postgres is down, or the instance is shutting down',
            content: { 'application/json': { schema: Readiness }, ...problemContent },
          },
        },
      },
      config: PROBE,
    },
    async (_request, reply) => {
      const [postgres, temporalState] = await Promise.all([
        answers(() => ping(pool)),
        answers(() =>
          temporal.connection.withDeadline(Date.now() + PROBE_TIMEOUT_MS, () =>
            temporal.workflowService.getSystemInfo({}),
          ),
        ),
      ]);
      const ready = postgres === 'up';
      return reply
        .code(ready ? 200 : 503)
        .send({ status: ready ? 'ready' : 'not_ready', checks: { postgres, temporal: temporalState } });
    },
  );
  done();
};
