import type { OrderLine, StepOutcome } from '../contracts/index';
import { openApprovalGate } from '../store/lifecycle';
import { appendEvent } from '../store/outbox';
import type { Pool } from '../store/pool';
import { releaseStock, reserveStock } from '../store/stock';
import { runCompensation, runStep, type ForwardStep, type StepCall } from './step-runner';

/**
 * Reserves every line or none. Not enough stock is a business outcome, returned (and
 * recorded) rather than thrown. An order that requires approval then waits at the gate.
 * `requiresApproval`: what the caller knows of the order (admitOrder has its input); when
 * it is known false the gate's statement is left out, otherwise the database decides.
 */
export function reserveInventoryStep(
  call: StepCall & { items: OrderLine[] },
  { requiresApproval }: { requiresApproval?: boolean } = {},
): ForwardStep<undefined> {
  return {
    call,
    step: 'reserveInventory',
    commit: async (tx) => {
      const reserved = await reserveStock(tx, call.orderId, call.items);
      if (!reserved) return { ok: false, reason: 'insufficient_stock' };
      if (requiresApproval !== false) await openApprovalGate(tx, call.orderId);
      await appendEvent(tx, {
        orderId: call.orderId,
        type: 'InventoryReserved',
        data: { items: reserved },
      });
      return { ok: true };
    },
  };
}

export function createInventoryActivities({ pool }: { pool: Pool }) {
  return {
    /** Reserves every line or none (reserveInventoryStep). */
    reserveInventory: (call: StepCall & { items: OrderLine[] }): Promise<StepOutcome> =>
      runStep(pool, reserveInventoryStep(call)),

    /** Returns reserved units to `available`. A no-op (no event) when nothing is reserved. */
    releaseInventory: (call: StepCall): Promise<void> =>
      runCompensation(pool, {
        call,
        name: 'releaseInventory',
        undoes: 'reserveInventory',
        undo: async (tx) => {
          const released = await releaseStock(tx, call.orderId);
          if (released.length === 0) return false;
          await appendEvent(tx, {
            orderId: call.orderId,
            type: 'InventoryReleased',
            data: { items: released },
          });
          return true;
        },
      }),
  };
}
