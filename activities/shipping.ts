import { findRecorded, runOnce } from '../store/ledger';
import { appendEvent } from '../store/outbox';
import type { Pool } from '../store/pool';
import { markStepCompensating, markStepRunning, setStepStatus } from '../store/steps';
import type { ShippingAddress, StepOutcome } from '../contracts/index';
import type { StepCall } from './orders';
import type { Carrier } from './providers/types';
import { callProvider, currentStep } from './step-context';

export function createShippingActivities({ pool, carrier }: { pool: Pool; carrier: Carrier }) {
  return {
    /** Books the shipment; a carrier refusal is recorded and returned, never retried. */
    createShipment: async (call: StepCall & { address: ShippingAddress }): Promise<StepOutcome> => {
      const recorded = await findRecorded<StepOutcome>(pool, call.idempotencyKey);
      if (recorded) return recorded;
      const { workflowId, attempt } = currentStep();
      await markStepRunning(pool, call.orderId, 'createShipment', attempt);
      const shipment = await callProvider(() =>
        carrier.createShipment({
          idempotencyKey: call.idempotencyKey,
          country: call.address.country,
          postalCode: call.address.postalCode,
        }),
      );
      const entry = { idempotencyKey: call.idempotencyKey, workflowId, step: 'createShipment' };
      return runOnce(pool, entry, async (tx): Promise<StepOutcome> => {
        if (shipment.status === 'refused') {
          await setStepStatus(tx, call.orderId, 'createShipment', 'FAILED');
          return { ok: false, reason: 'shipping_unavailable' };
        }
        await tx.query(
          `INSERT INTO shipments (order_id, status, carrier, tracking_number) VALUES ($1, 'CREATED', $2, $3)`,
          [call.orderId, shipment.carrier, shipment.trackingNumber],
        );
        await setStepStatus(tx, call.orderId, 'createShipment', 'COMPLETED');
        await appendEvent(tx, {
          orderId: call.orderId,
          type: 'ShipmentCreated',
          data: { carrier: shipment.carrier, trackingNumber: shipment.trackingNumber },
        });
        return { ok: true };
      });
    },

    /** Cancels a booked shipment; a no-op when none was booked. */
    cancelShipment: async (call: StepCall): Promise<void> => {
      const { rows } = await pool.query<{ tracking_number: string }>(
        `SELECT tracking_number FROM shipments WHERE order_id = $1 AND status = 'CREATED'`,
        [call.orderId],
      );
      const booked = rows[0];
      if (!booked) return;
      await markStepCompensating(pool, call.orderId, 'createShipment');
      await callProvider(() =>
        carrier.cancelShipment({
          idempotencyKey: call.idempotencyKey,
          trackingNumber: booked.tracking_number,
        }),
      );
      const entry = {
        idempotencyKey: call.idempotencyKey,
        workflowId: currentStep().workflowId,
        step: 'cancelShipment',
      };
      await runOnce(pool, entry, async (tx) => {
        const cancelled = await tx.query(
          `UPDATE shipments SET status = 'CANCELLED', updated_at = now() WHERE order_id = $1 AND status = 'CREATED'`,
          [call.orderId],
        );
        if (cancelled.rowCount === 0) return null;
        await setStepStatus(tx, call.orderId, 'createShipment', 'COMPENSATED');
        await appendEvent(tx, {
          orderId: call.orderId,
          type: 'ShipmentCancelled',
          data: { trackingNumber: booked.tracking_number },
        });
        return null;
      });
    },
  };
}
