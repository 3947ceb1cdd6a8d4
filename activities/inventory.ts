import { fenceStep, findRecorded, runOnce } from '../store/ledger';
import { appendEvent } from '../store/outbox';
import type { Pool, PoolClient } from '../store/pool';
import { markStepCompensating, markStepRunning, setOrderStatus, setStepStatus } from '../store/steps';
import type { OrderLine, StepOutcome } from '../contracts/index';
import type { StepCall } from './orders';
import { currentStep, reportCancellation } from './step-context';

interface Line {
  sku: string;
  quantity: number;
}

/** Locks the products rows in sku order, so concurrent sagas never deadlock on stock. */
async function lockProducts(tx: PoolClient, skus: string[]): Promise<Map<string, number>> {
  const { rows } = await tx.query<{ sku: string; available: number }>(
    'SELECT sku, available FROM products WHERE sku = ANY($1) ORDER BY sku FOR UPDATE',
    [skus],
  );
  return new Map(rows.map((row) => [row.sku, row.available]));
}

/** Adds `sign × quantity` to available and the opposite to reserved, for each line. */
async function moveStock(tx: PoolClient, lines: Line[], toReserved: boolean): Promise<void> {
  const sign = toReserved ? 1 : -1;
  await tx.query(
    `UPDATE products p
        SET available = p.available - $3 * l.quantity,
            reserved  = p.reserved  + $3 * l.quantity,
            updated_at = now()
       FROM unnest($1::text[], $2::int[]) AS l(sku, quantity)
      WHERE p.sku = l.sku`,
    [lines.map((l) => l.sku), lines.map((l) => l.quantity), sign],
  );
}

export function createInventoryActivities({ pool }: { pool: Pool }) {
  return {
    /**
     * Reserves every line or none. Not enough stock is a business outcome, returned (and
     * recorded) rather than thrown. Orders above the approval threshold then wait.
     */
    reserveInventory: async (
      call: StepCall & { items: OrderLine[]; awaitApproval: boolean },
    ): Promise<StepOutcome> => {
      const recorded = await findRecorded<StepOutcome>(pool, call.idempotencyKey);
      if (recorded) return recorded;
      const { workflowId, attempt } = currentStep();
      await markStepRunning(pool, call.orderId, 'reserveInventory', attempt);
      const entry = { idempotencyKey: call.idempotencyKey, workflowId, step: 'reserveInventory' };
      return reportCancellation(() =>
        runOnce(pool, entry, async (tx): Promise<StepOutcome> => {
          const lines = [...call.items].sort((a, b) => a.sku.localeCompare(b.sku));
          const available = await lockProducts(
            tx,
            lines.map((l) => l.sku),
          );
          const short = lines.filter((l) => (available.get(l.sku) ?? 0) < l.quantity);
          if (short.length > 0) {
            await setStepStatus(tx, call.orderId, 'reserveInventory', 'FAILED');
            return { ok: false, reason: 'insufficient_stock' };
          }
          await moveStock(tx, lines, true);
          await tx.query(
            `INSERT INTO inventory_reservations (order_id, sku, quantity, status)
           SELECT $1, sku, quantity, 'RESERVED' FROM unnest($2::text[], $3::int[]) AS l(sku, quantity)`,
            [call.orderId, lines.map((l) => l.sku), lines.map((l) => l.quantity)],
          );
          await setStepStatus(tx, call.orderId, 'reserveInventory', 'COMPLETED');
          if (call.awaitApproval) {
            await setStepStatus(tx, call.orderId, 'approval', 'RUNNING');
            await setOrderStatus(tx, call.orderId, 'AWAITING_APPROVAL');
          }
          await appendEvent(tx, {
            orderId: call.orderId,
            type: 'InventoryReserved',
            data: { items: lines },
          });
          return { ok: true };
        }),
      );
    },

    /** Returns reserved units to `available`. A no-op (no event) when nothing is reserved. */
    releaseInventory: async (call: StepCall): Promise<void> => {
      await markStepCompensating(pool, call.orderId, 'reserveInventory');
      const { workflowId } = currentStep();
      const entry = { idempotencyKey: call.idempotencyKey, workflowId, step: 'releaseInventory' };
      await runOnce(pool, entry, async (tx) => {
        await fenceStep(tx, workflowId, 'reserveInventory');
        const { rows: reserved } = await tx.query<Line>(
          `SELECT sku, quantity FROM inventory_reservations
            WHERE order_id = $1 AND status = 'RESERVED' ORDER BY sku FOR UPDATE`,
          [call.orderId],
        );
        if (reserved.length === 0) return null;
        await lockProducts(
          tx,
          reserved.map((l) => l.sku),
        );
        await moveStock(tx, reserved, false);
        await tx.query(
          `UPDATE inventory_reservations SET status = 'RELEASED', updated_at = now()
            WHERE order_id = $1 AND status = 'RESERVED'`,
          [call.orderId],
        );
        await setStepStatus(tx, call.orderId, 'reserveInventory', 'COMPENSATED');
        await appendEvent(tx, {
          orderId: call.orderId,
          type: 'InventoryReleased',
          data: { items: reserved },
        });
        return null;
      });
    },
  };
}
