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
  return {
    ...createOrderActivities(deps),
    ...createInventoryActivities(deps),
    ...createPaymentActivities(deps),
    ...createShippingActivities(deps),
    ...createFraudActivities({ pool: deps.pool, fraudDenyList: deps.fraudDenyList ?? new Set() }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
