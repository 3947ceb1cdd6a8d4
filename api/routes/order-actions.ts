import type { FastifyRequest } from 'fastify';
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import {
  isTerminal,
  SIGNAL_CANCEL_REQUESTED,
  UPDATE_APPROVE,
  UPDATE_REJECT,
  workflowIdFor,
  type DecidedBy,
} from '../../contracts/index';
import type { RouteDeps } from '../deps';
import { ANONYMOUS, needs } from '../plugins/auth';
import { problems } from '../problems';
import { recordDecision } from '../../store/decisions';
import { findOrderStatus } from '../../store/order-views';
import { findPendingStart } from '../../store/saga-starts';
import { problemResponses } from '../schemas/common';
import { CancelAccepted, DecisionAccepted, OrderIdParams } from '../schemas/orders';

/** How long the API waits for Temporal (and, for updates, the workflow) before a 503. */
const TEMPORAL_DEADLINE_MS = 10_000;

const DECISIONS = [
  { path: 'approve', update: UPDATE_APPROVE, decision: 'approved' },
  { path: 'reject', update: UPDATE_REJECT, decision: 'rejected' },
] as const;

/** Who is asking: the principal, never a token (CONTRACT §2). */
const decidedBy = (request: FastifyRequest): DecidedBy => ({ by: request.principal?.id ?? ANONYMOUS });

export const orderActionRoutes: FastifyPluginCallbackTypebox<RouteDeps> = (
  app,
  { pool, temporal, starter },
  done,
) => {
  const withDeadline = <T>(call: () => Promise<T>): Promise<T> =>
    temporal.connection.withDeadline(Date.now() + TEMPORAL_DEADLINE_MS, call);

  const currentStatus = async (orderId: string) => {
    const status = await findOrderStatus(pool, orderId);
    if (status === undefined) throw problems.orderNotFound(orderId);
    return status;
  };

  app.post(
    '/orders/:orderId/cancel',
    {
      schema: {
        operationId: 'cancelOrder',
        summary: 'Cancel an order',
        description:
          'Requests Temporal cancellation: the saga stops going forward, undoes what it did and ends ' +
          'CANCELLED. Asking again is accepted again. An order past its point of no return completes.',
        tags: ['orders'],
        security: needs('orders:write'),
        params: OrderIdParams,
        response: { 202: CancelAccepted, ...problemResponses(403, 404, 409, 413, 415) },
      },
    },
    async (request, reply) => {
      const orderId = request.params.orderId.toLowerCase();
      const status = await currentStatus(orderId);
      if (isTerminal(status)) throw problems.orderNotCancellable(status);
      const by = decidedBy(request);
      const handle = temporal.workflow.getHandle(workflowIdFor(orderId));
      // Who cancelled goes into the history first (a signal, encrypted like every payload),
      // then Temporal's own cancellation.
      const cancel = async () => {
        await withDeadline(() => handle.signal(SIGNAL_CANCEL_REQUESTED, by));
        await withDeadline(() => handle.cancel());
      };
      try {
        await cancel();
      } catch (error) {
        if (!(error instanceof WorkflowNotFoundError)) throw error;
        // Accepted, but its saga not started yet (Temporal was away): start it, then cancel
        // it, so the cancel is Temporal's like any other and the saga undoes what it did.
        const pending = await findPendingStart(pool, orderId);
        // Otherwise the saga closed between our read and the cancel: its row says how it ended.
        if (!pending) throw problems.orderNotCancellable(await currentStatus(orderId));
        await starter.startNow(pending);
        await cancel();
      }
      await recordDecision(pool, { orderId, action: 'cancel', by: by.by, requestId: request.id });
      request.log.info({ orderId, action: 'cancel', by: by.by }, 'decision recorded');
      return reply.code(202).send({ orderId, status, cancelRequested: true as const });
    },
  );

  for (const { path, update, decision } of DECISIONS) {
    app.post(
      `/orders/:orderId/${path}`,
      {
        schema: {
          operationId: `${path}Order`,
          summary: `${path === 'approve' ? 'Approve' : 'Reject'} an order awaiting approval`,
          description:
            path === 'approve'
              ? 'The saga goes on to charge and ship.'
              : 'The saga releases the stock and ends FAILED with approval_rejected.',
          tags: ['orders'],
          security: needs('orders:approve'),
          params: OrderIdParams,
          response: { 202: DecisionAccepted, ...problemResponses(403, 404, 409, 413, 415) },
        },
      },
      async (request, reply) => {
        const orderId = request.params.orderId.toLowerCase();
        const status = await currentStatus(orderId);
        if (status !== 'AWAITING_APPROVAL') throw problems.orderNotAwaitingApproval(status);
        const by = decidedBy(request);
        try {
          // A Temporal Update, not a signal: the workflow's validator refuses it unless the
          // saga is really waiting, and we hear about it here. The update id makes a client
          // retry with the same x-request-id land on the same update.
          await withDeadline(() =>
            temporal.workflow
              .getHandle(workflowIdFor(orderId))
              .executeUpdate(update, { updateId: `${update}:${request.id}`, args: [by] }),
          );
        } catch (error) {
          if (error instanceof WorkflowUpdateFailedError || error instanceof WorkflowNotFoundError) {
            const now = await currentStatus(orderId);
            throw now === 'AWAITING_APPROVAL'
              ? problems.orderNotAwaitingApproval(now, 'The order has already been approved or rejected.')
              : problems.orderNotAwaitingApproval(now);
          }
          throw error;
        }
        await recordDecision(pool, { orderId, action: path, by: by.by, requestId: request.id });
        request.log.info({ orderId, action: path, by: by.by }, 'decision recorded');
        return reply.code(202).send({ orderId, decision });
      },
    );
  }
  done();
};
