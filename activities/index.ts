import type { Pool } from '../db/pool';
import { createInventoryActivities } from './inventory';
import { createOrderActivities } from './orders';
import { createPaymentActivities } from './payment';
import type { Carrier, PaymentGateway } from './providers/types';
import { createShippingActivities } from './shipping';

export interface ActivityDeps {
  pool: Pool;
  gateway: PaymentGateway;
  carrier: Carrier;
}

/** Every saga activity, built over injected dependencies. Workflows import only the type. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createOrderActivities(deps),
    ...createInventoryActivities(deps),
    ...createPaymentActivities(deps),
    ...createShippingActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
