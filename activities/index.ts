import type { StepOutcome } from '../contracts/index';
import type { Pool } from '../store/pool';
import { createFraudActivities, screenOrderStep, type ScreeningCall } from './fraud';
import { createInventoryActivities, reserveInventoryStep } from './inventory';
import { createOrderActivities, createOrderStep } from './orders';
import { createPaymentActivities } from './payment';
import type { Carrier, PaymentGateway } from './providers/types';
import { createShippingActivities } from './shipping';
import { runSteps } from './step-runner';

/** What admitOrder did: each step it ran, up to the first refusal. */
export interface AdmitOutcome {
  createOrder: StepOutcome;
  reserveInventory?: StepOutcome;
  fraudScreening?: StepOutcome;
}

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
  const fraudDenyList = deps.fraudDenyList ?? new Set<string>();
  return {
    /**
     * The saga's first database steps in one transaction (v4): the order, its reservation
     * and, for an order that needs no approval, its fraud screening; each its own step (own
     * key, rows, events and status), as if run one by one, up to the first refusal.
     */
    admitOrder: async (call: {
      order: Parameters<typeof createOrderStep>[0];
      reservation: Parameters<typeof reserveInventoryStep>[0];
      screening?: ScreeningCall;
    }): Promise<AdmitOutcome> => {
      const [createOrder, reserveInventory, fraudScreening] = await runSteps(deps.pool, [
        createOrderStep(call.order),
        reserveInventoryStep(call.reservation, { requiresApproval: call.order.input.requiresApproval }),
        ...(call.screening ? [screenOrderStep(call.screening, fraudDenyList)] : []),
      ]);
      return {
        createOrder: createOrder!,
        ...(reserveInventory ? { reserveInventory } : {}),
        ...(fraudScreening ? { fraudScreening } : {}),
      };
    },
    ...createOrderActivities(deps),
    ...createInventoryActivities(deps),
    ...payment,
    ...shipping,
    ...createFraudActivities({ pool: deps.pool, fraudDenyList }),
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
