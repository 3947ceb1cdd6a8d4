import type { StepOutcome } from '../contracts/index';
import type { Pool } from '../store/pool';
import { createFraudActivities } from './fraud';
import { createInventoryActivities } from './inventory';
import { createOrderActivities } from './orders';
import { createPaymentActivities } from './payment';
import type { Carrier, PaymentGateway } from './providers/types';
import { createShippingActivities } from './shipping';

export interface ActivityDeps {
  pool: Pool;
  gateway: PaymentGateway;
  carrier: Carrier;
  /** Customer ids the fraud screening refuses. */
  fraudDenyList?: ReadonlySet<string>;
}

/** Every saga activity, built over injected dependencies. Workflows import only the type. */
export function createActivities(deps: ActivityDeps) {
  const payment = createPaymentActivities(deps);
  const shipping = createShippingActivities(deps);
  return {
    ...createOrderActivities(deps),
    ...createInventoryActivities(deps),
    ...payment,
    ...shipping,
    ...createFraudActivities({ pool: deps.pool, fraudDenyList: deps.fraudDenyList ?? new Set() }),
    /**
     * The saga's two calls to other services (v4), one after the other in one activity: the
     * charge, then, if it went through, the shipment. Each is its own step (own idempotency
     * key, own transaction, own outcome); a retry of the activity finds the charge recorded
     * and goes on with the shipment. Heartbeats carry a cancel to whichever call is running.
     */
    chargeAndShip: async (call: {
      charge: Parameters<typeof payment.chargePayment>[0];
      shipment: Parameters<typeof shipping.createShipment>[0];
    }): Promise<{ charge: StepOutcome; shipment?: StepOutcome }> => {
      const charge = await payment.chargePayment(call.charge);
      if (!charge.ok) return { charge };
      return { charge, shipment: await shipping.createShipment(call.shipment) };
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
