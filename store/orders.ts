import { STEP_NAMES, workflowIdFor, type OrderLine, type OrderSagaInput } from '../contracts/index';
import type { Pool, PoolClient } from './pool';

/**
 * Writes a new order (status PENDING), its lines and its step rows, unless it exists.
 * Both the API (so a just-accepted order is visible at once) and the createOrder
 * activity (so a saga whose API process died after starting it still has its order) call
 * this; whichever runs second changes nothing. Returns true when this call created it.
 */
export async function insertOrderIfAbsent(tx: PoolClient, input: OrderSagaInput): Promise<boolean> {
  // One statement: the lines and steps are inserted only when the order row was. No conflict
  // target: the API and createOrder may insert the same order at the same moment, and the
  // conflict can surface on workflow_id (unique too) rather than id; either means "already
  // there". With `ON CONFLICT (id)` the workflow_id one is an error (a 500).
  const { rows } = await tx.query<{ created: boolean }>(
    `WITH created AS (
       INSERT INTO orders (id, workflow_id, customer_id, status, total_cents, currency, shipping_address,
                           correlation_id, requires_approval)
       VALUES ($1, $2, $3, 'PENDING', $4, $5, $6, $7, $8)
       ON CONFLICT DO NOTHING
       RETURNING id
     ), lines AS (
       INSERT INTO order_items (order_id, line, sku, quantity, unit_price_cents)
       SELECT created.id, line, sku, quantity, price
         FROM created,
              unnest($9::text[], $10::int[], $11::bigint[]) WITH ORDINALITY AS t(sku, quantity, price, line)
     ), steps AS (
       INSERT INTO order_steps (order_id, position, name, status)
       SELECT created.id, position, name,
              CASE WHEN name = 'approval' AND NOT $8 THEN 'SKIPPED' ELSE 'PENDING' END
         FROM created, unnest($12::text[]) WITH ORDINALITY AS t(name, position)
     )
     SELECT EXISTS (SELECT 1 FROM created) AS created`,
    [
      input.orderId,
      workflowIdFor(input.orderId),
      input.customerId,
      input.totalCents,
      input.currency,
      JSON.stringify(input.shippingAddress),
      input.correlationId,
      input.requiresApproval,
      input.items.map((item) => item.sku),
      input.items.map((item) => item.quantity),
      input.items.map((item) => item.unitPriceCents),
      [...STEP_NAMES],
    ],
  );
  return rows[0]!.created;
}

/** What OrderCreated says about an order: the saga's input, as stored. */
export interface OrderCreatedData {
  customerId: string;
  items: OrderLine[];
  totalCents: number;
  currency: string;
  requiresApproval: boolean;
}

export const orderCreatedData = (input: OrderSagaInput): OrderCreatedData => ({
  customerId: input.customerId,
  items: input.items,
  totalCents: input.totalCents,
  currency: input.currency,
  requiresApproval: input.requiresApproval,
});

/** OrderCreated's data for an order that has no event yet (undefined once it has one). */
export async function findUnannouncedOrder(
  tx: PoolClient,
  orderId: string,
): Promise<OrderCreatedData | undefined> {
  const { rows } = await tx.query<OrderCreatedData>(
    `SELECT o.customer_id AS "customerId", o.total_cents AS "totalCents", o.currency,
            o.requires_approval AS "requiresApproval",
            (SELECT coalesce(json_agg(json_build_object(
                      'sku', i.sku, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents) ORDER BY i.line), '[]')
               FROM order_items i WHERE i.order_id = o.id) AS items
       FROM orders o WHERE o.id = $1 AND o.event_seq = 0`,
    [orderId],
  );
  return rows[0];
}

export async function orderExists(pool: Pool, orderId: string): Promise<boolean> {
  const { rowCount } = await pool.query('SELECT 1 FROM orders WHERE id = $1', [orderId]);
  return rowCount === 1;
}
