import type { ShippingAddress, StepOutcome } from '../contracts/index';
import { appendEvent } from '../store/outbox';
import type { Pool } from '../store/pool';
import { findBookedShipment, recordShipment, recordShipmentCancelled } from '../store/shipments';
import type { Carrier } from './providers/types';
import { runCompensation, runStep, type StepCall } from './step-runner';

export function createShippingActivities({ pool, carrier }: { pool: Pool; carrier: Carrier }) {
  return {
    /** Books the shipment; a carrier refusal is recorded and returned, never retried. */
    createShipment: (call: StepCall & { address: ShippingAddress }): Promise<StepOutcome> =>
      runStep(pool, {
        call,
        step: 'createShipment',
        provider: () =>
          carrier.createShipment({
            idempotencyKey: call.idempotencyKey,
            country: call.address.country,
            postalCode: call.address.postalCode,
          }),
        commit: async (tx, shipment) => {
          if (shipment.status === 'refused') return { ok: false, reason: 'shipping_unavailable' };
          const { carrier: name, trackingNumber } = shipment;
          await recordShipment(tx, call.orderId, { carrier: name, trackingNumber });
          await appendEvent(tx, {
            orderId: call.orderId,
            type: 'ShipmentCreated',
            data: { carrier: name, trackingNumber },
          });
          return { ok: true };
        },
      }),

    /** Cancels a booked shipment; a no-op when none was booked. */
    cancelShipment: (call: StepCall): Promise<void> =>
      runCompensation(pool, {
        call,
        name: 'cancelShipment',
        undoes: 'createShipment',
        provider: {
          find: async (tx) => (await findBookedShipment(tx, call.orderId)) ?? null,
          call: (trackingNumber) =>
            carrier.cancelShipment({ idempotencyKey: call.idempotencyKey, trackingNumber }),
        },
        undo: async (tx, trackingNumber) => {
          if (!(await recordShipmentCancelled(tx, call.orderId))) return false;
          await appendEvent(tx, {
            orderId: call.orderId,
            type: 'ShipmentCancelled',
            data: { trackingNumber },
          });
          return true;
        },
      }),
  };
}
