/**
 * What the activity tests share: the saga's activities over a test database with the
 * simulated providers, and an order written the way the API writes it, with a product of
 * its own, a mock activity environment per attempt and each step's call (its key).
 */
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities, type Activities } from '../../activities';
import { createSimulatedCarrier, createSimulatedPaymentGateway } from '../../activities/providers/simulated';
import { stepKey, workflowIdFor } from '../../contracts/index';
import { insertOrderIfAbsent } from '../../store/orders';
import type { Pool } from '../../store/pool';
import { resetProduct } from '../../store/products';
import { withTransaction } from '../../store/tx';
import { sagaInput } from '../../tools/fixtures/order';

export const activitiesOver = (pool: Pool): Activities =>
  createActivities({
    pool,
    gateway: createSimulatedPaymentGateway(pool, { slowCallMs: 100 }),
    carrier: createSimulatedCarrier(pool),
  });

export interface ActivityOrderOptions {
  /** Stock of the order's own product. */
  available?: number;
  quantity?: number;
  requiresApproval?: boolean;
  customerId?: string;
}

export async function newActivityOrder(pool: Pool, options: ActivityOrderOptions = {}) {
  const sku = `SKU-${randomUUID().slice(0, 8)}`;
  await resetProduct(pool, sku, { name: sku, priceCents: 1000, available: options.available ?? 10 });
  const input = sagaInput({
    items: [{ sku, quantity: options.quantity ?? 1, unitPriceCents: 1000 }],
    ...(options.customerId === undefined ? {} : { customerId: options.customerId }),
    ...(options.requiresApproval === undefined ? {} : { requiresApproval: options.requiresApproval }),
  });
  const { orderId } = input;
  await withTransaction(pool, (tx) => insertOrderIfAbsent(tx, input));
  const workflowId = workflowIdFor(orderId);
  const env = (attempt = 1) =>
    new MockActivityEnvironment({ workflowExecution: { workflowId, runId: randomUUID() }, attempt });
  const call = (step: string) => ({ orderId, idempotencyKey: stepKey(workflowId, step) });
  return { sku, orderId, input, workflowId, env, call };
}
