import type { FailureReason, OrderSagaInput, OrderStatus, StepName, StepOutcome } from '../contracts/index';
import { closeApprovalGate, closeOrder, completeOrder, moveOrder } from '../store/lifecycle';
import { fenceStep, runOnce } from '../store/ledger';
import { withTransaction } from '../store/tx';
import { findUnannouncedOrder, insertOrderIfAbsent } from '../store/orders';
import { appendEvent } from '../store/outbox';
import { sagaStarted } from '../store/saga-starts';
import type { Pool, PoolClient } from '../store/pool';
import { consumeStock } from '../store/stock';
import { currentStep, runCompensation, runStep, type ForwardStep, type StepCall } from './step-runner';

export type { StepCall } from './step-runner';

export function createOrderActivities({ pool }: { pool: Pool }) {
  return {
    /**
     * The order as the saga sees it: written and announced (OrderCreated), unless the API
     * did both when it accepted the order.
     */
    createOrder: (call: StepCall & { input: OrderSagaInput }): Promise<StepOutcome> =>
      runStep(pool, createOrderStep(call)),

    /** Records the approval decision; the order resumes (PENDING) or starts compensating. */
    recordApproval: async (
      call: StepCall & { decision: 'approved' | 'rejected' | 'timed_out' },
    ): Promise<void> => {
      const entry = {
        idempotencyKey: call.idempotencyKey,
        workflowId: currentStep().workflowId,
        step: 'approval',
      };
      await runOnce(pool, entry, async (tx) => {
        await closeApprovalGate(tx, call.orderId, call.decision === 'approved');
        return null;
      });
    },

    /** The point of no return: reserved units leave stock, the order is COMPLETED. */
    completeOrder: (call: StepCall): Promise<StepOutcome> =>
      runStep(pool, {
        call,
        step: 'completeOrder',
        commit: async (tx) => {
          await consumeStock(tx, call.orderId);
          const completed = await completeOrder(tx, call.orderId);
          if (completed)
            await appendEvent(tx, { orderId: call.orderId, type: 'OrderCompleted', data: completed });
          return { ok: true };
        },
      }),

    /**
     * v4, a cancel that came in before the point of no return: fences completeOrder so that it
     * can never run, unless it already did (run by a workflow task that was then lost).
     * Returns whether the order completed, which then stands.
     */
    fenceCompletion: async (): Promise<boolean> => {
      const { workflowId } = currentStep();
      const outcome = await withTransaction(pool, (tx) => fenceStep(tx, workflowId, 'completeOrder'));
      return outcome.ok;
    },

    /**
     * Compensation of createOrder, and the saga's last word on a failed or cancelled
     * order: the final status, OrderFailed or OrderCancelled, unreached steps SKIPPED.
     */
    cancelOrder: (
      call: StepCall & {
        outcome: 'FAILED' | 'CANCELLED';
        failureReason: FailureReason | null;
        /** The step that ran out of retries or refused, shown FAILED (absent in v1 histories). */
        failedStep?: StepName | null;
      },
    ): Promise<void> =>
      runCompensation(pool, {
        call,
        name: 'cancelOrder',
        undoes: 'createOrder',
        undo: async (tx) => {
          const ending = {
            outcome: call.outcome,
            failureReason: call.failureReason,
            failedStep: call.failedStep ?? null,
          };
          // The order never got written, or is already final: nothing to say.
          if (!(await closeOrder(tx, call.orderId, ending))) return false;
          await announceIfSilent(tx, call.orderId);
          await appendEvent(
            tx,
            call.outcome === 'FAILED'
              ? { orderId: call.orderId, type: 'OrderFailed', data: { reason: call.failureReason } }
              : { orderId: call.orderId, type: 'OrderCancelled', data: {} },
          );
          // closeOrder has already moved createOrder to COMPENSATED with the rest of the steps.
          return false;
        },
      }),

    /** Status changes the workflow decides alone (COMPENSATING, REQUIRES_ATTENTION). */
    markOrderStatus: async (call: { orderId: string; status: OrderStatus }): Promise<void> => {
      await moveOrder(pool, call.orderId, call.status);
    },
  };
}

/** The createOrder step (also run by admitOrder, activities/index.ts). */
export function createOrderStep(call: StepCall & { input: OrderSagaInput }): ForwardStep<undefined> {
  return {
    call,
    step: 'createOrder',
    commit: async (tx) => {
      await insertOrderIfAbsent(tx, call.input);
      await announceIfSilent(tx, call.orderId);
      // The saga runs: its start request (and the payment token in it) goes.
      await sagaStarted(tx, call.orderId);
      return { ok: true };
    },
  };
}

/**
 * A cancel can reach the saga before createOrder ran: the API wrote the order, but no step
 * announced it. Announce it first, so every order's events start with OrderCreated
 * (CONTRACT §3, §5) and no consumer hears of an order it never saw.
 */
async function announceIfSilent(tx: PoolClient, orderId: string): Promise<void> {
  const order = await findUnannouncedOrder(tx, orderId);
  if (order) await appendEvent(tx, { orderId, type: 'OrderCreated', data: { ...order } });
}
