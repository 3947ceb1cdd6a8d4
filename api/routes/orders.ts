import { randomUUID } from 'node:crypto';
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { Pool } from '../../store/pool';
import type { RouteDeps } from '../deps';
import { acceptOrder, type AcceptedOrder } from '../orders/accept-order';
import { decodeCursor, encodeCursor } from '../orders/cursor';
import { fingerprintOf } from '../orders/fingerprint';
import { toOrderView } from '../orders/view';
import { PROBLEM_CONTENT_TYPE, ProblemError, problems } from '../problems';
import { claimKey, recordResponse, releaseKey, type HeldKey } from '../../store/idempotency-keys';
import { findOrder, listOrders } from '../../store/order-views';
import { problemResponses } from '../schemas/common';
import {
  CreateOrderBody,
  IdempotencyHeaders,
  ListOrdersQuery,
  OrderAccepted,
  OrderIdParams,
  OrderPage,
  OrderView,
} from '../schemas/orders';
import { needs } from '../plugins/auth';

const DEFAULT_PAGE_SIZE = 20;

/** A sku twice in one order is a client mistake (quantities would be ambiguous): 400. */
function rejectDuplicateSkus(items: CreateOrderBody['items']): void {
  const seen = new Set<string>();
  const errors = items.flatMap(({ sku }, index) => {
    if (!seen.has(sku)) {
      seen.add(sku);
      return [];
    }
    return [
      { field: `/items/${index}/sku`, message: `Duplicate sku ${JSON.stringify(sku)}; list each sku once` },
    ];
  });
  if (errors.length > 0) throw problems.validation(errors, 'The request body is invalid; see errors.');
}

/** Sends a stored response again, marked as such. */
function replay(reply: FastifyReply, status: number, body: unknown) {
  void reply.code(status).header('idempotent-replayed', 'true');
  if (status === 202) void reply.header('location', (body as OrderAccepted).links.self);
  if (status >= 400) void reply.type(PROBLEM_CONTENT_TYPE);
  return reply.send(body);
}

/**
 * A refusal (4xx) is the answer and is stored for replay; a 5xx is not, and the key is
 * released so a retry takes over at once, with the same order id. Never throws: the
 * request's own error is what the client must see.
 */
async function settleKeyAfterFailure(pool: Pool, held: HeldKey, error: unknown, log: FastifyBaseLogger) {
  try {
    if (error instanceof ProblemError && error.status < 500) {
      await recordResponse(pool, held, error.status, error.toBody());
    } else {
      await releaseKey(pool, held);
    }
  } catch (settleError) {
    log.warn({ err: settleError }, 'could not settle the idempotency key; its lock expires on its own');
  }
}

export const orderRoutes: FastifyPluginCallbackTypebox<RouteDeps> = (app, deps, done) => {
  const { pool, config } = deps;

  /** A saga started: counted, logged with its ids, answered 202. */
  const accepted = (
    request: FastifyRequest,
    reply: FastifyReply,
    { response: order, requiresApproval }: AcceptedOrder,
  ) => {
    request.orderId = order.orderId;
    app.orderMetrics.sagaStarted(requiresApproval);
    request.log.info({ orderId: order.orderId, workflowId: order.workflowId }, 'order accepted');
    return reply.code(202).header('location', order.links.self).send(order);
  };
  app.post(
    '/orders',
    {
      schema: {
        operationId: 'createOrder',
        summary: 'Place an order',
        description:
          'Prices come from the catalog. The saga starts before the order row is written; both are ' +
          'idempotent on the order id, so the order is visible at once and never lost. With an ' +
          'Idempotency-Key, a retry gets the first response again (Idempotent-Replayed: true).',
        tags: ['orders'],
        security: needs('orders:write'),
        headers: IdempotencyHeaders,
        body: CreateOrderBody,
        response: {
          202: OrderAccepted,
          ...problemResponses(403, 409, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const { body } = request;
      rejectDuplicateSkus(body.items);
      const key = request.headers['idempotency-key'];
      if (key === undefined) {
        return accepted(
          request,
          reply,
          await acceptOrder(deps, { body, orderId: randomUUID(), correlationId: request.id }),
        );
      }

      const ref = { scope: request.caller, key };
      const claim = await claimKey(pool, ref, fingerprintOf(body), randomUUID());
      switch (claim.kind) {
        case 'mismatch':
          throw problems.idempotencyKeyReused();
        case 'in-flight':
          throw problems.idempotencyKeyInUse();
        case 'done':
          if (claim.status === 202) request.orderId = (claim.body as OrderAccepted).orderId;
          return replay(reply, claim.status, claim.body);
      }
      try {
        const order = await acceptOrder(deps, {
          body,
          orderId: claim.orderId,
          correlationId: request.id,
          idempotency: claim.held,
        });
        return accepted(request, reply, order);
      } catch (error) {
        await settleKeyAfterFailure(pool, claim.held, error, request.log);
        throw error;
      }
    },
  );

  app.get(
    '/orders/:orderId',
    {
      schema: {
        operationId: 'getOrder',
        summary: 'Get an order with its payment, shipment and saga steps',
        tags: ['orders'],
        security: needs('orders:read'),
        params: OrderIdParams,
        response: { 200: OrderView, ...problemResponses(403, 404) },
      },
    },
    async (request) => {
      const orderId = request.params.orderId.toLowerCase();
      const row = await findOrder(pool, orderId);
      if (!row) throw problems.orderNotFound(orderId);
      return toOrderView(row, config);
    },
  );

  app.get(
    '/orders',
    {
      schema: {
        operationId: 'listOrders',
        summary: 'List orders, newest first',
        description: 'Keyset pagination: pass nextCursor back as cursor. Filters stay as they were.',
        tags: ['orders'],
        security: needs('orders:read'),
        querystring: ListOrdersQuery,
        response: { 200: OrderPage, ...problemResponses(403) },
      },
    },
    async (request) => {
      const { customerId, status, cursor } = request.query;
      const limit = request.query.limit ?? DEFAULT_PAGE_SIZE;
      const after = cursor === undefined ? undefined : decodeCursor(cursor);
      if (cursor !== undefined && after === undefined) {
        throw problems.validation(
          [{ field: '/cursor', message: 'Not a cursor returned by this API' }],
          'The query string is invalid; see errors.',
        );
      }
      // One extra row tells whether a next page exists without a count query.
      const rows = await listOrders(pool, {
        limit: limit + 1,
        ...(customerId !== undefined ? { customerId } : {}),
        ...(status !== undefined ? { status } : {}),
        ...(after !== undefined ? { after } : {}),
      });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        items: page.map((row) => toOrderView(row, config)),
        nextCursor:
          rows.length > limit && last ? encodeCursor({ createdUs: last.created_us, id: last.id }) : null,
      };
    },
  );
  done();
};
