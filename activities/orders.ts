import { appendEvent } from '../store/outbox';
import { fenceStep, findRecorded, runOnce } from '../store/ledger';
import { insertOrderIfAbsent } from '../store/orders';
import type { Pool, PoolClient } from '../store/pool';
import { markStepRunning, setOrderStatus, setStepStatus } from '../store/steps';
import type {
  FailureReason,
  OrderLine,
  OrderSagaInput,
  OrderStatus,
  StepName,
  StepOutcome,
} from '../contracts/index';
import { currentStep, reportCancellation } from './step-context';

export interface StepCall {
  orderId: string;
  /** `<workflowId>:<step>`, decided by the workflow. */
  idempotencyKey: string;
}

export function createOrderActivities({ pool }: { pool: Pool }) {
  const ledgerEntry = (call: StepCall, step: string) => ({
    idempotencyKey: call.idempotencyKey,
    workflowId: currentStep().workflowId,
    step,
  });

  return {
    /** Writes the order (if the API has not yet) and its OrderCreated event. */
    createOrder: async (call: StepCall & { input: OrderSagaInput }): Promise<StepOutcome> => {
      const entry = ledgerEntry(call, 'createOrder');
      return reportCancellation(() =>
        runOnce(pool, entry, async (tx) => {
          await insertOrderIfAbsent(tx, call.input);
          const { input } = call;
          await appendEvent(tx, {
            orderId: input.orderId,
            type: 'OrderCreated',
            data: {
              customerId: input.customerId,
              items: input.items,
              totalCents: input.totalCents,
              currency: input.currency,
              requiresApproval: input.requiresApproval,
            },
          });
          await setStepStatus(tx, input.orderId, 'createOrder', 'COMPLETED');
          return { ok: true };
        }),
      );
    },

    /** Records the approval decision; the order resumes (PENDING) or starts compensating. */
    recordApproval: async (
      call: StepCall & { decision: 'approved' | 'rejected' | 'timed_out' },
    ): Promise<void> => {
      await runOnce(pool, ledgerEntry(call, 'approval'), async (tx) => {
        const approved = call.decision === 'approved';
        await setStepStatus(tx, call.orderId, 'approval', approved ? 'COMPLETED' : 'FAILED');
        await setOrderStatus(tx, call.orderId, approved ? 'PENDING' : 'COMPENSATING');
        return null;
      });
    },

    /** The point of no return: reserved units leave stock, the order is COMPLETED. */
    completeOrder: async (call: StepCall): Promise<StepOutcome> => {
      const recorded = await findRecorded<StepOutcome>(pool, call.idempotencyKey);
      if (recorded) return recorded;
      await markStepRunning(pool, call.orderId, 'completeOrder', currentStep().attempt);
      return runOnce(pool, ledgerEntry(call, 'completeOrder'), async (tx) => {
        const { rows } = await tx.query<{ sku: string; quantity: number }>(
          `UPDATE inventory_reservations SET status = 'CONSUMED', updated_at = now()
            WHERE order_id = $1 AND status = 'RESERVED' RETURNING sku, quantity`,
          [call.orderId],
        );
        await tx.query(
          `UPDATE products p SET reserved = p.reserved - r.quantity, updated_at = now()
             FROM unnest($1::text[], $2::int[]) AS r(sku, quantity) WHERE p.sku = r.sku`,
          [rows.map((r) => r.sku), rows.map((r) => r.quantity)],
        );
        const { rows: order } = await tx.query<{ total_cents: number }>(
          `UPDATE orders SET status = 'COMPLETED', updated_at = now() WHERE id = $1 RETURNING total_cents`,
          [call.orderId],
        );
        await setStepStatus(tx, call.orderId, 'completeOrder', 'COMPLETED');
        await appendEvent(tx, {
          orderId: call.orderId,
          type: 'OrderCompleted',
          data: { totalCents: order[0]?.total_cents },
        });
        return { ok: true };
      });
    },

    /**
     * Compensation of createOrder, and the saga's last word on a failed or cancelled
     * order: the final status, OrderFailed or OrderCancelled, unreached steps SKIPPED.
     */
    cancelOrder: async (
      call: StepCall & {
        outcome: 'FAILED' | 'CANCELLED';
        failureReason: FailureReason | null;
        /** The step that ran out of retries or refused, shown FAILED (absent in v1 histories). */
        failedStep?: StepName | null;
      },
    ): Promise<void> => {
      const { workflowId } = currentStep();
      await runOnce(pool, ledgerEntry(call, 'cancelOrder'), async (tx) => {
        await fenceStep(tx, workflowId, 'createOrder');
        const updated = await tx.query(
          `UPDATE orders SET status = $2, failure_reason = $3, updated_at = now()
            WHERE id = $1 AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')`,
          [call.orderId, call.outcome, call.outcome === 'FAILED' ? call.failureReason : null],
        );
        if (updated.rowCount === 0) return null; // the order never got written, or is already final
        // A cancel that reached the saga before createOrder ran: the API wrote the order, but
        // no step announced it. Announce it first, so every order's events start with
        // OrderCreated (CONTRACT §3, §5) and no consumer hears of an order it never saw.
        await announceIfSilent(tx, call.orderId);
        await tx.query(
          `UPDATE order_steps SET status = CASE
               WHEN name = 'createOrder' AND status = 'COMPLETED' THEN 'COMPENSATED'
               WHEN name = $2 AND status IN ('PENDING', 'RUNNING') THEN 'FAILED'
               WHEN status IN ('PENDING', 'RUNNING') THEN 'SKIPPED'
               ELSE status END,
             updated_at = now()
            WHERE order_id = $1`,
          [call.orderId, call.failedStep ?? null],
        );
        await appendEvent(
          tx,
          call.outcome === 'FAILED'
            ? { orderId: call.orderId, type: 'OrderFailed', data: { reason: call.failureReason } }
            : { orderId: call.orderId, type: 'OrderCancelled', data: {} },
        );
        return null;
      });
    },

    /** Status changes the workflow decides alone (COMPENSATING, REQUIRES_ATTENTION). */
    markOrderStatus: async (call: { orderId: string; status: OrderStatus }): Promise<void> => {
      await setOrderStatus(pool, call.orderId, call.status);
    },
  };
}

/** Appends OrderCreated, from the stored order, when the order has no event yet. */
async function announceIfSilent(tx: PoolClient, orderId: string): Promise<void> {
  const { rows } = await tx.query<{
    customer_id: string;
    total_cents: number;
    currency: string;
    requires_approval: boolean;
    items: OrderLine[];
  }>(
    `SELECT o.customer_id, o.total_cents, o.currency,
            EXISTS (SELECT 1 FROM order_steps s
                     WHERE s.order_id = o.id AND s.name = 'approval' AND s.status <> 'SKIPPED') AS requires_approval,
            (SELECT coalesce(json_agg(json_build_object(
                      'sku', i.sku, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents) ORDER BY i.line), '[]')
               FROM order_items i WHERE i.order_id = o.id) AS items
       FROM orders o WHERE o.id = $1 AND o.event_seq = 0`,
    [orderId],
  );
  const order = rows[0];
  if (!order) return;
  await appendEvent(tx, {
    orderId,
    type: 'OrderCreated',
    data: {
      customerId: order.customer_id,
      items: order.items,
      totalCents: order.total_cents,
      currency: order.currency,
      requiresApproval: order.requires_approval,
    },
  });
}
