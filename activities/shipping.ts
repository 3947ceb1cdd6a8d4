import { stepKey, type ShippingAddress, type StepOutcome } from '../contracts/index';
import { appendEvent } from '../store/outbox';
import type { Pool } from '../store/pool';
import { findShipmentStatus, recordShipment, recordShipmentCancelled } from '../store/shipments';
import type { Carrier } from './providers/types';
import { currentStep, runCompensation, runStep, type StepCall } from './step-runner';

export function createShippingActivities({ pool, carrier }: { pool: Pool; carrier: Carrier }) {
  return {
    /**
     * Books the shipment (idempotent by key on the carrier's side); a carrier refusal is
     * returned, never retried.
     */
    createShipment: (call: StepCall & { address: ShippingAddress }): Promise<StepOutcome> =>
      runStep(pool, {
        call,
        step: 'createShipment',
        provider: (signal) =>
          carrier.createShipment({
            idempotencyKey: call.idempotencyKey,
            country: call.address.country,
            postalCode: call.address.postalCode,
            signal,
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

    /**
     * Cancels the booking made under `bookingKey`. Asks the carrier even when no shipment is
     * recorded, because a booking attempt that timed out may still have gone through: the
     * carrier cancels what it booked under that key, or voids the key so that a booking
     * arriving later is refused, and the fence keeps a late booking attempt from recording
     * anything. A cancel scheduled before the workflow passed `bookingKey` uses the
     * createShipment step key, which is what the workflow passes. A booking learned only from
     * its cancellation is announced first (ShipmentCreated, then ShipmentCancelled), so the
     * stream never cancels a shipment it did not show created.
     */
    cancelShipment: (call: StepCall & { bookingKey?: string }): Promise<void> =>
      runCompensation(pool, {
        call,
        name: 'cancelShipment',
        undoes: 'createShipment',
        provider: {
          find: async (tx) =>
            (await findShipmentStatus(tx, call.orderId)) === 'CANCELLED'
              ? null
              : (call.bookingKey ?? stepKey(currentStep().workflowId, 'createShipment')),
          call: (bookingKey, signal) =>
            carrier.cancelShipment({ idempotencyKey: call.idempotencyKey, bookingKey, signal }),
        },
        undo: async (tx, _bookingKey, cancel, bookingRecorded) => {
          if (cancel?.status !== 'cancelled') return false;
          const { carrier: name, trackingNumber } = cancel;
          if (!(await recordShipmentCancelled(tx, call.orderId, { carrier: name, trackingNumber }))) {
            return false;
          }
          if (!bookingRecorded) {
            await appendEvent(tx, {
              orderId: call.orderId,
              type: 'ShipmentCreated',
              data: { carrier: name, trackingNumber },
            });
          }
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
